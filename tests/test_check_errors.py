"""Preflight of the rails' error counters and link flaps: ``railbench check``'s rail-errors and link-flaps."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.exits import UserError
from bench.fabric import link_flaps
from bench.preflight import check_base, checks
from bench.profile.cluster import load_profile
from tests.support import REPO
from tests.support.trees import fabric_trees
from tests.support.trees.counters import write_errors, write_net_errors, zero_errors

RAILS = [f"mlx5_{k}" for k in range(1, 9)]
NETDEVS = [f"ibp{k}s0" for k in range(1, 9)]


def _healthy(tmp_path: Path) -> Path:
    root = fabric_trees.build(tmp_path / "node", fabric_trees.healthy_1cc())
    zero_errors(root, ["mlx5_0", *RAILS], NETDEVS)
    return root


def _by_check(results: list[checks.CheckResult], name: str) -> list[checks.CheckResult]:
    return [r for r in results if r.check == name]


def _kernel_log(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "kern.log"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _iso(ago: timedelta) -> str:
    return (datetime.now().astimezone() - ago).isoformat(timespec="microseconds")


def test_a_clean_tree_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _healthy(tmp_path)
    monkeypatch.setattr(check_base, "LIVE_SYSFS", root)  # this tree stands for the node's own /sys
    log = _kernel_log(tmp_path, [f"{_iso(timedelta(minutes=5))} node07 kernel: ibp3s0: link up"])
    slept: list[float] = []
    results = checks.run_checks(
        load_profile("lambda-1cc"), root, env={"NCCL_IB_HCA": "^=mlx5_0"}, kernel_log=log, sleep=slept.append
    )
    errors = _by_check(results, "rail-errors")
    assert [r.status for r in errors] == ["pass"] * 8 and slept == [3.0]  # the profile's window
    assert errors[0].reason.startswith("mlx5_1:1: no error counter rose during a 3 s idle window")
    assert "carrier_changes 2" in errors[0].reason  # the rail's netdev speaks for it too
    assert [r.status for r in _by_check(results, "link-flaps")] == ["pass"]
    assert checks.verdict(results) != "fail"  # (NCCL_SOCKET_IFNAME unset warns)


def test_a_copied_tree_is_read_once_without_the_wait(tmp_path: Path) -> None:
    """--sysfs-root of a copy: nothing can rise in a snapshot, so the profile's 3 s window is not waited out;
    the counts it holds still speak (a saturated counter warns), and --error-window still samples twice."""
    root = _healthy(tmp_path)
    write_errors(root, "mlx5_2", {"symbol_error": 65535})
    slept: list[float] = []
    results = checks.run_checks(load_profile("lambda-1cc"), root, env={}, sleep=slept.append)
    by_rail = {r.device: r for r in _by_check(results, "rail-errors")}
    assert slept == [] and by_rail["mlx5_1:1"].status == "pass"
    assert by_rail["mlx5_1:1"].reason == (
        "mlx5_1:1: counts since cleared: carrier_changes 2 (one reading of a copied tree: no idle window; "
        "--error-window samples it twice)"
    )
    assert by_rail["mlx5_2:1"].status == "warn" and "symbol_error saturated at 65535" in by_rail["mlx5_2:1"].reason
    checks.run_checks(load_profile("lambda-1cc"), root, env={}, error_window_s=0.5, sleep=slept.append)
    assert slept == [0.5]


def test_link_downed_rising_between_the_two_samples_fails(tmp_path: Path) -> None:
    root = _healthy(tmp_path)

    def cable_drops(seconds: float) -> None:  # the idle window: the fixture changes between the two samples
        write_errors(root, "mlx5_4", {"link_downed": 1, "symbol_error": 40})
        write_errors(root, "mlx5_6", {"port_xmit_discards": 3})

    results = checks.run_checks(load_profile("lambda-1cc"), root, env={}, error_window_s=0.5, sleep=cable_drops)
    by_rail = {r.device: r for r in _by_check(results, "rail-errors")}
    assert by_rail["mlx5_4:1"].status == "fail"
    assert by_rail["mlx5_4:1"].reason == ("mlx5_4:1: symbol_error +40; link_downed +1 (during a 0.5 s idle window)")
    assert by_rail["mlx5_6:1"].status == "warn"  # not a fail_on_rise counter
    assert by_rail["mlx5_1:1"].status == "pass"
    assert checks.verdict(results) == "fail"


def test_carrier_changes_saturation_and_absolute_limits(tmp_path: Path) -> None:
    root = _healthy(tmp_path)
    write_errors(root, "mlx5_2", {"symbol_error": 65535})  # saturated before the window
    write_errors(root, "mlx5_3", {"link_downed": 12})  # above the profile's max_count of 10

    def flap(seconds: float) -> None:
        write_net_errors(root, "ibp5s0", {"carrier_changes": 4})

    results = checks.run_checks(load_profile("lambda-1cc"), root, env={}, error_window_s=0, sleep=flap)
    by_rail = {r.device: r for r in _by_check(results, "rail-errors")}
    assert by_rail["mlx5_5:1"].status == "fail" and "ibp5s0 carrier_changes +2" in by_rail["mlx5_5:1"].reason
    assert by_rail["mlx5_2:1"].status == "warn" and "symbol_error saturated at 65535" in by_rail["mlx5_2:1"].reason
    assert by_rail["mlx5_3:1"].status == "warn"
    assert "link_downed = 12, above the profile's 10" in by_rail["mlx5_3:1"].reason


def test_max_count_severity_fail_from_the_profile(tmp_path: Path) -> None:
    root = _healthy(tmp_path)
    write_errors(root, "mlx5_3", {"port_rcv_errors": 9})
    profile = tmp_path / "strict.toml"
    profile.write_text(
        'transport = "ib"\n[rails]\ncount = 8\nexclude = ["mlx5_0"]\n'
        '[errors]\nmax_count_severity = "fail"\n[errors.max_count]\nport_rcv_errors = 5\n'
    )
    results = checks.run_checks(load_profile(str(profile)), root, env={}, error_window_s=0, sleep=lambda s: None)
    by_rail = {r.device: r for r in _by_check(results, "rail-errors")}
    assert by_rail["mlx5_3:1"].status == "fail" and by_rail["mlx5_2:1"].status == "pass"


def test_a_flap_line_in_the_kernel_log_fails_its_rail(tmp_path: Path) -> None:
    root = _healthy(tmp_path)
    log = _kernel_log(
        tmp_path,
        [
            f"{_iso(timedelta(hours=5))} node07 kernel: ibp2s0: lost carrier",  # before the window
            f"{_iso(timedelta(minutes=20))} node07 kernel: mlx5_core 0000:c1:00.0 ibp3s0: Link down",
            f"{_iso(timedelta(minutes=19))} node07 kernel: ibp3s0: lost carrier",
            f"{_iso(timedelta(minutes=10))} node07 kernel: ibp30s0: lost carrier",  # not a rail
            "not a log line at all: ibp4s0 lost carrier",  # no time
            "x" * 20000,  # an over-long line is dropped
        ],
    )
    results = checks.run_checks(load_profile("lambda-1cc"), root, env={}, kernel_log=log, sleep=lambda s: None)
    flaps = _by_check(results, "link-flaps")
    assert [(r.status, r.device) for r in flaps] == [("fail", "mlx5_3:1")]
    assert flaps[0].reason.startswith(f"mlx5_3:1: 2 link-flap lines in {log} in the last 3600 s, latest at ")
    assert flaps[0].reason.endswith("ibp3s0: lost carrier")


def test_syslog_times_and_the_hca_name_count_too() -> None:
    now = datetime(2025, 3, 2, 12, 0, 0)
    lines = [
        "Mar  2 11:30:01 node07 kernel: [ 1234.5] mlx5_1: Port 1 link down",
        "Mar  2 11:31:00 node07 kernel: [ 1235.5] mlx5_10: Port 1 link down",  # mlx5_10 is not mlx5_1
        "Dec 31 23:59:59 node07 kernel: ibp1s0: lost carrier",  # last year
        "Mar  2 11:40:00 node07 kernel: IPv6: ADDRCONF(NETDEV_CHANGE): ibp1s0: link is not ready",
    ]
    found = link_flaps.flaps(lines, ["ibp1s0", "mlx5_1"], now - timedelta(hours=1), now)
    assert [(f.device, f.when.minute) for f in found] == [("mlx5_1", 30), ("ibp1s0", 40)]
    assert link_flaps.line_time(lines[2], now) == datetime(2024, 12, 31, 23, 59, 59)


@settings(max_examples=200, deadline=None)
@given(
    line=st.one_of(
        st.text(max_size=60),
        st.builds(
            "{} {} {}:{}:{} host kernel: x".format,
            st.sampled_from(["Jan", "Feb", "feb", "Dec", "Xyz"]),
            st.integers(0, 40),
            st.integers(0, 30),
            st.integers(0, 70),
            st.integers(0, 70),
        ),
        st.builds(
            "{}T{} x".format,
            st.sampled_from(["0001-01-01", "9999-12-31", "2024-02-29", "2023-02-29"]),
            st.sampled_from(["00:00:00+14:00", "23:59:59-14:00", "12:00:00Z", "12:00:00"]),
        ),
    ),
    now=st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)),
)
@example(line="0001-01-01T00:00:00+14:00 host kernel: ibp1s0: lost carrier", now=datetime(2025, 3, 2))
@example(line="9999-12-31T23:59:59-14:00 host kernel: ibp1s0: lost carrier", now=datetime(2025, 3, 2))
@example(line="Feb 29 10:00:00 host kernel: ibp1s0: lost carrier", now=datetime(2024, 1, 5))
def test_any_kernel_log_time_is_a_time_or_none(line: str, now: datetime) -> None:
    """A time outside datetime's years (an ISO zone moving year 1 or 9999) was an OverflowError, and "Feb 29"
    read in January of a leap year a ValueError; a syslog time (no year) is never more than a day after now."""
    when = link_flaps.line_time(line, now)
    assert when is None or isinstance(when, datetime)
    if when is not None and not line[:1].isdigit():
        assert when - now <= timedelta(days=1)


def test_a_feb_29_line_is_the_last_leap_years() -> None:
    line = "Feb 29 10:00:00 node07 kernel: ibp1s0: lost carrier"
    assert link_flaps.line_time(line, datetime(2025, 3, 1)) == datetime(2024, 2, 29, 10)  # a common year
    assert link_flaps.line_time(line, datetime(2024, 1, 5)) == datetime(2020, 2, 29, 10)  # before this year's
    assert link_flaps.line_time(line, datetime(2024, 3, 1)) == datetime(2024, 2, 29, 10)


def test_link_flaps_skip_with_a_reason(tmp_path: Path) -> None:
    root = _healthy(tmp_path)
    results = checks.run_checks(load_profile("lambda-1cc"), root, env={}, sleep=lambda s: None)
    (flaps,) = _by_check(results, "link-flaps")
    assert flaps.status == "skip" and "--kernel-log" in flaps.reason  # a copied tree is not this machine
    fifo = tmp_path / "fifo.log"
    import os

    os.mkfifo(fifo)
    assert link_flaps.read_kernel_log(fifo, datetime.now()).skipped == (
        f"{fifo} is a FIFO, not a regular file: give the kernel log file itself with --kernel-log"
    )


def test_a_tree_without_error_counters_skips_without_waiting(tmp_path: Path) -> None:
    root = fabric_trees.build(tmp_path / "node", fabric_trees.healthy_1cc())
    slept: list[float] = []
    results = checks.run_checks(load_profile("lambda-1cc"), root, env={}, sleep=slept.append)
    (errors,) = _by_check(results, "rail-errors")
    assert errors.status == "skip" and slept == []


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("window_s = -1", "negative"),
        ("window_s = nan", "not a finite number"),
        ("kernel_log_window_s = 1e300", "above the largest plausible value"),
        ('fail_on_rise = ["symbol_errors"]', "symbol_errors is not an error counter"),
        ('max_count_severity = "page"', "must be"),
        ("bogus = 1", "unknown [errors] key 'bogus'"),
        ("[errors.max_count]\nlink_downed = -2", "must be a whole number >= 0"),
    ],
)
def test_bad_errors_tables_are_refused_with_the_line(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f'transport = "ib"\n\n[errors]\n{table}\n')
    with pytest.raises(UserError, match=r"bad\.toml:\d+") as caught:
        load_profile(str(path))
    assert message in str(caught.value)


@pytest.mark.slow
def test_cli_flags_and_bad_input(tmp_path: Path) -> None:
    root = _healthy(tmp_path)
    log = _kernel_log(tmp_path, [f"{_iso(timedelta(minutes=1))} node07 kernel: ibp7s0: lost carrier"])
    base = [sys.executable, "-m", "bench", "check", "--profile", "lambda-1cc", "--sysfs-root", str(root)]
    run = subprocess.run(
        [*base, "--error-window", "0", "--kernel-log", str(log)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 1, run.stderr
    assert "FAIL  link-flaps" in run.stdout and "mlx5_7:1: 1 link-flap line" in run.stdout
    assert "PASS  rail-errors         mlx5_1:1" in run.stdout
    bad = subprocess.run([*base, "--error-window", "-3"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--error-window" in bad.stderr
