"""One verdict, said the same everywhere (issue 21): for each job, the terminal, run.json, report.md,
report.html, junit.xml, metrics.prom, ``history list`` and the exit status all carry the word the frame
decided once (``bench.frame.decide``), and nothing that was not judged says PASS.

The runs are the session's shared ones where they exist (``tests/conftest.py``): a first ``run``, a
one-host ``rails`` and an ``accept`` on the local profile; the rest are small.
"""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench.history.store import add_run
from bench.rundir.verdict import Verdict
from tests.support import railbench
from tests.support.history_fixtures import make_run_dir

AR = ("all_reduce", "world", "world")
BUSBW = {(*AR, 1 << 20): 40.0, (*AR, 1 << 30): 380.0}


def _history_word(history: Path, run_dir: Path) -> str:
    done = railbench(["history", "list", "--history", str(history), "--all", "--json"], timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return next(str(r["verdict"]) for r in rows if Path(r["run_dir"]).resolve() == run_dir.resolve())


def said(run_dir: Path, stdout: str, command: str, history: Path | None, *, junit: bool = True) -> dict[str, str]:
    """The verdict word as each output of ``run_dir`` says it (``junit``: the run wrote junit.xml)."""
    words: dict[str, str] = {}
    terminal = re.findall(rf"^# {command} verdict: ([A-Z]+)\b", stdout, re.M)
    assert len(terminal) == 1, stdout[-2000:]
    words["terminal"] = terminal[0].lower()
    words["run.json"] = json.loads((run_dir / "run.json").read_text())["verdict"]
    md = re.search(r"^\*\*Verdict: ([A-Z]+)\*\*( · .*)?$", (run_dir / "report.md").read_text(), re.M)
    words["report.md"] = md.group(1).lower() if md else "missing"
    html = re.search(r'class="verdict verdict-([a-z]+)">([A-Z]+)<', (run_dir / "report.html").read_text())
    words["report.html"] = html.group(1) if html and html.group(2).lower() == html.group(1) else "missing"
    if junit:
        suite = ET.parse(run_dir / "junit.xml").getroot().find("testsuite")
        assert suite is not None
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        words["junit.xml"] = str(props.get("railbench.verdict"))
        if words["junit.xml"] in ("pass", "measured", "skip"):
            assert suite.get("failures") == "0" and suite.get("errors") == "0"
    lit = re.findall(
        r'^railbench_verdict\{cluster="[^"]*",verdict="([A-Z]+)"\} 1\.0$', (run_dir / "metrics.prom").read_text(), re.M
    )
    words["metrics.prom"] = lit[0].lower() if len(lit) == 1 else f"{lit}"
    if history is not None:
        words["history list"] = _history_word(history, run_dir)
    return words


def assert_one_word(done: subprocess.CompletedProcess[str], run_dir: Path, command: str, history: Path | None) -> str:
    words = said(run_dir, done.stdout, command, history)
    word = words["run.json"]
    assert set(words.values()) == {word}, words
    assert done.returncode == Verdict(word).exit_status, (words, done.stderr[-2000:])  # type: ignore[arg-type]
    return word


@pytest.mark.mpi
def test_run_on_the_local_profile_is_measured_everywhere(
    first_run_np2: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    done, cwd = first_run_np2
    (run_dir,) = (cwd / "reports" / "runs").iterdir()
    assert assert_one_word(done, run_dir, "run", cwd / "reports" / "history.sqlite") == "measured"
    assert "#   profile local sets no busbw target for these collectives" in done.stdout


@pytest.mark.mpi
def test_rails_on_one_host_is_a_skip_everywhere(one_host_rails: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    done, out = one_host_rails
    assert assert_one_word(done, out, "rails", out.parent / "history.sqlite") == "skip"
    assert "#   rails not tested: 1 node" in done.stdout


@pytest.mark.mpi
def test_rails_intra_node_on_cpu_is_measured_not_pass(tmp_path: Path) -> None:
    """Issue 21: ``rails --intra-node`` said PASS in the terminal and run.json, MEASURED in the report."""
    out, history = tmp_path / "run", tmp_path / "h.sqlite"
    args = ["rails", "--np", "2", "--intra-node", "--pair-bytes", "64K", "--rail-bytes", "64K", "-n", "3", "-w", "1"]
    done = railbench([*args, "--out", str(out), "--history", str(history)], cwd=tmp_path)
    word = assert_one_word(done, out, "rails", history)
    # two GPUs make one pair, so the relative test has no peer to compare with: measured, and it says why
    assert word == "measured", done.stdout[-2000:]


@pytest.mark.mpi
def test_accept_on_the_local_profile_says_one_word(
    tmp_path: Path, accept_local_np4: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    done, out = accept_local_np4
    history = tmp_path / "h.sqlite"
    add_run(history, out)  # the shared run kept out of any history; its record goes in as written
    assert assert_one_word(done, out, "accept", history) == "measured"
    junit = (out / "junit.xml").read_text()
    assert 'message="measured, not judged: profile local sets no busbw target' in junit
    # what the numbers are of, under the verdict and on the certificate's first screen (issue 33 item 3)
    said = "gloo on CPU, 4 ranks on 1 node, over host loopback: host-memory numbers of this machine, not the GPU"
    assert f"# accept verdict: MEASURED\n# numbers: {said}" in done.stdout
    md = (out / "report.md").read_text()
    assert md.index("**Verdict: MEASURED**") < md.index(f"**Numbers:** {said}") < md.index("| tested | what |")
    assert f'<p class="numbers"><b>Numbers:</b> {said}' in (out / "report.html").read_text()


@pytest.mark.slow
def test_check_with_nothing_to_check_says_skip_not_pass(tmp_path: Path) -> None:
    """Issue 21: ``check --profile local`` on a machine with no IB said ``verdict: PASS (12 skip)``."""
    done = railbench(["check", "--profile", "local"], timeout=120)
    if "PASS " in done.stdout:
        pytest.skip("a check applies on this machine (it has a network to check): nothing to show here")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^verdict: SKIP \(\d+ skip\)$", done.stdout, re.M), done.stdout
    assert "PASS" not in done.stdout
    as_json = railbench(["check", "--profile", "local", "--json"], timeout=120)
    doc = json.loads(as_json.stdout)
    assert doc["verdict"] == "skip" and as_json.returncode == 0 and doc["reasons"]


@pytest.mark.slow
def test_compare_marks_the_run_regressed_everywhere(tmp_path: Path) -> None:
    """Issue 21: after compare found a regression, run.json and ``history list`` still said ``measured``."""
    history = tmp_path / "h.sqlite"
    for night in range(1, 6):
        add_run(history, make_run_dir(tmp_path / f"n{night}", started_utc=f"2026-11-0{night}T02:00:00Z", busbw=BUSBW))
    tonight = make_run_dir(
        tmp_path / "tonight", started_utc="2026-11-09T02:00:00Z", busbw={**BUSBW, (*AR, 1 << 30): 300.0}
    )
    add_run(history, tonight)
    done = railbench(["compare", str(tonight), "--history", str(history)], timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    # a run made by hand here has no junit.xml of its own; compare writes compare-junit.xml beside it
    words = said(tonight, done.stdout, "compare", history, junit=False)
    assert set(words.values()) == {"regressed"}, words
    assert json.loads((tonight / "run.json").read_text())["before_compare"]["verdict"] == "measured"
    # a later compare against a baseline it matches gives the run its own verdict back
    low = make_run_dir(tmp_path / "low", started_utc="2026-11-08T02:00:00Z", busbw={**BUSBW, (*AR, 1 << 30): 300.0})
    again = railbench(["compare", str(tonight), "--baseline", str(low), "--history", str(history)], timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads((tonight / "run.json").read_text())["verdict"] == "measured"
    assert _history_word(history, tonight) == "measured"
