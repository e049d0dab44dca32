"""rails.json, checks.json and compare.json carry a format version: a document of each older version reads
as a current one would (rails v0, checks v0, v1 and v2, compare v1), read strictly into its typed record; a newer one
is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.exits import UserError
from bench.rundir.checksjson import CheckResult, ChecksDoc, NodeChecks, read_checks_json
from bench.rundir.comparedoc import read_compare_json
from bench.rundir.docversion import CHECKS_FORMAT_VERSION, COMPARE_FORMAT_VERSION, RAILS_FORMAT_VERSION
from bench.rundir.finding_words import describe
from bench.rundir.findings import check_finding
from bench.rundir.railsdoc import read_rails_doc
from bench.slurm import drain
from tests.support import railbench_inline

RAILS_V0: dict[str, object] = {"skipped": "no rails", "nodes": [], "rails": [], "measurements": [], "defects": []}
CHECKS_V0: dict[str, object] = {
    "profile": "p",
    "nranks": 2,
    "verdict": "PASS",
    "nodes": [
        {
            "node": "n1",
            "verdict": "pass",
            "versions": {"nccl": "2.23.4", "driver": None},
            "results": [{"check": "rail", "status": "pass", "reason": "n1 mlx5_1 is ACTIVE", "device": "mlx5_1"}],
        }
    ],
    "cross_node": [],
}
CHECKS_V1: dict[str, object] = {
    "format_version": 1,
    "checks": [
        {"name": "rail", "status": "fail", "reason": "mlx5_1 is DOWN", "device": "mlx5_1"},
        {"check": "pcie-link", "status": "warn", "reason": "GPU1 at x8", "device": "GPU1", "action": "reseat GPU1"},
    ],
    "cross_node": [{"check": "same-answers", "status": "pass", "reason": "2 nodes agree", "device": None}],
}
"""The older single-node layout: a flat ``checks`` list, its check called ``name``, no ``gpus`` (nor ``action``
before it was written)."""
COMPARE_V1: dict[str, object] = {
    "format_version": 1,
    "tool": "railbench",
    "command": "compare",
    "baseline": {"description": "last 3 comparable runs", "runs": [{"time_utc": "t", "run_dir": "r", "id": 4}]},
    "summary": {"regressed": 1, "unchanged": 0},
    "exit_status": 1,
    "metrics": [
        {
            "metric": "all_reduce/world/world/1024",
            "collective": "all_reduce",
            "scope": "world",
            "group": "world",
            "bytes": 1024,
            "state": "regressed",
            "busbw_GBps": 30.5,
            "baseline_GBps": 40,
            "change": -0.2375,
        }
    ],
}


def _write(run_dir: Path, name: str, doc: dict[str, object]) -> Path:
    run_dir.mkdir(exist_ok=True)
    (run_dir / name).write_text(json.dumps(doc))
    return run_dir


def test_a_versionless_rails_json_reads_as_the_current_version(tmp_path: Path) -> None:
    old = read_rails_doc(_write(tmp_path / "old", "rails.json", RAILS_V0))
    new = read_rails_doc(_write(tmp_path / "new", "rails.json", {**RAILS_V0, "format_version": RAILS_FORMAT_VERSION}))
    assert old is not None and old == new
    assert old.to_json()["format_version"] == RAILS_FORMAT_VERSION


def test_a_versionless_checks_json_reads_as_the_current_version(tmp_path: Path) -> None:
    old = read_checks_json(_write(tmp_path / "old", "checks.json", CHECKS_V0))
    (entry,) = CHECKS_V0["nodes"]  # type: ignore[misc]  # the literal above: one node
    results = [{**r, "action": None, "gpus": []} for r in entry["results"]]
    current = {**CHECKS_V0, "format_version": CHECKS_FORMAT_VERSION, "nodes": [{**entry, "results": results}]}
    assert old is not None and old == read_checks_json(_write(tmp_path / "new", "checks.json", current))
    (node,) = old.nodes
    assert old.format_version == CHECKS_FORMAT_VERSION and isinstance(old, ChecksDoc)
    assert node == NodeChecks(
        node="n1",
        verdict="pass",
        versions={"nccl": "2.23.4", "driver": None},
        results=(CheckResult(check="rail", status="pass", reason="n1 mlx5_1 is ACTIVE", device="mlx5_1"),),
    )


def test_a_checks_json_of_version_1_in_the_single_node_layout_reads_as_the_current_version(tmp_path: Path) -> None:
    doc = read_checks_json(_write(tmp_path, "checks.json", CHECKS_V1))
    assert doc is not None and doc.format_version == CHECKS_FORMAT_VERSION
    assert doc.checks == (
        CheckResult("rail", "fail", "mlx5_1 is DOWN", "mlx5_1"),
        CheckResult("pcie-link", "warn", "GPU1 at x8", "GPU1", "reseat GPU1"),
    )
    assert doc.cross_node == (CheckResult("same-answers", "pass", "2 nodes agree"),)


def test_a_current_checks_json_is_read_strictly(tmp_path: Path) -> None:
    """Once upgraded, the answers are read as they are written: the older keys are refused in the current
    version, as a key any record does not declare is."""
    current = {**CHECKS_V1, "format_version": CHECKS_FORMAT_VERSION}
    with pytest.raises(
        UserError, match=r"checks\.json: checks\[0\]\.names fields this railbench does not know \(name\)"
    ):
        read_checks_json(_write(tmp_path, "checks.json", current))


def test_a_compare_json_of_version_1_reads_as_its_typed_record(tmp_path: Path) -> None:
    doc = read_compare_json(_write(tmp_path, "compare.json", COMPARE_V1))
    assert doc is not None and doc.format_version == COMPARE_FORMAT_VERSION == 1
    (metric,) = doc.metrics
    assert (metric.state, metric.busbw_GBps, metric.baseline_GBps, metric.changes) == ("regressed", 30.5, 40, ())
    assert doc.summary == {"regressed": 1, "unchanged": 0} and doc.baseline and doc.baseline.runs[0].id == 4


def test_a_damaged_checks_or_compare_json_names_the_field(tmp_path: Path) -> None:
    damaged = {**CHECKS_V0, "nodes": [{"node": "n1", "results": [{"check": "rail", "status": 3, "reason": "up"}]}]}
    with pytest.raises(UserError, match=r"checks\.json: nodes\[0\]\.results\[0\]\.status holds 3, not one of"):
        read_checks_json(_write(tmp_path, "checks.json", damaged))
    with pytest.raises(UserError, match=r"compare\.json: summary\.regressed holds \"many\", not a whole number"):
        read_compare_json(_write(tmp_path, "compare.json", {**COMPARE_V1, "summary": {"regressed": "many"}}))


@pytest.mark.parametrize(
    ("name", "doc"), [("rails.json", RAILS_V0), ("checks.json", CHECKS_V0), ("compare.json", COMPARE_V1)]
)
def test_a_newer_version_is_refused_in_one_line(tmp_path: Path, name: str, doc: dict[str, object]) -> None:
    _write(tmp_path, name, {**doc, "format_version": 99})
    reader = {"rails.json": read_rails_doc, "checks.json": read_checks_json, "compare.json": read_compare_json}[name]
    with pytest.raises(UserError) as refused:
        reader(tmp_path)
    message = str(refused.value)
    assert "\n" not in message and name in message and "99" in message and "upgrade railbench" in message


def test_report_refuses_a_newer_rails_json_with_exit_2_in_one_line(tmp_path: Path) -> None:
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(Path(__file__).parent.parent / "reports" / "sample" / "run", run_dir)
    rails = json.loads((run_dir / "rails.json").read_text())
    (run_dir / "rails.json").write_text(json.dumps({**rails, "format_version": 99}))
    # In this process: the refusal comes before any rank or chart (railbench_inline, the same exit status and
    # stderr as a started interpreter, without a second of importing railbench again).
    done = railbench_inline(["report", str(run_dir), "--out", str(tmp_path / "out")])
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "upgrade railbench" in done.stderr


def test_a_checks_json_of_version_2_gets_the_words_its_drain_reason_said(tmp_path: Path) -> None:
    """Version 3's answers carry their words without the device (``said``, written by the checks); a version-2
    answer's are derived as that release's Slurm drain reason took them: after ``<device>: `` where the reason
    opens so, else none (the whole reason is the words)."""
    down = {"check": "rail", "status": "fail", "reason": "mlx5_3:1: port DOWN", "device": "mlx5_3:1", "action": None}
    other = {"check": "nccl-ib-hca", "status": "fail", "reason": "NCCL_IB_HCA unset: uses mlx5_0", "device": "mlx5_0"}
    doc = read_checks_json(_write(tmp_path, "checks.json", {"format_version": 2, "cross_node": [down, other]}))
    assert doc is not None and doc.format_version == CHECKS_FORMAT_VERSION == 3
    assert [r.said for r in doc.cross_node] == ["port DOWN", None]
    fault = drain.NodeFault("n1", check_finding("n1", doc.cross_node[0]))
    assert (fault.part, fault.finding) == ("rail mlx5_3:1", "port DOWN")
    assert drain.NodeFault("n1", check_finding("n1", doc.cross_node[1])).finding == "NCCL_IB_HCA unset: uses mlx5_0"


def test_a_rails_json_of_version_1_gives_its_causes_the_words_checks_json_would(tmp_path: Path) -> None:
    """rails.json's causes are a check's answer inline: version 2 carries ``said`` as checks.json's version 3
    does, derived for a version-1 document the same way (defects', the intra-node matrix's and node_causes)."""
    cause = {"check": "port-mtu", "status": "fail", "reason": "mlx5_2:1: active MTU 1024 bytes", "device": "mlx5_2:1"}
    defect = {"kind": "link", "node": "n1", "rail": 1, "causes": [cause]}
    v1 = {**RAILS_V0, "format_version": 1, "defects": [defect], "node_causes": [{**cause, "node": "n1"}]}
    doc = read_rails_doc(_write(tmp_path, "rails.json", v1))
    (read,) = doc.defects
    assert [c.result.said for c in (*read.causes, *doc.node_causes)] == ["active MTU 1024 bytes"] * 2
    assert doc.to_json()["format_version"] == RAILS_FORMAT_VERSION == 3


def test_an_earlier_releases_run_directory_reads_and_says_its_defect_as_it_wrote_it() -> None:
    """A real accept run of an earlier release (tests/data/release_run: rails.json version 1, checks.json version
    2): both read into today's records, and its defect, now a part held whole inside it, says the line that
    release wrote, its rails.json keys in the order it wrote them."""
    run_dir = Path(__file__).parent / "data" / "release_run"
    rails, checks = read_rails_doc(run_dir), read_checks_json(run_dir)
    assert rails is not None and checks is not None and checks.format_version == CHECKS_FORMAT_VERSION
    (defect,) = rails.defects
    assert (defect.kind, defect.node, defect.rail) == ("link", "node03", 1)
    assert defect.line == describe(defect)
    written = json.loads((run_dir / "rails.json").read_text())["defects"][0]
    assert list(defect.to_json()) == list(written)
