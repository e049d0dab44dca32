"""The sample report in the docs is what today's renderer draws (issue 33 item 4: it was an old layout, a
reason said once per node, "5 nodes" for a 4-node run), and the docs site draws its charts offline.

``reports/sample/run/`` keeps the inputs of the sample's run (a real ``railbench accept`` on the namespace
cluster, ``ci/sample_report.py --testbed``); the pages beside it are drawn from them. The first test draws
them again and compares; when the renderer changes, it fails until ``python ci/sample_report.py
--update-sample reports/sample/run`` is run and the result committed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO, rank_env
from tests.support.report_browser import MKDOCS_CONTAINER_WIDTH, chromium, missing_browser, render

SAMPLE = REPO / "reports" / "sample"
REDRAW = "python ci/sample_report.py --update-sample reports/sample/run"
_BUNDLE = re.compile(r"<script>.*?</script>", re.S)


def _drawn(folder: Path) -> dict[str, str]:
    """The text a report is made of: pages, chart specs and data, metrics (not the images: fonts differ by
    machine), with report.html's Vega bundle cut out (it follows the installed vl-convert, not the renderer)."""
    names = ["report.md", "report.html", "metrics.prom"]
    names += sorted(
        p.relative_to(folder).as_posix() for p in (folder / "charts").glob("*") if p.suffix in (".json", ".csv")
    )
    out = {}
    for name in names:
        text = (folder / name).read_text(encoding="utf-8")
        out[name] = _BUNDLE.sub("<script>(bundle)</script>", text, count=1) if name == "report.html" else text
    return out


@pytest.mark.slow
def test_the_committed_sample_is_what_the_renderer_draws_today(tmp_path: Path) -> None:
    assert (SAMPLE / "run" / "run.json").is_file(), f"the sample keeps its run's inputs in {SAMPLE / 'run'}"
    run_dir = tmp_path / "sample" / "run"
    shutil.copytree(SAMPLE / "run", run_dir)
    done = subprocess.run(
        [sys.executable, "-m", "bench", "report", str(run_dir), "--out", str(tmp_path / "sample")],
        cwd=REPO,
        env=rank_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    today, committed = _drawn(tmp_path / "sample"), _drawn(SAMPLE)
    assert sorted(today) == sorted(committed), f"the sample's charts changed: run {REDRAW}"
    stale = [name for name in today if today[name] != committed[name]]
    assert stale == [], f"reports/sample is not what the renderer draws today ({', '.join(stale)}): run {REDRAW}"


def test_the_sample_is_of_a_run_of_today() -> None:
    """What the issue found stale: the run's node count said once and right, each reason said once."""
    md = (SAMPLE / "report.md").read_text(encoding="utf-8")
    run = (SAMPLE / "run" / "run.json").read_text(encoding="utf-8")
    nnodes = int(re.search(r'"nnodes": (\d+)', run).group(1))  # type: ignore[union-attr]
    counts = {int(n) for n in re.findall(r"\b(\d+) nodes\b", md)}
    assert counts <= {nnodes}, f"the sample names {sorted(counts)} nodes for a {nnodes}-node run"
    reasons = [line for line in md.splitlines() if line.startswith("- ") and "(skip)" in line]
    assert len(reasons) == len(set(r.split(":", 1)[-1] for r in reasons)), "a skip reason is said once per node"


# The docs site, built as users build it, served on 127.0.0.1, in a browser that can resolve no other host.
@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(REPO / "mkdocs.yml"), "-d", str(out)],
        cwd=REPO,
        env=rank_env({"NO_MKDOCS_2_WARNING": "1"}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    if missing_browser() is not None:
        pytest.skip(str(missing_browser()))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")
        with chromium() as browser:
            yield browser


@pytest.mark.slow
def test_the_docs_site_ships_its_chart_scripts_and_their_licence(site: Path) -> None:
    page = (site / "reports" / "sample" / "report" / "index.html").read_text(encoding="utf-8")
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert not [s for s in scripts if s.startswith(("http:", "https:", "//"))], scripts  # no CDN
    bundle = site / "assets" / "javascripts" / "vega-vega-lite-vega-embed.js"
    head = bundle.read_text(encoding="utf-8")[:300]
    assert "Vega-Lite 5.20" in head and "BSD-3-Clause" in head
    licence = (site / "assets" / "javascripts" / "vega-LICENSE.txt").read_text(encoding="utf-8")
    assert "University of Washington Interactive Data Lab" in licence and "Jon Mease" in licence


@pytest.mark.browser
@pytest.mark.slow
def test_the_docs_site_draws_the_sample_charts_offline(site: Path, driver: Any, tmp_path: Path) -> None:
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(site), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/reports/sample/report/"
        result = render(driver, url, "vegachart", tmp_path / "sample.png")
        loaded = driver.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    finally:
        server.shutdown()
        server.server_close()
    fences = (SAMPLE / "report.md").read_text(encoding="utf-8").count("```vegalite")
    assert fences >= 3 and len(result.charts) == fences
    assert result.problems(also_known=(MKDOCS_CONTAINER_WIDTH,)) == []
    assert all(u.startswith(f"http://127.0.0.1:{server.server_port}/") for u in loaded), loaded
