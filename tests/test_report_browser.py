"""The report renders in a real browser: report.html from disk, and report.md inside an mkdocs-material site.

Headless Debian Chromium via selenium with explicit chromium/chromedriver paths (no Selenium Manager, no
downloads). The mkdocs site serves Vega, Vega-Lite and vega-embed from ``tests/js/node_modules``
(``npm ci --prefix tests/js``) on 127.0.0.1 instead of a CDN, and Chromium resolves no other host name.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench.report.build import ReportOptions, ReportPaths, write_report
from tests.support import REPO, rank_env
from tests.support.report_browser import MKDOCS_CONTAINER_WIDTH, PageRender, chromium, missing_browser, render
from tests.support.report_data import write_run_dir

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser())),
]

NODE_MODULES = REPO / "tests" / "js" / "node_modules"
VEGA_JS = {
    "vega.min.js": NODE_MODULES / "vega" / "build" / "vega.min.js",
    "vega-lite.min.js": NODE_MODULES / "vega-lite" / "build" / "vega-lite.min.js",
    "vega-embed.min.js": NODE_MODULES / "vega-embed" / "build" / "vega-embed.min.js",
}
MKDOCS_YML = """\
site_name: railbench report test
theme:
  name: material
  font: false  # no Google Fonts: the page must load nothing from the internet
plugins:
  - charts
extra_javascript:
  - js/vega.min.js
  - js/vega-lite.min.js
  - js/vega-embed.min.js
markdown_extensions:
  - tables
  - pymdownx.superfences:
      custom_fences:
        - name: vegalite
          class: vegalite
          format: !!python/name:mkdocs_charts_plugin.fences.fence_vegalite
"""


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # a second guard: Selenium must never go online for a driver
        with chromium() as browser:
            yield browser


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    run_dir = write_run_dir(tmp_path_factory.mktemp("run") / "run")
    return write_report(run_dir, options=ReportOptions(images=False))


def _axis_texts(driver: Any, selector: str) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0] + ' svg text')).map(t => t.textContent)", selector
    )


def test_report_html_renders_every_chart_from_disk(driver: Any, report: ReportPaths, tmp_path: Path) -> None:
    result = render(driver, report.report_html.as_uri(), "div.vega", tmp_path / "report.png")
    assert result.problems() == []
    assert set(result.charts) == {f"vis-{c.name}" for c in report.charts}
    assert result.screenshot.read_bytes()[:4] == b"\x89PNG"
    texts = _axis_texts(driver, "#vis-busbw-vs-size")
    assert {"1K", "1M", "1G"} <= set(texts)
    assert "bus bandwidth (GB/s = 1e9 bytes/s)" in texts


def _break_chart(page: str, name: str) -> str:
    pattern = re.compile(f'(<script type="application/json" data-chart="{name}">)(.*?)(</script>)', re.S)
    match = pattern.search(page)
    assert match, name
    spec = json.loads(match.group(2))
    spec["layer"][0]["mark"] = {"type": "no-such-mark"}
    return page[: match.start(2)] + json.dumps(spec) + page[match.end(2) :]


def test_a_chart_vega_lite_had_to_repair_fails_the_render_check(
    driver: Any, report: ReportPaths, tmp_path: Path
) -> None:
    # a filtered label layer gets its own data source, and Vega-Lite then drops the bars' descending sort
    page = report.report_html.read_text(encoding="utf-8")
    match = re.search(r'(<script type="application/json" data-chart="rails">)(.*?)(</script>)', page, re.S)
    assert match
    spec = json.loads(match.group(2))
    spec["layer"][-1]["transform"] = [{"filter": "datum.busbw_Gbps > 0"}]
    repaired = tmp_path / "repaired.html"
    repaired.write_text(page[: match.start(2)] + json.dumps(spec) + page[match.end(2) :], encoding="utf-8")
    result = render(driver, repaired.as_uri(), "div.vega", tmp_path / "repaired.png")
    assert all(result.charts.values())  # it drew ...
    assert any("Dropping sort property" in p for p in result.problems())  # ... but not as specified


def test_a_broken_chart_fails_the_render_check(driver: Any, report: ReportPaths, tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text(_break_chart(report.report_html.read_text(encoding="utf-8"), "rails"), encoding="utf-8")
    result: PageRender = render(driver, broken.as_uri(), "div.vega", tmp_path / "broken.png")
    problems = result.problems()
    assert "chart vis-rails did not render" in problems
    assert any("console error" in p and "chart rails failed" in p for p in problems), problems
    assert all(ok for name, ok in result.charts.items() if name != "vis-rails")  # one bad chart, the rest fine


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(folder: Path) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _missing_docs_toolchain() -> str | None:
    absent = [str(p) for p in VEGA_JS.values() if not p.is_file()]
    if absent:
        return f"{absent[0]} missing: run 'npm ci --prefix tests/js'"
    for module in ("mkdocs", "material", "mkdocs_charts_plugin", "pymdownx"):
        try:
            __import__(module)
        except ImportError:
            return f"python package {module} is not installed"
    return None


@pytest.fixture(scope="module")
def docs_toolchain() -> None:
    """Skip before the browser starts when the vega npm packages or the mkdocs plugins are absent."""
    missing = _missing_docs_toolchain()
    if missing:
        pytest.skip(missing)


def test_report_md_renders_in_an_mkdocs_material_site(
    docs_toolchain: None, driver: Any, report: ReportPaths, tmp_path: Path, serve: Any
) -> None:
    docs = tmp_path / "docs"
    (docs / "js").mkdir(parents=True)
    shutil.copy(report.report_md, docs / "report.md")
    shutil.copytree(report.out_dir / "charts", docs / "charts")
    (docs / "index.md").write_text("# railbench\n\n[report](report.md)\n", encoding="utf-8")
    for name, path in VEGA_JS.items():
        shutil.copy(path, docs / "js" / name)
    (tmp_path / "mkdocs.yml").write_text(MKDOCS_YML, encoding="utf-8")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(tmp_path / "mkdocs.yml")],
        cwd=tmp_path,
        env=rank_env({"NO_MKDOCS_2_WARNING": "1"}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    site = tmp_path / "site"
    fences = report.report_md.read_text(encoding="utf-8").count("```vegalite")
    assert (site / "report" / "index.html").read_text(encoding="utf-8").count("<vegachart") == fences

    result = render(driver, serve(site) + "/report/", "vegachart", tmp_path / "mkdocs.png")
    assert result.problems(also_known=(MKDOCS_CONTAINER_WIDTH,)) == []
    assert not any("Vega v5" in w for w in result.warnings)  # here Vega 5 from npm runs the v5 specs
    assert len(result.charts) == fences
    assert {"1K", "1M", "1G"} <= set(_axis_texts(driver, "vegachart"))
    # the CSVs came over HTTP from the site, not inlined: the docs chart is the vendor-docs pattern
    loaded = driver.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    assert any(url.endswith("/charts/rails.csv") for url in loaded), loaded
    assert all(url.startswith("http://127.0.0.1:") for url in loaded), loaded
