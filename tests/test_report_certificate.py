"""The acceptance report as a certificate: the verdict word and its reasons, the preflight grid from
checks.json as accept writes it, the traffic proof from the byte counters, the per-size table, the
environment per node, and (with real ranks and headless Chromium) a report whose every chart has marks at
finite positions."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench import codec
from bench.check.items import check_items
from bench.check.node import CheckAnswer, to_json
from bench.commands.compare import CompareConfig
from bench.commands.compare import run as compare
from bench.frame.decide import decide
from bench.history.store import add_run, list_runs, opened
from bench.preflight.checks import CheckResult
from bench.preflight.cluster import NodeReport
from bench.profile.cluster import load_profile
from bench.report import certificate as cert
from bench.report import summary
from bench.report.build import ReportOptions, write_report
from bench.report.inputs import RunInputs
from bench.report.traffic import traffic_proof
from bench.rundir.checksjson import ChecksDoc
from bench.rundir.files import atomic_write_json
from bench.rundir.judged_by import JudgedBy
from bench.rundir.runjson import RunDoc, new_record, read_run_json
from tests.support.history_fixtures import make_run_dir
from tests.support.report_browser import chromium, missing_browser, render
from tests.support.report_data import ClusterModel, rails_doc, run_json

HOSTS = tuple(f"gpu-node-{i:02d}" for i in range(1, 17))
AG = ("all_gather", "world", "world")


def _accept_checks(bad: str | None = None) -> dict[str, Any]:
    """checks.json in the layout ``check --json`` and ``accept`` write (``nodes`` with ``results``)."""
    nodes = []
    for host in HOSTS:
        firmware = "28.39.1002" if host != "gpu-node-07" else "28.36.1010"
        results = [
            {"check": "ib-devices", "status": "pass", "reason": "9 RDMA devices", "device": None},
            {
                "check": "rail",
                "status": "fail" if host == bad else "pass",
                "reason": "mlx5_4 port 1 DOWN" if host == bad else "8 rails ACTIVE at 400 Gb/sec",
                "device": None,
            },
            {"check": "gpu-nic-affinity", "status": "skip", "reason": "no GPU on this machine", "device": None},
        ]
        nodes.append(
            {
                "node": host,
                "verdict": "fail" if host == bad else "pass",
                "results": results,
                "versions": {"nccl": "2.23.4", "torch": "2.5.1", "driver": "550.127.05", "firmware": firmware},
            }
        )
    return {
        "profile": "lambda-1cc",
        "nranks": 128,
        "verdict": "fail" if bad else "pass",
        "nodes": nodes,
        "cross_node": [],
    }


def _counters(mlx5_0: int = 0) -> dict[str, dict[str, dict[str, object]]]:
    per_node = {}
    for host in HOSTS:
        devices: dict[str, dict[str, object]] = {
            f"mlx5_{k}": {"tx_bytes": 5 << 30, "rx_bytes": 5 << 30, "kind": "ib"} for k in range(1, 9)
        }
        devices["mlx5_0"] = {"tx_bytes": mlx5_0 if host == "gpu-node-03" else 0, "rx_bytes": 0, "kind": "ib"}
        devices["eno1"] = {"tx_bytes": 4096, "rx_bytes": 8192, "kind": "net"}
        per_node[host] = devices
    return per_node


def _run(tmp_path: Path, *, profile: str = "lambda-1cc", target: float | None = 3200.0, **meta: object) -> Path:
    busbw = {(*AG, 0): 0.0, (*AG, 1 << 20): 40.0, (*AG, 1 << 30): 380.0}
    run_dir = make_run_dir(
        tmp_path,
        started_utc="2026-11-20T02:00:00Z",
        busbw=busbw,
        hosts=HOSTS,
        nranks=128,
        command="accept",
        meta_extra={"profile": profile, **meta},
    )
    if target is not None:  # as run/accept write it: the target on every row
        text = (run_dir / "results.csv").read_text().splitlines()
        head = text[0].split(",")
        rows = [line.split(",") for line in text[1:]]
        for row in rows:
            row[head.index("target_Gbps")] = str(target)
        (run_dir / "results.csv").write_text("\n".join([text[0], *(",".join(r) for r in rows)]) + "\n")
    return run_dir


def test_the_grid_reads_checks_json_as_accept_writes_it() -> None:
    grid = cert.checks_grid(_checks(_accept_checks(bad="gpu-node-05")))
    assert grid is not None and grid.columns == ("ib-devices", "rail", "gpu-nic-affinity")
    assert len(grid.rows) == 16 and dict(grid.rows)["gpu-node-05"] == ("pass", "fail", "skip")
    assert grid.reasons[("gpu-node-05", "rail")] == "mlx5_4 port 1 DOWN"


def test_a_failed_checks_action_reaches_the_certificates_defects(tmp_path: Path) -> None:
    """A GPUDirect check's action (checks.json ``action``) is the defect's action in the report's table."""
    result = {
        "check": "pcie-link",
        "status": "fail",
        "reason": "GPU 3 (0000:73:00.0): PCIe link at x8 at 32 GT/s (Gen5), capable of x16",
        "device": "GPU3",
        "action": "reseat GPU 3 (0000:73:00.0) on gpu-node-05",
        "gpus": [3],
    }
    checks = _checks({"nodes": [{"node": "gpu-node-05", "results": [result]}], "cross_node": []})
    grid = cert.checks_grid(checks)
    assert grid is not None and grid.answers[0].action == result["action"]
    inputs = RunInputs(tmp_path, _doc("lambda-1cc"), pd.DataFrame(), None, checks, None)
    [part] = summary.defects(inputs, grid)
    assert (part.node, part.part, part.action) == ("gpu-node-05", "GPU3", result["action"])
    assert part.finding.startswith("pcie-link: GPU 3 (0000:73:00.0): PCIe link at x8")


def test_every_check_defect_has_its_action_from_the_actions_table(tmp_path: Path) -> None:
    """Issue 33 item 9: the certificate's action column was "—" for check defects (no RDMA driver, firmware
    that differs between nodes) though the actions table says what to do about each."""
    profile_path = tmp_path / "p.toml"
    profile_path.write_text(
        'transport = "ib"\n[actions.checks]\n"ib-devices" = "open a ticket: {node} lost its RDMA driver"\n'
    )
    profile = load_profile(str(profile_path))
    reports = [
        NodeReport("node01", (CheckResult("ib-devices", "fail", "no RDMA device: is mlx5_ib loaded?"),), {}),
        NodeReport("node02", (CheckResult("rail", "fail", "mlx5_4:1: DOWN", "mlx5_4:1"),), {}),
    ]
    cross = [CheckResult("same-versions", "fail", "firmware differs: 28.36 on node02; 28.39 on node01", "node02")]
    items = check_items(reports, cross)
    doc = json.loads(json.dumps(to_json(CheckAnswer(profile, reports, cross, decide(items), 2))))
    grid = cert.checks_grid(_checks(doc))
    actions = {(d.node, d.finding.split(":")[0]): d.action for d in summary.defects(_inputs(), grid)}
    assert actions == {
        ("node01", "ib-devices"): "open a ticket: node01 lost its RDMA driver",  # the profile's own sentence
        ("node02", "rail"): "check the port state, the rate and the cable of node02 mlx5_4 port 1",
        ("all nodes", "same-versions"): "bring node02 to the version the other nodes run (HCA firmware: the "
        "vendor's update tool; driver, NCCL, torch: the cluster's image)",
    }
    # a checks.json written before it carried actions gets each check's default
    for result in doc["nodes"][0]["results"]:
        result.pop("action")
    (old,) = [d for d in summary.defects(_inputs(), cert.checks_grid(_checks(doc))) if d.node == "node01"]
    assert old.action == "load the RDMA driver on node01 (modprobe mlx5_ib) and check that ibstat lists its HCAs"


def _checks(doc: object) -> ChecksDoc:
    """checks.json as every reader gets it (``bench.rundir.checksjson``)."""
    return codec.decode(ChecksDoc, doc, "checks.json: ")


def _inputs() -> RunInputs:
    return RunInputs(Path("."), _doc("lambda-1cc"), pd.DataFrame(), None, None, None)


def _doc(profile: str, **sections: object) -> RunDoc:
    """A run.json record holding ``sections`` (what the certificate's readers take)."""
    core = {"format_version": 1, "tool": "railbench", "version": "0", "command": "run", "cluster": "c"}
    return new_record(**core, profile=profile, started_utc="2026-11-20T02:00:00Z", status="complete", **sections)


def test_traffic_proof_says_mlx5_0_carried_nothing(tmp_path: Path) -> None:
    proof = traffic_proof(_doc("lambda-1cc", counters=_counters()), None, load_profile("lambda-1cc"))
    assert (
        proof is not None
        and proof.ok
        and proof.sentences[0] == ("mlx5_0 carried 0 B on all 16 nodes during the world sweep.")
    )
    sweep = proof.windows[0]
    assert [(r.device, r.role) for r in sweep.rows] == [
        *((f"mlx5_{k}", f"rail {k - 1}") for k in range(1, 9)),  # the profile's rail names, in rail order
        ("mlx5_0", "must stay idle"),
        ("other devices (up to 1 a node)", "other"),
    ]
    assert sweep.split and sweep.rows[0].tx == 16 * (5 << 30) and sweep.rows[0].rx == 16 * (5 << 30)
    loud = traffic_proof(_doc("lambda-1cc", counters=_counters(mlx5_0=3 << 30)), None, load_profile("lambda-1cc"))
    assert loud is not None and not loud.ok
    assert loud.sentences[0] == "mlx5_0 carried 3.22 GB on gpu-node-03 during the world sweep: it must stay idle."
    # RunPod: the management interface (eth0) is one of the devices that must stay idle
    runpod = traffic_proof(
        _doc(
            "runpod-instant",
            counters={
                "pod1": {
                    "eth0": {"tx_bytes": 100, "rx_bytes": 100, "kind": "net"},
                    "eth1": {"tx_bytes": 1 << 30, "rx_bytes": 1 << 30, "kind": "net"},
                }
            },
        ),
        None,
        load_profile("runpod-instant"),
    )
    assert runpod is not None and runpod.sentences[0].startswith("eth0 carried at most 200 B on pod1")


def test_the_traffic_proof_scales_to_25_devices_and_keeps_tx_and_rx_apart() -> None:
    model = ClusterModel(hosts=tuple(f"node{i:02d}" for i in range(1, 65)), bad=("node05", 3), other_devices=14)
    run, rails = run_json(model), rails_doc(model)
    proof = traffic_proof(RunDoc.from_json(run), rails, load_profile("lambda-1cc"))
    assert proof is not None and proof.ok
    sweep, tested = proof.windows
    assert len(run["counters"]["node01"]) == 25  # 8 rails, mlx5_0, eth0, lo and 14 bridges, veths and bonds
    assert [r.role for r in sweep.rows] == [*(f"rail {k}" for k in range(8)), "management", "must stay idle", "other"]
    lo = run["counters"]["node01"]["lo"]
    other = sweep.rows[-1]
    assert other.tx is not None and other.tx >= 64 * lo["tx_bytes"] and other.tx < 2 * 64 * lo["tx_bytes"]
    assert sweep.rows[3].least == ("node05", 2 * int(5_100_000_000 * 0.45) + 4096 * 3 + 2048 * 4)  # the weak HCA
    assert tested.name == "rails test" and tested.split and len(tested.rows) == 11
    assert [a.rail for a in proof.alone] == list(range(8)) and proof.alone[0].own == 64 * 250_000_000


def test_the_certificate_page(tmp_path: Path) -> None:
    run_dir = _run(tmp_path / "run", verdict="pass", counters=_counters(), env={"NCCL_IB_HCA": "^=mlx5_0"})
    atomic_write_json(run_dir / "checks.json", _accept_checks())
    paths = write_report(run_dir, options=ReportOptions(images=False))
    md = paths.report_md.read_text(encoding="utf-8")
    page = paths.report_html.read_text(encoding="utf-8")
    assert md.index("**Verdict: PASS**") < md.index("## Preflight checks") < md.index("## Traffic proof")
    assert md.index("## Traffic proof") < md.index("## World sweep") < md.index("## Environment")
    assert "mlx5\\_0 carried 0 B on all 16 nodes during the world sweep." in md
    assert "| fact | value |" in md and "|  |  |" not in md and "<th></th>" not in page
    visible = re.sub(r"<script.*?</script>", "", page, flags=re.S)  # the Vega bundle spells None itself
    assert "None" not in md and "None" not in visible and not re.search(r"\b1 nodes\b", md + visible)
    # zero-byte rows stay in the per-size table, and out of the log-scale chart
    assert "| all\\_gather | 0 | 0 | — | 0.00 | 0.00 | 0 | — |" in md  # size, count, the out-of-place half
    chart_csv = (run_dir / "charts" / "busbw-vs-size.csv").read_text().splitlines()
    assert all(int(line.split(",")[1]) > 0 for line in chart_csv[1:])
    # the environment marks the node whose HCA firmware differs
    assert "28.36.1010 (odd)" in md and "Odd nodes: gpu-node-07 (firmware differ" in md
    assert '<span class="verdict verdict-pass">PASS</span>' in page
    assert 'id="section-checks"' in page and 'title="mlx5_4' not in page  # nothing failed here


@pytest.mark.slow
def test_badges_render_the_recorded_verdict(tmp_path: Path) -> None:
    """The badge is run.json's verdict record, shown as it is: the report never judges again (issue 21)."""
    why = "profile local sets no busbw target for these collectives"
    local = _run(tmp_path / "local", profile="local", target=None, verdict="measured", reasons=[why])
    md = write_report(local, options=ReportOptions(images=False)).report_md.read_text(encoding="utf-8")
    assert "**Verdict: MEASURED**" in md and "| placement | 16 nodes, 128 ranks |" in md
    assert f"- {why}" in md.split("| fact | value |")[0]

    failed = _run(tmp_path / "failed", verdict="fail", reasons=["gpu-node-05 rail: mlx5_4 port 1 DOWN"])
    atomic_write_json(failed / "checks.json", _accept_checks(bad="gpu-node-05"))
    md = write_report(failed, options=ReportOptions(images=False)).report_md.read_text(encoding="utf-8")
    head = md.split("\n## ")[0]
    assert "**Verdict: FAIL**" in head
    # the check's action from the actions table (issue 33 item 9), never a dash
    assert (
        "| check | gpu-node-05 | — | — | rail: mlx5\\_4 port 1 DOWN | check the port state, the rate and the cable of "
        "gpu-node-05 (the part its reason names) |" in head
    )
    assert "Other failures" not in head  # the failed check is the verdict's one reason, said once

    history = tmp_path / "h.sqlite"
    for night in range(1, 6):
        add_run(history, _run(tmp_path / f"n{night}", verdict="pass", started_utc=f"2026-11-0{night}T02:00:00Z"))
    tonight = _run(tmp_path / "tonight", verdict="pass", versions={"nccl": "2.28.1", "torch": "2.6.0"})
    add_run(history, tonight)
    (tonight / "results.csv").write_text((tonight / "results.csv").read_text().replace("380.0,", "300.0,"))
    assert compare(CompareConfig(run_dir=tonight, history=history)) == 1
    # compare marks the run regressed in its run.json and the history; the page, the metrics and
    # ``history list`` all read that
    meta = read_run_json(tonight).to_json()
    assert meta["verdict"] == "regressed" and meta["before_compare"]["verdict"] == "pass"
    assert any("regressed" in r for r in meta["reasons"])
    md = (tonight / "report.md").read_text(encoding="utf-8")
    assert "**Verdict: REGRESSED**" in md and "## Compare with the recent past" in md
    assert "NCCL 2.27.3 -&gt; 2.28.1 since the baseline" in md.split("\n## ")[0]  # "->", escaped
    with opened(history, create=False) as conn:
        stored = {Path(r.run_dir).name: r.verdict for r in list_runs(conn)}
    assert stored["tonight"] == "regressed" and stored["n1"] == "pass"


@pytest.mark.mpi
@pytest.mark.browser
def test_accept_local_default_sweep_gives_a_certificate_with_no_empty_chart(
    tmp_path: Path, accept_local_np4: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    why = missing_browser()
    if why:
        pytest.skip(why)
    done, out = accept_local_np4  # accept's default sizes up to 16M (tests/conftest.py)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = (out / "results.csv").read_text()
    assert re.search(r"^all_gather,world,world,4,1,0,", results, re.M)  # -b 8 on 4 ranks: a 0-byte row
    with chromium() as driver:
        shown = render(driver, (out / "report.html").as_uri(), "div.vega", tmp_path / "report.png")
        assert shown.problems() == []
        state = driver.execute_script(_MARKS_JS)
        sections = driver.execute_script(
            "return Array.from(document.querySelectorAll('#verdict, section.part')).map(s => s.id)"
        )
        badge = driver.execute_script("return document.querySelector('#verdict .verdict').textContent")
        proof = driver.execute_script("return document.querySelector('#section-traffic .sentence').textContent")
    assert badge == "MEASURED"
    assert sections[:4] == ["verdict", "section-checks", "section-traffic", "section-sweep"]
    assert "section-environment" in sections
    assert proof  # one sentence about the counters
    assert set(state) >= {"busbw-vs-size"}
    for name, marks in state.items():
        assert marks["marks"] > 0 and marks["bad"] == 0, (name, marks)
    assert state["busbw-vs-size"]["xs"] >= 5  # spread across the x axis, not piled on the y axis


# Every mark item of every chart (not axes, legends or titles) and whether its x and y are finite numbers.
_MARKS_JS = """
const out = {};
for (const [name, view] of Object.entries(window.railbenchViews || {})) {
  let marks = 0, bad = 0; const xs = new Set();
  const walk = (node) => {
    if (!node) return;
    for (const item of node.items || []) {
      if (node.marktype !== 'group' && node.role === 'mark') {
        marks++;
        if (Number.isFinite(item.x) && Number.isFinite(item.y)) xs.add(Math.round(item.x)); else bad++;
      }
      for (const child of item.items || []) walk(child);
    }
  };
  walk(view.scenegraph().root);
  out[name] = {marks: marks, bad: bad, xs: xs.size};
}
return out;
"""


def test_an_old_run_is_shown_against_the_profile_it_recorded() -> None:
    """Issue 22: the report reloaded the profile by name, so an old run was judged against today's TOML."""
    recorded = {
        "profile": "lambda-1cc",
        "source": "/etc/railbench/lambda-1cc.toml (as it was)",
        "pass_fraction": 0.9,
        "judge_min_bytes": 256 << 20,
        "compare_min_bytes": 1 << 20,
        "idle_devices": ["mlx5_9"],
        "counter_tolerance_bytes": 0,
    }
    judged = codec.decode(JudgedBy, recorded)
    doc = _doc("lambda-1cc", counters=_counters(mlx5_0=3 << 30))
    proof = traffic_proof(doc, None, load_profile("lambda-1cc"), judged)
    # today's lambda-1cc excludes mlx5_0; the run was judged with mlx5_9 idle, and is shown that way
    assert proof is not None and proof.ok, proof
    idle = {r.device for w in proof.windows for r in w.rows if r.role == "must stay idle"}
    assert "mlx5_0" not in idle
    today = traffic_proof(doc, None, load_profile("lambda-1cc"))
    assert today is not None and not today.ok  # a run from before judged_by: today's profile, mlx5_0 idle
