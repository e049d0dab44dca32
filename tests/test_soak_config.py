"""``railbench soak``'s input and rank 0's clock, without ranks (issue 46): every bad input is one line and exit 2
before any rank starts; the clock starts a window only where it fits before the deadline, rotates through the pair
matrix so that every round is covered every K windows, and a resumed soak goes on from its last window until its
first start's deadline. The window's aggregate: flaps from the counters, the links a defect names."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.exits import UserError
from bench.frame.config_parts import Output
from bench.profile.cluster import profile_for
from bench.rails.diagnosis.matrix import PairTime
from bench.rails.plan.config import RailsConfig
from bench.rundir.runjson import RunFile, new_record
from bench.rundir.soak_windows import LinkWindow, SoakSection, SoakWindow, append_window
from bench.slurm import drain as drain_policy
from bench.slurm.drain import reason
from bench.soak.clock import SoakClock
from bench.soak.config import SoakConfig, check_same_allocation, parse_until, read_resumed, validate_soak
from bench.soak.drain import faults
from bench.soak.judge import soak_items
from bench.soak.window import flaps, link_rates
from bench.soak.world import xids_since
from tests.support import rank_env
from tests.support.history_fixtures import make_run_dir


def _soak(**fields: object) -> SoakConfig:
    return SoakConfig(**{"hours": 1.0, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"hours": 0.0}, "--hours 0 must be positive"),
        ({"hours": -2.0}, "--hours -2 must be positive"),
        ({"window_s": 0.5}, "--window-s 0.5 is too short"),
        ({"hours": None}, "say how long to soak"),
        ({"until": time.time() + 60}, "say how long to soak"),
        ({"resume": True, "hours": None}, "--resume needs the soak's run directory"),
    ],
)
def test_bad_durations_are_refused_where_the_config_is_made(fields: dict[str, object], said: str) -> None:
    with pytest.raises(UserError, match=said):
        _soak(**fields)


def test_until_in_the_past_or_unreadable_or_shorter_than_a_window_is_refused() -> None:
    now = 2_000_000_000.0
    with pytest.raises(UserError, match="has passed"):
        validate_soak(_soak(hours=None, until=now - 1), now=now)
    with pytest.raises(UserError, match="does not read as a time"):
        parse_until("tomorrow-ish")
    with pytest.raises(UserError, match="longer than the soak"):
        validate_soak(_soak(hours=30 / 3600, window_s=60.0), now=now)


def test_until_reads_iso_and_a_time_of_day() -> None:
    assert parse_until("2033-05-18T03:33:20+00:00") == 2_000_000_000.0
    today = datetime.now().replace(hour=18, minute=30, second=0, microsecond=0).astimezone().timestamp()
    assert parse_until("18:30") == today


def _run_dir(tmp_path: Path, command: str, section: SoakSection | None, started: str) -> Path:
    out = tmp_path / command
    out.mkdir()
    fields: dict[str, object] = {
        "format_version": 2,
        "tool": "railbench",
        "version": "0",
        "command": command,
        "cluster": "c",
        "profile": "local",
        "started_utc": started,
        "status": "interrupted",
    }
    if section is not None:
        fields["soak"] = section
    RunFile(out, new_record(**fields))
    return out


def test_resume_of_a_folder_that_is_not_a_soaks_is_refused(tmp_path: Path) -> None:
    rails = _run_dir(tmp_path, "rails", None, "2033-05-18T03:33:20+00:00")
    with pytest.raises(UserError, match="holds a rails run, not a soak's"):
        read_resumed(rails)
    with pytest.raises(UserError, match="is missing"):
        read_resumed(tmp_path)


def test_resume_after_the_first_deadline_is_refused_and_before_it_goes_on(tmp_path: Path) -> None:
    section = SoakSection(3600.0, 60.0, 3, windows=2, elapsed_s=130.0, deadline_utc="2033-05-18T04:33:20+00:00")
    out = _run_dir(tmp_path, "soak", section, "2033-05-18T03:33:20+00:00")
    for index in range(2):
        append_window(out, SoakWindow(index, index * 65.0, index * 65.0 + 65.0, rounds=(index,)))
    with pytest.raises(UserError, match=r"deadline .* has passed; its 2 windows stand"):
        read_resumed(out, now=2_000_003_600.0)
    config = SoakConfig(RailsConfig(output=Output(out=out)), resume=True)
    clock = SoakClock.start(config, out, total_rounds=7, now=2_000_000_000.0)
    assert (clock.index, clock.next_round, clock.per_window, clock.resumed) == (2, 2, 1, (2,))
    assert clock.deadline == 2_000_003_600.0 and clock.section().deadline_utc == section.deadline_utc


def test_the_cli_refuses_in_one_line_before_any_rank_starts(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "soak", "--np", "2", "--resume", str(tmp_path), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=rank_env(),
        timeout=60,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "drop --out" in done.stderr


@settings(max_examples=30, deadline=None)
@given(total=st.integers(1, 40), fit=st.integers(1, 90), start=st.integers(0, 39))
def test_every_round_is_covered_every_k_windows(total: int, fit: int, start: int) -> None:
    clock = SoakClock(3600.0, 1.0, time.time() + 3600, total, None, next_round=start % total)
    first = clock.next_window()
    assert first is not None and first.fill and first.rounds == (start % total,)
    # The first window runs round after round from the one told, through the matrix and again, while they fit.
    ran = tuple((start + i) % total for i in range(fit))
    clock.calibrated(fit)
    clock.kept(SoakWindow(0, 0.0, 1.0, rounds=ran), 1.0)
    k = clock.cover_every
    assert k == -(-total // fit)
    runs = []
    for _ in range(2 * k + 1):
        told = clock.next_window()
        assert told is not None and not told.fill and len(told.rounds) == fit
        runs.append(told.rounds)
        clock.kept(SoakWindow(told.index, 0.0, 1.0, rounds=told.rounds), 1.0)
    assert runs[0][0] == (start + fit) % total  # on from where the first window stopped
    for i in range(len(runs) - k + 1):
        assert {r for rounds in runs[i : i + k] for r in rounds} == set(range(total))


def test_a_window_starts_only_where_it_fits_before_the_deadline() -> None:
    now = 2_000_000_000.0
    clock = SoakClock(30.0, 10.0, now + 30.0, 0, 0)
    assert clock.next_window(now=now) is not None
    clock.kept(SoakWindow(0, 0.0, 12.0), 12.0)  # the last window's own length decides from now on
    assert clock.next_window(now=now + 18.0) is not None
    assert clock.next_window(now=now + 18.5) is None


def test_flaps_and_link_rates_of_a_window() -> None:
    assert flaps({"link_downed": 1}) == 1
    assert flaps({"carrier_changes": 2}) == 1 and flaps({"carrier_changes": 3}) == 2
    assert flaps({"symbol_error": 9}) == 0
    times = [
        PairTime(0, 1, 0, 0, 0, 1_000_000, 1000.0),  # 8 Gb/s
        PairTime(1, 0, 0, 0, 0, 1_000_000, 2000.0),  # 4 Gb/s
        PairTime(0, 1, 0, 0, 0, 1_000_000, 8000.0, confirm=1),  # a re-measurement: not the window's rate
    ]
    assert link_rates(times) == {(0, 0): [8.0, 4.0], (1, 0): [8.0, 4.0]}


def test_a_soak_section_round_trips_in_run_json(tmp_path: Path) -> None:
    section = SoakSection(36.0, 5.0, 2, windows=3, elapsed_s=36.1, resumed=(2,), stopped="SIGTERM")
    out = _run_dir(tmp_path, "soak", section, datetime.now(timezone.utc).isoformat())
    assert json.loads((out / "run.json").read_text())["soak"]["stopped"] == "SIGTERM"


def test_drain_takes_the_nodes_the_soaks_gates_convict() -> None:
    # A link that flapped once in five windows: the gates fail it, on node02; nothing else is named.
    def window(index: int, flapped: bool) -> SoakWindow:
        links = tuple(
            LinkWindow(
                node=node,
                rail=0,
                device="rail0",
                busbw_Gbps=10.0,
                cells=2,
                named=flapped and node == "node02",
                errors=MappingProxyType({"carrier_changes": 2} if flapped and node == "node02" else {}),
                flaps=int(flapped and node == "node02"),
            )
            for node in ("node01", "node02", "node03")
        )
        return SoakWindow(index, index * 4.0, index * 4.0 + 4.0, rounds=(index % 3,), links=links)

    items = soak_items([window(i, i == 2) for i in range(5)], profile_for("local", None))
    found, not_drained = faults(items)
    assert {(f.node, f.found.part.kind, f.found.part.rail) for f in found} == {("node02", "link", 0)}
    assert not_drained == []
    said = reason(found)  # the Slurm reason accept --drain writes: railbench's key, the part, the action
    assert said.startswith("railbench[") and drain_policy.owned(said) and "rail 0" in said and said.isascii()


def test_a_windows_xids_are_those_logged_since_its_last_edge(tmp_path: Path) -> None:
    # Lines as a classic syslog writes them (tests/test_preflight_gpu_xid.py's form of NVIDIA's Xid line).
    log = tmp_path / "kern.log"
    log.write_text(
        "Jun  3 10:00:07 n7 kernel: [1007.1] NVRM: Xid (PCI:0000:73:00): 13, pid=1, Graphics Exception\n"
        "Jun  3 10:02:00 n7 kernel: [1120.1] NVRM: Xid (PCI:0000:73:00): 79, pid=1, GPU has fallen off the bus.\n"
    )
    now = datetime(2026, 6, 3, 10, 5)
    found = xids_since(datetime(2026, 6, 3, 10, 1), now, log)
    assert [(e.code, e.bus) for e in found] == [(79, "0000:73:00")]
    assert xids_since(datetime(2026, 6, 3, 10, 3), now, log) == []


@pytest.mark.parametrize(
    ("now", "said"),
    [
        (("node01", "node01", "node02", "node02"), None),
        (("node02", "node01", "node02", "node01"), None),  # the same ranks per node in another order
        (("node01", "node01", "node03", "node03"), "(node02 missing; node03 new)"),
        (("node01", "node01", "node02"), "this start has node01 x 2, node02 x 1 (node02 runs 1, was 2)"),
    ],
)
def test_a_resume_goes_on_only_on_the_first_start_s_allocation(
    tmp_path: Path, now: tuple[str, ...], said: str | None
) -> None:
    ranks = [{"rank": r, "host": host} for r, host in enumerate(("node01", "node01", "node02", "node02"))]
    make_run_dir(tmp_path, started_utc="2026-11-26T09:00:00Z", busbw={}, command="soak", meta_extra={"ranks": ranks})
    if said is None:
        check_same_allocation(tmp_path, now)
        return
    with pytest.raises(UserError) as refused:
        check_same_allocation(tmp_path, now)
    assert "the soak started on 2 nodes x 2 ranks" in str(refused.value) and said in str(refused.value)
