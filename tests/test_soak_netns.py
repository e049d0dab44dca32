"""``railbench soak`` on the namespace testbed, 3 nodes x 1 rail under mpirun, in compressed time (issue 46): windows
of a few seconds, node02's rail 0 flapping once (down 0.3 s, up) after the first window is on disk and node03's in one
window of three, SIGTERM to rank 0 once three windows are kept, then ``--resume`` of the same run directory until
the first start's deadline.

One soak, two starts (a module fixture): every assertion reads its windows.jsonl and run.json. A flap is told by
the interface's own carrier changes in the window it fell in: each flapping link is named intermittent with its duty
cycle and windows, and node02's once-risen carrier_changes fail the error gates naming its port. SIGTERM keeps every
finished window and the verdict on them (run.json ``interrupted``, 143, ``soak.stopped``); the resumed start goes on
from the next window and records where it resumed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import jsonschema
import pytest

from bench import codec
from bench.profile.cluster import profile_for
from bench.rundir.runjson import SCHEMA_PATH
from bench.rundir.soak_records import ErrorGate, Intermittent
from bench.rundir.soak_windows import SoakSection, SoakWindow, read_windows
from bench.soak.judge import soak_findings
from tests.support import lines_written, rank_env, rank_pids
from tests.support.testbeds import SECOND_TESTBED
from tests.support.testbeds.netns_testbed import PROFILE, NetnsCluster, build_cluster

# On the Slurm cluster's testbed worker, beside its tests: the other testbed worker has the most to run.
pytestmark = [pytest.mark.netns, pytest.mark.mpi, pytest.mark.slow, pytest.mark.xdist_group(SECOND_TESTBED)]

SMALL = PROFILE.replace('rail_bytes = "4M"', 'rail_bytes = "1M"').replace('pair_bytes = "16M"', 'pair_bytes = "1M"')
assert SMALL.count('"1M"') == 2
WINDOW_S = 4
SOAK_S = 75
"""Long enough that the resumed start, which must start its ranks again (tens of seconds on this 2-core machine
under load), still has windows to run before the first start's deadline."""
KEPT_BEFORE_SIGTERM = 3
FLAPPED = ("node02", 0)
"""Flaps once, in the second window."""
FLAPPING = ("node03", 0)
"""Flaps in one window of three (windows 2, 5, 8, ...)."""
Record = TypeVar("Record")


@dataclass(frozen=True)
class Soak:
    out: Path
    first_rc: int
    first: dict
    """run.json right after the SIGTERM'd start."""
    first_lines: int
    """windows.jsonl lines then."""
    flap_after: int
    """Windows on disk when the flap began: it falls in a later one."""
    second_rc: int
    second: dict
    windows: list[SoakWindow]
    said: str
    profile: Path


def _wait_for(windows: Path, count: int, proc: subprocess.Popen[str], limit_s: float) -> int:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        if (kept := lines_written(windows)) >= count:
            return kept
        time.sleep(0.1)
    raise AssertionError(f"{count} windows were not kept within {limit_s} s (rc {proc.poll()})")


def _flap(bed: NetnsCluster, link: tuple[str, int]) -> None:
    """The link's interface down for 0.3 s and up: two carrier changes, one flap."""
    node, rail = link
    bed.exec(node, "sh", "-c", f"ip link set rail{rail} down; sleep 0.3; ip link set rail{rail} up")


def _flap_later(bed: NetnsCluster, windows: Path, proc: subprocess.Popen[str], seen: list[int]) -> None:
    """Once the first window is on disk, node02's rail 0 flaps once."""
    seen.append(_wait_for(windows, 1, proc, 240))
    _flap(bed, FLAPPED)


def _flap_every_third(bed: NetnsCluster, windows: Path, done: threading.Event) -> None:
    """node03's rail 0 flaps in one window of three, over both starts: as window 2, 5, 8... begins (the windows
    before it on disk), until the soak is over."""
    target = 2
    while not done.is_set():
        if lines_written(windows) == target:
            _flap(bed, FLAPPING)
            target += 3
        elif lines_written(windows) > target:  # a window passed unseen: the next of its kind
            target += 3
        time.sleep(0.05)


@pytest.fixture(scope="module")
def soak() -> Iterator[Soak]:
    with build_cluster(nodes=3, rails=1) as bed:
        profile = bed.workdir / "small.toml"
        profile.write_text(SMALL)
        out = bed.workdir / "soak"
        argv = [sys.executable, "-m", "bench", "soak", "--profile", str(profile), "--no-history", "--timeout", "60"]
        first_argv = [*argv, "--hours", str(SOAK_S / 3600), "--window-s", str(WINDOW_S), "--out", str(out)]
        proc = subprocess.Popen(
            bed.mpirun(1, first_argv),
            env=rank_env({"TORCH_CPP_LOG_LEVEL": "ERROR"}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        flapped: list[int] = []
        flapper = threading.Thread(target=_flap_later, args=(bed, out / "windows.jsonl", proc, flapped))
        flapper.start()
        over = threading.Event()
        every_third = threading.Thread(target=_flap_every_third, args=(bed, out / "windows.jsonl", over))
        every_third.start()
        try:
            _wait_for(out / "windows.jsonl", KEPT_BEFORE_SIGTERM, proc, 240)
            pid = rank_pids(out).get(0)
            assert pid is not None
            subprocess.run(["kill", "-TERM", str(pid)], check=True)
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                bed.kill_processes()
                proc.communicate()
            flapper.join(timeout=30)
        first = json.loads((out / "run.json").read_text())
        first_lines = lines_written(out / "windows.jsonl")
        try:
            done = bed.run(1, [*argv, "--resume", str(out)], timeout=240)
        finally:
            over.set()
            every_third.join(timeout=30)
        second = json.loads((out / "run.json").read_text())
        windows = read_windows(out)
        said = stdout + stderr + done.stdout + done.stderr
        yield Soak(
            out, proc.returncode, first, first_lines, flapped[0], done.returncode, second, windows, said, profile
        )


def test_sigterm_keeps_every_finished_window_and_says_stopped(soak: Soak) -> None:
    first = soak.first
    assert first["status"] == "interrupted" and first["exit_status"] == 143, soak.said[-4000:]
    assert first["soak"]["stopped"] == "SIGTERM"
    assert first["soak"]["windows"] == soak.first_lines >= KEPT_BEFORE_SIGTERM
    assert first["verdict"] in ("pass", "fail", "skip"), first["reasons"]  # the windows' verdict, not an error
    jsonschema.validate(first, json.loads(SCHEMA_PATH.read_text()))


def test_resume_goes_on_from_the_next_window_until_the_first_deadline(soak: Soak) -> None:
    second = soak.second
    assert second["status"] == "complete" and second["exit_status"] == soak.second_rc, soak.said[-4000:]
    section = second["soak"]
    assert section["resumed"] == [soak.first_lines] and section["stopped"] is None
    jsonschema.validate(second, json.loads(SCHEMA_PATH.read_text()))
    assert section["deadline_utc"] == soak.first["soak"]["deadline_utc"]
    assert section["windows"] == len(soak.windows) > soak.first_lines
    assert [w.index for w in soak.windows] == list(range(len(soak.windows)))
    starts = [w.start_s for w in soak.windows]
    assert starts == sorted(starts) and section["elapsed_s"] >= soak.windows[-1].end_s


def test_every_pair_is_covered_every_k_windows(soak: Soak) -> None:
    k = soak.second["soak"]["cover_every"]
    rounds = 3  # 3 nodes: three rounds, each with one node sitting out
    assert 1 <= k <= rounds
    for i in range(len(soak.windows) - k + 1):
        covered = {r for w in soak.windows[i : i + k] for r in w.rounds}
        assert covered == set(range(rounds)), [w.rounds for w in soak.windows]
    for w in soak.windows:
        assert {(link.node, link.rail) for link in w.links} == {("node01", 0), ("node02", 0), ("node03", 0)}
        assert all((link.busbw_Gbps or 0.0) > 0 for link in w.links if link.cells)


def _flap_windows(soak: Soak, link: tuple[str, int]) -> list[int]:
    return [w.index for w in soak.windows for lw in w.links if (lw.node, lw.rail) == link and lw.flaps]


def test_each_flap_is_counted_in_its_own_window(soak: Soak) -> None:
    once = _flap_windows(soak, FLAPPED)
    assert len(once) == 1 and once[0] >= soak.flap_after, once
    third = _flap_windows(soak, FLAPPING)
    assert len(third) >= 2 and all(i % 3 == 2 for i in third), third
    others = [lw.flaps for w in soak.windows for lw in w.links if (lw.node, lw.rail) not in (FLAPPED, FLAPPING)]
    assert not any(others)
    assert all(lw.flaps == 1 for w in soak.windows for lw in w.links if lw.flaps)
    collectives = [c for w in soak.windows for c in w.collectives]
    assert collectives and all(c.busbw_Gbps > 0 and c.wrong == 0 for c in collectives)


def _records(soak: Soak, kind: type[Record]) -> list[Record]:
    """The soak's findings of one kind, as the command wrote them in run.json (``soak.findings``)."""
    section = codec.decode(SoakSection, soak.second["soak"], extra="ignore")
    return [f.record for f in section.findings if isinstance(f.record, kind)]


def _intermittent(soak: Soak, link: tuple[str, int]) -> Intermittent:
    found = [i for i in _records(soak, Intermittent) if not i.persistent]
    said = [i for i in found if (i.part.kind, i.part.node, i.part.rail) == ("link", *link)]
    assert len(said) == 1 and said[0].symptom == "flapping", found
    return said[0]


def test_the_verdict_names_each_flapping_link_intermittent_with_its_duty_cycle_and_windows(soak: Soak) -> None:
    for link in (FLAPPED, FLAPPING):
        said, flapped = _intermittent(soak, link), _flap_windows(soak, link)
        # Its duty cycle: its flaps' windows (hard evidence, each once), and any window a busy machine's noise named
        # it slow in; measured in every window.
        assert set(flapped) <= set(said.windows) and said.hard == len(flapped), (said, flapped)
        assert said.windows_named == len(said.windows) and said.windows_measured == len(soak.windows)
        assert (said.first, said.last) == (said.windows[0], said.windows[-1])
    # The judges' word is the command's: what run.json keeps is what the judges say of the windows kept.
    profile = profile_for(str(soak.profile), None)
    assert [f.evidence for f in soak_findings(read_windows(soak.out), profile)] == [
        f.record for f in codec.decode(SoakSection, soak.second["soak"], extra="ignore").findings
    ]


def test_the_flaps_carrier_changes_fail_the_error_gate_naming_the_port(soak: Soak) -> None:
    """A counter that rose in one window only (the interface's own carrier_changes, which the profile gates at 0)
    fails the per-window gate and the soak's total, each naming the port and the window it rose in."""
    node, rail = FLAPPED
    (flapped,) = _flap_windows(soak, FLAPPED)
    gates = [g for g in _records(soak, ErrorGate) if g.counter == "carrier_changes" and g.part.node == node]
    assert {g.scope for g in gates} == {"window", "soak"}, gates
    for gate in gates:
        assert (gate.part.node, gate.part.rail, gate.part.device) == (node, rail, f"rail{rail}")
        assert (gate.worst_window, gate.windows_risen, gate.total) == (flapped, 1, 2) and gate.over
    assert soak.second["verdict"] == "fail" and soak.second_rc == 1
