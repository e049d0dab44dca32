"""The toy job (tests/support/toy_job.py) on one gloo rank, in this process, through the real frame: ``run_job``
starts the world, the lifecycle writes run.json, junit.xml and the verdict. What the docs' "Adding a job"
promises is what a job gets, checked on the smallest job there is."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.exits import Interrupted, UserError
from bench.frame.config_parts import Launch, Output
from bench.frame.job import run_job
from bench.frame.launch_job import launch
from bench.frame.run import Run
from bench.rundir.verdict import Verdict
from bench.runtime.env import RankInfo
from tests.support import free_port
from tests.support.toy_job import PING, PingConfig, PingJob, run_rank


@pytest.fixture
def world_of_one(monkeypatch: pytest.MonkeyPatch) -> RankInfo:
    """A world of one as torchrun would start it: torch's env:// rendezvous reads these; rank 0 hosts the store."""
    port = free_port()
    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(name, value)
    return RankInfo(0, 0, 1, 1, 0, 1, "127.0.0.1", port, "torchrun")


@contextlib.contextmanager
def signals_kept() -> Iterator[None]:
    """A rank turns SIGINT and SIGTERM into an interrupt for good; this process is pytest's, so it gets them back."""
    kept = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in kept.items():
            signal.signal(signum, handler)


def test_the_toy_job_runs_through_the_frame_on_one_rank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], world_of_one: RankInfo
) -> None:
    out = tmp_path / "ping-run"
    with signals_kept():
        status = run_rank(PingConfig(output=Output(out=out, cluster="toy", no_history=True)), world_of_one)
    said = capsys.readouterr().out
    assert status == 0, said
    assert "# ping verdict: PASS" in said, said
    meta = json.loads((out / "run.json").read_text())
    assert (meta["command"], meta["status"], meta["verdict"], meta["exit_status"]) == ("ping", "complete", "pass", 0)
    assert meta["items"] == [
        {
            "group": "railbench.ping",
            "name": "all_reduce",
            "state": "pass",
            "reason": "",
            "decides": True,
            "repeats": False,
            "findings": [],  # a pass carries none (run.json format 2)
        }
    ]
    suite = ET.parse(out / "junit.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert suite is not None and suite.get("name") == "railbench.ping"
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [("railbench.ping", "all_reduce")]
    assert not cases[0].findall("failure")


def test_the_design_document_shows_the_toy_job_as_it_is() -> None:
    # The docs' example is the toy job's own code, line for line and in order (its docstrings left out), so
    # the example cannot drift from the job this file runs.
    repo = Path(__file__).resolve().parent.parent
    design = (repo / "docs" / "design.md").read_text()
    section = design[design.index("### Adding a job") :]
    shown = section[section.index("```python\n") + len("```python\n") : section.index("\n```")]
    source = iter((repo / "tests" / "support" / "toy_job.py").read_text().splitlines())
    missing = [line for line in shown.splitlines() if line.strip() and all(line != kept for kept in source)]
    assert missing == []


def test_launch_runs_the_toy_job_as_the_rank_a_launcher_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The parent half's first branch, in this process: torchrun's variables make this process rank 0 of 1.
    out = tmp_path / "ping-run"
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0", "LOCAL_RANK": "0"}
    for name, value in {**env, "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match=r"already a rank under \w+: drop --np, the launcher starts ranks"):
        launch(PING, PingConfig(launch=Launch(backend="gloo", np=2), output=Output(out=out)))
    with signals_kept():
        status = launch(PING, PingConfig(output=Output(out=out, cluster="toy", no_history=True)))
    assert status == 0, capsys.readouterr().out
    assert json.loads((out / "run.json").read_text())["verdict"] == "pass"


class _SignalledAfterVerdict(PingJob):
    """The toy job, sent SIGTERM in its own after-verdict step (where ``accept --drain`` drains): after the
    verdict's record and before the history and report, outside the step that once alone recorded a signal."""

    def after_verdict(self, run: Run, verdict: Verdict) -> dict[str, object]:
        os.kill(os.getpid(), signal.SIGTERM)
        return {}


def test_a_signal_between_the_verdict_and_the_report_is_recorded_as_an_interrupt(
    tmp_path: Path, world_of_one: RankInfo
) -> None:
    # Before the fix: run.json stayed "complete" with its finish "running", and the other ranks of a real run
    # waited FINISH_S (600 s) beyond the timeout for an exit status rank 0 never said.
    out = tmp_path / "ping-run"
    config = PingConfig(output=Output(out=out, cluster="toy", no_history=True))
    with signals_kept(), pytest.raises(Interrupted):
        run_job(world_of_one, lambda: _SignalledAfterVerdict(config))
    meta = json.loads((out / "run.json").read_text())
    assert (meta["status"], meta["exit_status"], meta["finish"]) == ("interrupted", 143, "interrupted"), meta
    assert meta["verdict"] == "pass"  # decided before the signal, so it stands
