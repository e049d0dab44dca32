"""write_report and ``railbench report``: the files, schema validity of every spec, escaping, atomicity."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench.cli import main as cli_main
from bench.exits import UserError
from bench.profile.cluster import load_profile
from bench.report import build
from bench.report.build import ReportOptions, ReportPaths, write_report
from bench.report.inputs import load_inputs
from bench.report.summary import targets
from bench.report.theme import STATUS_COLORS
from tests.support import rank_env
from tests.support.report_data import ClusterModel, results_rows, write_run_dir
from tests.support.report_schema import validate

ALL_CHARTS = {"busbw-vs-size", "rails", "nodes", "rail-all-reduce", "node-all-reduce", "pairs", "gpus", "trend"}
FENCE = re.compile(r"```vegalite\n(.*?)\n```", re.S)
INLINE = re.compile(r'<script type="application/json" data-chart="([^"]+)">(.*?)</script>', re.S)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    return write_report(write_run_dir(tmp_path_factory.mktemp("run") / "run"))


def fences(markdown: str) -> list[dict[str, Any]]:
    return [json.loads(body) for body in FENCE.findall(markdown)]


def inline_specs(page: str) -> dict[str, dict[str, Any]]:
    return {name: json.loads(body) for name, body in INLINE.findall(page)}


@pytest.mark.slow
def test_every_chart_has_spec_csv_png_and_svg(report: ReportPaths) -> None:
    assert {c.name for c in report.charts} == ALL_CHARTS
    for chart in report.charts:
        spec = json.loads(chart.spec.read_text(encoding="utf-8"))
        # the url is relative to the folder of report.md and points at the CSV beside the spec
        assert spec["data"]["url"] == f"charts/{chart.name}.csv"
        assert (report.out_dir / spec["data"]["url"]) == chart.csv and chart.csv.stat().st_size > 0
        assert chart.png is not None and chart.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert chart.svg is not None and ET.parse(chart.svg).getroot().tag.endswith("svg")
        assert chart.spec.stat().st_size < 2 * 1024 * 1024


@pytest.mark.slow
def test_every_emitted_spec_validates_against_the_schema_it_declares(report: ReportPaths) -> None:
    files = {c.name: json.loads(c.spec.read_text(encoding="utf-8")) for c in report.charts}
    in_markdown = fences(report.report_md.read_text(encoding="utf-8"))
    in_html = inline_specs(report.report_html.read_text(encoding="utf-8"))
    assert len(in_markdown) == len(files) and set(in_html) == set(files)
    for spec in [*files.values(), *in_markdown, *in_html.values()]:
        validate(spec)
        assert json.loads(json.dumps(spec)) == spec
    assert in_markdown == list(files.values())  # the docs fence is the .vl.json, byte for byte in meaning
    for name, spec in in_html.items():
        assert "url" not in spec["data"]
        assert spec["data"]["values"] == (report.out_dir / "charts" / f"{name}.csv").read_text(encoding="utf-8")
        assert {k: v for k, v in spec.items() if k != "data"} == {k: v for k, v in files[name].items() if k != "data"}


@pytest.mark.slow  # reads the drawn charts (the module's report, drawn once per worker)
def test_the_size_axis_reads_1k_1m_1g_and_shows_the_unit(report: ReportPaths) -> None:
    svg = (report.out_dir / "charts" / "busbw-vs-size.svg").read_text(encoding="utf-8")
    texts = {t.text for t in ET.fromstring(svg).iter() if t.tag.endswith("text")}
    assert {"1K", "1M", "1G"} <= texts
    assert any("GB/s" in (t or "") for t in texts)
    assert any((t or "").startswith("target 3,200 Gb/s = 400 GB/s") for t in texts)


def _svg_texts(svg: Path) -> list[tuple[float, float, str]]:
    """(x, y, text) of every text element, from its translate()."""
    out = []
    for element in ET.parse(svg).getroot().iter():
        if element.tag.endswith("text") and element.text:
            match = re.search(r"translate\(([-\d.]+),([-\d.]+)\)", element.get("transform", ""))
            if match:
                out.append((float(match.group(1)), float(match.group(2)), element.text))
    return out


@pytest.mark.slow  # reads the drawn charts (the module's report, drawn once per worker)
def test_the_rendered_bars_are_sorted_descending_with_labels_and_target(report: ReportPaths) -> None:
    chart = next(c for c in report.charts if c.name == "rails")
    assert chart.svg is not None
    values = dict(pd.read_csv(chart.csv)[["label", "busbw_Gbps"]].itertuples(index=False))
    texts = _svg_texts(chart.svg)
    axis = [t for t in sorted(texts, key=lambda t: t[1]) if t[2] in values]
    assert len(axis) == len(values) == 8
    shown = [values[t[2]] for t in axis]
    assert shown == sorted(shown, reverse=True)  # top to bottom: fastest first, as drawn
    assert axis[-1][2] == "rail 5 (mlx5_6)"
    labels = {t[2] for t in texts}
    assert {f"{v:,.4g}" for v in values.values()} <= labels  # every bar carries its value (4 significant digits)
    assert "target 400 Gb/s" in labels
    failed = ET.parse(chart.svg).getroot().iter()
    assert any(e.get("fill") == STATUS_COLORS["fail"] for e in failed)  # the weak rail is drawn in red


@pytest.mark.slow  # reads the drawn report (the module's, drawn once per worker)
def test_the_markdown_page_has_the_summary_and_links(report: ReportPaths) -> None:
    page = report.report_md.read_text(encoding="utf-8")
    assert page.startswith("# railbench report: lambda-1cc-test\n")
    assert "| verdict | FAIL |" in page
    assert "| world | all\\_reduce | 1 | 1G |" in page
    summary = page.split("\n## ")[0]  # the top, before the first step's evidence
    assert "**Verdict: FAIL**" in summary and "### Defects (1)" in summary
    assert "| link | gpu-node-03 | 5 | mlx5\\_6 | 172 Gb/s = 43% of 400 Gb/s in 3/3 pairs" in summary
    assert "check the HCA and the switch port of gpu-node-03 mlx5\\_6 |" in summary
    assert summary.count("gpu-node-03") == 2  # the defect said once: its node and its action
    assert "| rails | 8 rails: rail groups (all\\_gather, all\\_reduce) and 6 node pairs per rail |" in summary
    assert "| rails | 400 Gb/s line rate per rail (the profile's rail rate) |" in summary
    assert "## Rails" in page and "### Evidence for each defect" in page
    assert "[PNG](charts/rails.png)" in page and "[data](charts/rails.csv)" in page


class _Resources(HTMLParser):
    """Collects every element attribute that would make a browser load something."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "src" or (name == "href" and tag == "link"):
                self.loads.append((tag, value or ""))


@pytest.mark.slow  # reads the drawn report (the module's, drawn once per worker)
def test_the_html_page_needs_no_network(report: ReportPaths) -> None:
    page = report.report_html.read_text(encoding="utf-8")
    parser = _Resources()
    parser.feed(page)
    assert parser.loads == []  # scripts, styles and data are all inline
    assert "window.vegaEmbed" in page and "https://cdn" not in page
    assert len(page.encode()) < 4 * 1024 * 1024


HOSTILE = "evil<script>alert(1)</script>|x_*y*`"


@pytest.mark.slow
def test_cluster_strings_are_escaped_everywhere(tmp_path: Path) -> None:
    model = ClusterModel(
        hosts=("gpu-node-01", HOSTILE, "gpu-node-03"),
        bad=(HOSTILE, 2),
        cluster="```</script><b>c</b>",
    )
    paths = write_report(write_run_dir(tmp_path / "run", model), options=ReportOptions(images=False))
    page = paths.report_html.read_text(encoding="utf-8")
    assert "<script>alert" not in page and "<b>c</b>" not in page
    assert "evil&lt;script&gt;alert(1)&lt;/script&gt;" in page  # as text in the defects table
    assert page.count("</script>") == page.count("<script")  # nothing closed a script element early
    markdown = paths.report_md.read_text(encoding="utf-8")
    assert "<script>" not in markdown and "<b>" not in markdown
    assert "evil&lt;script&gt;alert(1)&lt;/script&gt;\\|x\\_\\*y\\*\\`" in markdown
    for line in markdown.splitlines():
        if line.startswith("| hca |"):
            assert len(re.findall(r"(?<!\\)\|", line)) == 10  # 9 cells: the hostname's pipe is escaped
    assert markdown.count("```") == 2 * markdown.count("```vegalite")  # no backtick run closes a fence
    for spec in fences(markdown):
        validate(spec)


@pytest.mark.slow
def test_charts_appear_only_when_their_input_is_present(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path / "run", rails=False, checks=False, trend=False)
    paths = write_report(run_dir, options=ReportOptions(images=False))
    # without rails.json the pair matrix comes from results.csv; the rails/nodes bars and the GPU matrix (rails.json's
    # intra-node record holds each direction) are absent
    assert {c.name for c in paths.charts} == ALL_CHARTS - {"rails", "nodes", "trend", "gpus"}
    assert "## Checks" not in paths.report_md.read_text(encoding="utf-8")
    rows = [r for r in results_rows(ClusterModel()) if r["scope"] == "world"]
    only_world = write_run_dir(tmp_path / "world", rows=rows, rails=False, checks=False, trend=False)
    assert [c.name for c in write_report(only_world, options=ReportOptions(images=False)).charts] == ["busbw-vs-size"]


def test_a_single_node_run_without_targets_and_an_empty_run(tmp_path: Path) -> None:
    # the shape of a CPU `railbench run --np 4`: world rows only, no target, one host
    model = ClusterModel(hosts=("laptop",), gpus_per_node=4, bad=None)
    rows = [dict(r, target_Gbps="", efficiency="") for r in results_rows(model) if r["scope"] == "world"]
    run_dir = write_run_dir(tmp_path / "cpu", model, rows=rows, rails=False, checks=False, trend=False)
    paths = write_report(run_dir, options=ReportOptions(images=False))
    assert [c.name for c in paths.charts] == ["busbw-vs-size"]
    spec = json.loads(paths.charts[0].spec.read_text(encoding="utf-8"))
    validate(spec)
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["line"]  # no target, no rule
    assert "| world | all\\_reduce | 1 | 1G |" in paths.report_md.read_text(encoding="utf-8")
    assert "| measured |" in paths.report_md.read_text(encoding="utf-8")

    empty = write_run_dir(tmp_path / "empty", model, rows=[], rails=False, checks=False, trend=False)
    paths = write_report(empty, options=ReportOptions(images=False))
    assert paths.charts == ()
    assert "results.csv holds no measurements yet" in paths.report_html.read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_rerun_replaces_the_report_and_drops_charts_no_longer_drawn(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path / "run")
    options = ReportOptions(images=False)
    write_report(run_dir, options=options)
    assert (run_dir / "charts" / "trend.vl.json").exists()
    (run_dir / "trend.csv").unlink()
    paths = write_report(run_dir, options=options)
    assert not list((run_dir / "charts").glob("trend.*"))
    assert "trend" not in paths.report_md.read_text(encoding="utf-8")
    assert not list(run_dir.rglob("*.tmp"))
    (run_dir / "charts" / "rails.png").write_bytes(b"an image of an older run")
    (run_dir / "charts" / "notes.txt").write_text("not ours", encoding="utf-8")
    write_report(run_dir, options=options)
    assert not (run_dir / "charts" / "rails.png").exists()  # no stale image survives --no-images
    assert (run_dir / "charts" / "notes.txt").exists()  # files that are not chart files are left alone


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_bad_input_leaves_the_old_report_whole(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path / "run")
    out = tmp_path / "out"
    write_report(run_dir, out_dir=out, options=ReportOptions(images=False))
    before = _snapshot(out)
    rows = results_rows(ClusterModel())
    rows[7]["time_us"] = "n/a"
    write_run_dir(run_dir, rows=rows)
    with pytest.raises(UserError, match="line 9: time_us is 'n/a'"):
        write_report(run_dir, out_dir=out, options=ReportOptions(images=False))
    assert _snapshot(out) == before


@pytest.mark.slow
def test_a_failure_while_drawing_never_leaves_half_a_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = write_run_dir(tmp_path / "run")
    write_report(run_dir, options=ReportOptions(images=False))
    pages = {p: (run_dir / p).read_bytes() for p in ("report.md", "report.html")}
    calls: list[str] = []

    def failing_svg(spec: dict[str, Any], **kwargs: Any) -> str:
        calls.append("svg")
        raise RuntimeError("vl-convert crashed")

    monkeypatch.setattr(build.vl_convert, "vegalite_to_svg", failing_svg)
    with pytest.raises(RuntimeError, match="vl-convert crashed"):
        write_report(run_dir)
    assert calls
    # the pages are written last: they still describe the previous, complete report
    assert {p: (run_dir / p).read_bytes() for p in pages} == pages
    assert not list(run_dir.rglob("*.tmp"))


@pytest.mark.slow
def test_url_prefix_and_unit_options(tmp_path: Path) -> None:
    options = ReportOptions(images=False, url_prefix="runs/n42/charts/", unit="Gb/s")
    paths = write_report(write_run_dir(tmp_path / "run", trend=False), options=options)
    for spec in fences(paths.report_md.read_text(encoding="utf-8")):
        assert spec["data"]["url"].startswith("runs/n42/charts/")
    sweep = json.loads((paths.out_dir / "charts" / "busbw-vs-size.vl.json").read_text(encoding="utf-8"))
    assert sweep["layer"][0]["encoding"]["y"]["field"] == "busbw_Gbps"
    with pytest.raises(ValueError, match="must end with '/'"):
        ReportOptions(url_prefix="charts")


# ------------------------------------------------------------------------------------------------ CLI


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = cli_main(["report", *args])
    captured = capsys.readouterr()
    return status, captured.err.strip()


def test_cli_errors_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_run_dir(tmp_path / "good", rails=False, checks=False, trend=False)
    cases: list[tuple[list[str], str]] = [([str(tmp_path / "nope")], "does not exist")]
    empty = tmp_path / "empty"
    empty.mkdir()
    cases.append(([str(empty)], "run.json is missing"))
    corrupt = write_run_dir(tmp_path / "corrupt", rails=False, checks=False, trend=False)
    (corrupt / "run.json").write_text("{", encoding="utf-8")
    cases.append(([str(corrupt)], "run.json is not valid JSON"))
    future = write_run_dir(tmp_path / "future", rails=False, checks=False, trend=False)
    meta = json.loads((future / "run.json").read_text(encoding="utf-8"))
    (future / "run.json").write_text(json.dumps({**meta, "format_version": 99}), encoding="utf-8")
    cases.append(([str(future)], "format_version 99"))
    old = write_run_dir(tmp_path / "old", rails=False, checks=False, trend=False)
    (old / "results.csv").write_text("collective,bytes,busbw\nall_reduce,8,1\n", encoding="utf-8")
    cases.append(([str(old)], "lacks columns"))
    cases.append(([str(good), "--unit", "MB/s"], "--unit 'MB/s' is not one of"))
    cases.append(([str(good), "--url-prefix", "charts"], "must end with '/'"))
    for args, message in cases:
        status, err = _cli(args, capsys)
        assert status == 2, args
        assert message in err and err.startswith("railbench: error: ") and "\n" not in err, err
        assert "Traceback" not in err


@pytest.mark.slow
def test_cli_writes_the_report_without_importing_torch(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path / "run", trend=False)
    code = (
        "import sys; from bench.cli import main; "
        f"status = main(['report', {str(run_dir)!r}, '--out', {str(tmp_path / 'out')!r}, '--no-images']); "
        "print('torch' in sys.modules); raise SystemExit(status)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=rank_env(), capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "False"
    assert f"report: {tmp_path / 'out' / 'report.html'}" in proc.stdout
    assert (tmp_path / "out" / "report.md").is_file() and not (tmp_path / "out" / "charts" / "pairs.png").exists()


def test_the_rail_rate_says_where_it_came_from(tmp_path: Path) -> None:
    """The sample's veth rails, judged at ``--rail-rate-gbps 0.5``, were said to run at 0.5 Gb/s "from sysfs"."""
    run_dir = write_run_dir(tmp_path / "run")
    profile = load_profile("lambda-1cc")
    said = dict(targets(load_inputs(run_dir), profile))
    assert said["rails"] == "400 Gb/s line rate per rail (the profile's rail rate)"

    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    rails = json.loads((run_dir / "rails.json").read_text(encoding="utf-8"))
    for record in rails["rails"]:
        record["line_rate_Gbps"] = 0.5
    (run_dir / "rails.json").write_text(json.dumps(rails), encoding="utf-8")
    for given, source in ((0.5, "given with --rail-rate-gbps"), (None, "from sysfs")):
        run["rails_test"]["rail_rate_gbps"] = given
        (run_dir / "run.json").write_text(json.dumps(run), encoding="utf-8")
        said = dict(targets(load_inputs(run_dir), profile))
        assert said["rails"] == f"0.5 Gb/s line rate per rail ({source})"


def test_rail_rows_without_a_judgement_clear_no_part(tmp_path: Path) -> None:
    """A run that ended mid-measurement (a dead link, a lost rank) left rail rows but no rails.json: the rails
    section says the judge never ran, never "named no defect" under a verdict that names a link."""
    run_dir = write_run_dir(tmp_path / "run", rails=False, checks=False, trend=False)
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    run["failure"] = {"kind": "link-died", "message": "the link n1 mlx5_1 - n2 mlx5_1 died", "step": "rails"}
    (run_dir / "run.json").write_text(json.dumps(run), encoding="utf-8")
    page = write_report(run_dir, options=ReportOptions(images=False)).report_md.read_text(encoding="utf-8")
    rails = page.split("## Rails", 1)[1].split("\n## ", 1)[0]
    assert "named no defect" not in rails
    assert "ended before it judged its pairs (the run ended early: link-died" in rails
    assert "clear no part" in rails


def test_an_intra_node_transient_is_said_and_fails_nothing(tmp_path: Path) -> None:
    """A local pair slow once and normal when re-measured is recorded in rails.json's intra_node and said in the
    report's intra-node section as a transient, never a defect."""
    run_dir = write_run_dir(tmp_path / "run", checks=False, trend=False)
    rails = json.loads((run_dir / "rails.json").read_text(encoding="utf-8"))
    rails["intra_node"]["transients"] = [
        {"node": "node01/gpu2", "peer": "node01/gpu6", "samples_Gbps": [0.18], "confirm_Gbps": [0.25, 0.24]}
    ]
    (run_dir / "rails.json").write_text(json.dumps(rails), encoding="utf-8")
    page = write_report(run_dir, options=ReportOptions(images=False)).report_md.read_text(encoding="utf-8")
    intra = page.split("## Intra-node", 1)[1].split("\n## ", 1)[0]
    said = "1 local pair slow once and normal when re-measured (transient, not a fault): node01/gpu2-node01/gpu6."
    assert said in intra
