"""A certificate that reads at 64 nodes x 8 rails: the summary (verdict, each defect once with its node, rail,
NIC and action, what was tested, the targets) on the first screen, evidence below grouped by step, the
traffic proof a row per device that matters, identical skip reasons said once, and (in headless Chromium at
1280 px) no horizontal overflow with every chart drawn.

The run directory is synthetic (``tests/support/report_data.py``), in the layout ``railbench accept`` writes: 25
network devices a node, a slow HCA (a link fault), a slow GPU, a failed firmware check and a transient pair.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from bench import codec
from bench.report import certificate as cert
from bench.report import summary as top
from bench.report.build import ReportOptions, ReportPaths, write_report
from bench.report.inputs import load_inputs
from bench.report.page import summarize
from bench.rundir.railsdoc import RailDefect, RailsDoc
from tests.support.report_browser import chromium, missing_browser, render
from tests.support.report_data import ClusterModel, write_run_dir

HOSTS = tuple(f"lambda-1cc-node-{i:02d}" for i in range(1, 65))
FIRMWARE = "mlx5_4 runs 28.36.1010, the other rails 28.39.1002"
MODEL = ClusterModel(
    hosts=HOSTS,
    bad=(HOSTS[16], 3),
    bad_gpu=(HOSTS[40], 5),
    transient=(HOSTS[2], HOSTS[9], 6),
    failed_check=(HOSTS[52], "rail-firmware", FIRMWARE),
    cluster="lambda-1cc-64",
    min_bytes=8,
    max_bytes=1 << 34,
)
FOLD_PX = 720
"""What a 1280 x 800 laptop screen shows of a page under the browser's own bars."""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run_dir(tmp_path_factory.mktemp("run64") / "run", MODEL, trend=False)


@pytest.fixture(scope="module")
def report(run_dir: Path) -> ReportPaths:
    return write_report(run_dir, options=ReportOptions(images=False))


@pytest.mark.slow
def test_the_summary_says_each_defect_once_with_where_and_what_to_do(run_dir: Path) -> None:
    summary = summarize(load_inputs(run_dir), 0.9)
    assert summary.verdict == "FAIL"
    found = {(d.kind, d.node, d.rail, d.part) for d in summary.defects}
    assert found == {
        ("check", HOSTS[52], "", ""),
        ("link", HOSTS[16], "3", "mlx5_4"),
        ("gpu", HOSTS[40], "", "GPU 5 (0000:68:00.0)"),  # the number and the PCI address (issue 29 item 6)
    }
    link = next(d for d in summary.defects if d.kind == "link")
    assert link.action == f"check the HCA and the switch port of {HOSTS[16]} mlx5_4"
    assert link.finding.startswith("173 Gb/s = 43% of 400 Gb/s in 63/63 pairs → link fault")
    assert "action" not in link.finding and HOSTS[16] not in link.finding  # the columns say those
    # accept's per-node and per-rail reasons repeat the defects' own lines: nothing else is left to say
    assert summary.reasons == ()
    tested = dict(summary.tested)
    assert tested["rails"] == "8 rails: rail groups (all_gather, all_reduce) and 2,016 node pairs per rail"
    assert tested["intra-node"] == "28 GPU pairs, both directions, on each of 64 nodes"
    # like with like (issue 33 item 10): a check that answers per rail counts once per node, at its worst
    assert tested["preflight"] == (
        "11 checks on 64 nodes (704 answers, one per check and node: 1 failed, 447 passed, 256 skipped); "
        "2 checks across the nodes: 2 passed"
    )
    targets = dict(summary.targets)
    assert targets["rails"] == "400 Gb/s line rate per rail (the profile's rail rate)"
    assert targets["pass line"].startswith("90% of the target")


@pytest.mark.slow
def test_64_nodes_of_checks_read_as_a_few_rows_and_each_reason_once(run_dir: Path) -> None:
    grid = cert.checks_grid(load_inputs(run_dir).checks)
    assert grid is not None
    groups = cert.grid_groups(grid, HOSTS)
    assert [label for label, _, _ in groups] == [
        "lambda-1cc-node-01–52, lambda-1cc-node-54–64",
        "lambda-1cc-node-53",
        "all nodes",
    ]
    reasons = [g.text() for g in cert.grid_reasons(grid, HOSTS)]
    assert reasons[0] == f"rail-firmware (fail) on lambda-1cc-node-53: {FIRMWARE}"
    assert "nccl-socket-ifname, socket-rail (skip) on all 64 nodes: profile lambda-1cc uses IB verbs" in reasons[1]
    assert len(reasons) == 4  # not 4 x 64


@pytest.mark.slow
def test_the_markdown_page_puts_the_summary_first_and_charts_before_long_tables(report: ReportPaths) -> None:
    md = report.report_md.read_text(encoding="utf-8")
    top, _, evidence = md.partition("\n## ")
    assert len(top.splitlines()) < 40  # one screen
    assert top.count("lambda-1cc-node-17") == 2  # the link fault: its node, and its action
    assert "### Defects (3)" in top and "Other failures" not in top
    order = ["Preflight checks", "Traffic proof", "World sweep", "Rails", "Intra-node", "Environment"]
    order = [f"\n## {title}" for title in order]
    assert [md.index(h) for h in order] == sorted(md.index(h) for h in order)
    assert md.index("### Bus bandwidth vs message size") < md.index("### Per size (world)")
    assert md.index("### Node × node pairs") < md.index("### Evidence for each defect")
    # the traffic proof: a row per rail, management and idle device, the other 15 a node summed
    traffic = evidence[evidence.index("Traffic proof") : evidence.index("\n## World sweep")]
    assert "| mlx5\\_0:1 | must stay idle | 0 B | 0 B | 0 B on each |" in traffic
    assert "| other devices (up to 15 a node) | other |" in traffic and "veth" not in traffic
    # the per-size table in the order the sweep ran (the terminal's order), not alphabetical
    sizes = md[md.index("### Per size (world)") :]
    assert sizes.index("| all\\_reduce | 8 |") < sizes.index("| all\\_gather | 8 |")


@pytest.mark.slow
def test_the_64_node_matrices_fill_their_grid_name_the_marked_nodes_and_draw_them_first(report: ReportPaths) -> None:
    """Issue 33 item 10: 8 rails in 3 columns left an empty ninth panel, 64 x 64 matrices had no node label,
    the GPU grid said "nodes with a marked cell first" and drew the marked node last, and the rails table said
    "at the largest size" over two different largest sizes."""
    pairs = json.loads((report.out_dir / "charts" / "pairs.vl.json").read_text())
    assert pairs["columns"] == 4  # 2 rows of 4 rails
    named = pairs["spec"]["encoding"]["y"]["axis"]["values"]
    assert {HOSTS[16], HOSTS[2], HOSTS[9]} <= set(named)  # the slow link's node and the transient pair's ends
    assert 8 <= len(named) <= 20 and pairs["spec"]["encoding"]["x"]["axis"]["values"] == named
    with (report.out_dir / "charts" / "gpus.csv").open() as handle:
        first = next(csv.DictReader(handle))
    assert (first["panel"], first["panel_order"]) == (HOSTS[40], "0")  # the slow GPU's node, drawn first
    gpus = json.loads((report.out_dir / "charts" / "gpus.vl.json").read_text())
    assert gpus["columns"] == 4  # 16 panels: 4 x 4, no empty place
    md = report.report_md.read_text(encoding="utf-8")
    rails = md[md.index("\n## Rails") : md.index("\n## Intra-node")]
    assert "### Each at its own largest size (fail below 90% of target)" in rails
    assert "| rail | all\\_reduce | 8 | 16G |" in rails and "| pair | sendrecv | 16128 | 64M |" in rails


_LAYOUT_JS = """
const d = document.documentElement;
const box = (q) => { const e = document.querySelector(q); return e ? e.getBoundingClientRect() : null; };
const wide = Array.from(document.querySelectorAll('body *'))
  .filter(e => e.getBoundingClientRect().right > d.clientWidth + 1)
  .slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className);
return {scrollWidth: d.scrollWidth, clientWidth: d.clientWidth, wide: wide,
        badge: box('#verdict .verdict'), defects: box('table.defects'), targets: box('table.targets'),
        badgeText: document.querySelector('#verdict .verdict').textContent,
        defectRows: document.querySelectorAll('#summary table.defects tbody tr').length};
"""


@pytest.mark.browser
@pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser()))
def test_at_1280_px_nothing_overflows_and_the_summary_is_above_the_fold(report: ReportPaths, tmp_path: Path) -> None:
    with chromium() as driver:
        shown = render(driver, report.report_html.as_uri(), "div.vega", tmp_path / "report-64.png")
        assert shown.problems() == []
        assert {"vis-pairs", "vis-gpus", "vis-busbw-vs-size"} <= set(shown.charts)
        driver.set_window_size(1280, 800)
        driver.execute_script("window.scrollTo(0, 0)")
        layout: dict[str, Any] = driver.execute_script(_LAYOUT_JS)
    assert layout["scrollWidth"] <= layout["clientWidth"], layout["wide"]
    assert layout["badgeText"] == "FAIL" and layout["defectRows"] == 3
    assert layout["badge"]["bottom"] < 100
    assert layout["defects"]["bottom"] < FOLD_PX and layout["targets"]["bottom"] < FOLD_PX, layout


@pytest.mark.slow
def test_a_defect_kind_the_report_has_never_seen_renders_from_its_fields(run_dir: Path) -> None:
    # a kind another release names (not in bench.rundir.defect_kinds): kind, rail, device and action are enough,
    # and its line, as that release said it, says the rest
    inputs = load_inputs(run_dir)
    leaf = codec.decode(
        RailDefect,
        {
            "kind": "optics",
            "node": None,
            "rail": 2,
            "device": "leaf-r2-u1",
            "action": "check leaf-r2-u1's optics",
            "severity": "fail",
            "line": "leaf-r2-u1 (rail 2, nodes 1-32): 190 Gb/s = 48% of 400 Gb/s in 496/496 pairs → optics fault",
        },
    )
    rails = dataclasses.replace(inputs.rails or RailsDoc(), defects=(leaf,), intra_node=None)
    (found,) = top.defects(dataclasses.replace(inputs, rails=rails), None)
    assert (found.kind, found.node, found.rail, found.part, found.action) == (
        "optics",
        "every node",
        "2",
        "leaf-r2-u1",
        "check leaf-r2-u1's optics",
    )
    # its line as written: nothing reads its words to cut them
    assert found.finding == (
        "leaf-r2-u1 (rail 2, nodes 1-32): 190 Gb/s = 48% of 400 Gb/s in 496/496 pairs → optics fault"
    )
