"""One order of timeouts: railbench's watchdog speaks before torch's and NCCL's own, and the error handling
torch applies is the one railbench needs, said in one line when a site's setting is overridden."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.rails.measurement.groups import GROUP_PROBE_S, PAIR_PROBE_S, gloo_connect_s, rail_group_startup_s
from bench.runtime import env as benv
from bench.runtime.before_init import (
    ASYNC_ERROR_VAR,
    DEBUG_FILE_VAR,
    DUMP_ON_TIMEOUT_VAR,
    DUMP_WAIT_VAR,
    nccl_log_environment,
    own_debug_file,
    own_error_handling,
    site_dump_note,
)
from bench.runtime.dist import torch_timeout_s
from bench.runtime.watchdog import DIAGNOSE_S, RANK0_GRACE_S

NCCL_IB_RETRY_S = 4.096e-6 * 2**20 * 7
"""NCCL's defaults in src/transport/net_ib: NCCL_IB_TIMEOUT 20 (4.096 us x 2^20 per try), NCCL_IB_RETRY_CNT 7."""
TORCH_DUMP_SLEEP_S = 4 * 15.0
"""ProcessGroupNCCL's watchdog sleeps 4 x TORCH_NCCL_WAIT_TIMEOUT_DUMP_MILSEC (15 s) before it aborts."""


@pytest.mark.parametrize("watchdog_s", [1.0, 12.0, 90.0, 300.0, 3600.0])
def test_torch_times_out_only_after_railbench_has_recorded_the_hang(watchdog_s: float) -> None:
    # Rank 0 diagnoses and records within DIAGNOSE_S; the others end themselves RANK0_GRACE_S after the timeout.
    assert torch_timeout_s(watchdog_s) > watchdog_s + RANK0_GRACE_S + DIAGNOSE_S


def test_no_group_gets_a_start_up_timeout_shorter_than_its_size_needs() -> None:
    assert gloo_connect_s(4, 300.0) == 5.0
    assert gloo_connect_s(512, 300.0) >= 25.0  # 511 connections per rank, not 5 s
    assert gloo_connect_s(512, 12.0) <= 12.0 / 6  # and always within a sixth of the step's timeout


@pytest.mark.parametrize("watchdog_s", [12.0, 90.0, 300.0])
def test_an_nccl_rail_group_may_take_as_long_to_form_as_any_operation(watchdog_s: float) -> None:
    # Each NCCL rail group is a split of the world's communicator that every world rank joins, one rail after
    # another: a few seconds (gloo's bound) would lose healthy members of a large or busy cluster. A dead link is
    # the bounded group probe's to name, after creation.
    for members in (2, 64, 512):
        assert rail_group_startup_s(True, members, watchdog_s) == torch_timeout_s(watchdog_s)
        assert rail_group_startup_s(True, members, watchdog_s) > watchdog_s + RANK0_GRACE_S + DIAGNOSE_S
        assert rail_group_startup_s(False, members, watchdog_s) == gloo_connect_s(members, watchdog_s)


def test_a_link_that_dies_mid_measurement_ends_the_step_in_well_under_a_minute(tmp_path: Path) -> None:
    # IB's retries (about 34 s at NCCL's defaults) and then torch's watchdog sleeping 4 x the dump wait: the
    # default 15 s made it 94 s; railbench's default keeps the dump and ends the step within about 38 s.
    values = nccl_log_environment(tmp_path, "node01", 0)
    assert NCCL_IB_RETRY_S + TORCH_DUMP_SLEEP_S > 90
    assert NCCL_IB_RETRY_S + 4 * int(values[DUMP_WAIT_VAR]) / 1000 < 40


def test_a_dead_peer_on_nccl_is_named_well_before_nccl_and_torch_would_end_the_step() -> None:
    # The group's probe, then (at most) three rounds of pair probes and a check of the group made again.
    worst = GROUP_PROBE_S + 3 * PAIR_PROBE_S + GROUP_PROBE_S
    assert worst < 0.3 * (NCCL_IB_RETRY_S + TORCH_DUMP_SLEEP_S)


@pytest.mark.parametrize(
    ("site", "rank", "said"), [("3", 0, True), ("1", 0, True), ("2", 0, False), (None, 0, False), ("3", 1, False)]
)
def test_async_error_handling_is_railbench_s_and_an_override_is_said_once(
    monkeypatch: pytest.MonkeyPatch, site: str | None, rank: int, said: bool
) -> None:
    monkeypatch.setenv(ASYNC_ERROR_VAR, site or "")  # recorded, so the value set below is undone after the test
    if site is None:
        monkeypatch.delenv(ASYNC_ERROR_VAR)
    line = own_error_handling(rank)
    assert benv.get(ASYNC_ERROR_VAR) == "2"
    assert (line is not None) == said
    if line:
        assert line == f"# {ASYNC_ERROR_VAR}={site} from the environment overridden to 2: " + (
            "railbench aborts a failed communicator and names the lost rank itself"
        )


@pytest.mark.parametrize(("site", "rank", "said"), [("/var/log/nccl-%h-%p.log", 0, True), (None, 0, False)])
def test_the_nccl_log_is_railbench_s_so_the_post_mortem_finds_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, site: str | None, rank: int, said: bool
) -> None:
    """A site's own NCCL_DEBUG_FILE would leave the post-mortem of a dead link nothing to read (it reads
    nccl/<host>-<rank>.log): the run directory's file wins, and rank 0 says once what it replaced."""
    ours = str(tmp_path / "nccl" / "n1-0.log")
    monkeypatch.setenv(DEBUG_FILE_VAR, site or "")
    if site is None:
        monkeypatch.delenv(DEBUG_FILE_VAR)
    line = own_debug_file(ours, rank)
    assert benv.get(DEBUG_FILE_VAR) == ours
    assert (line is not None) == said
    if line:
        assert line.startswith(f"# {DEBUG_FILE_VAR}={site} from the environment overridden to {ours}: ")


def test_torch_s_dump_on_error_is_off_unless_the_site_turned_it_on(tmp_path: Path) -> None:
    # On, torch's heartbeat monitor ends every rank TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC after the first NCCL error,
    # while a run that named a dead link from an errored probe still measures: off by default, a site value kept.
    assert nccl_log_environment(tmp_path, "node01", 0)[DUMP_ON_TIMEOUT_VAR] == "0"


@pytest.mark.parametrize(
    ("site", "rank", "said"),
    [("1", 0, True), ("true", 0, True), ("1", 1, False), ("0", 0, False), ("", 0, False), (None, 0, False)],
)
def test_a_site_s_own_dump_on_error_is_kept_and_its_cost_said_once(
    monkeypatch: pytest.MonkeyPatch, site: str | None, rank: int, said: bool
) -> None:
    if site is None:
        monkeypatch.delenv(DUMP_ON_TIMEOUT_VAR, raising=False)
    else:
        monkeypatch.setenv(DUMP_ON_TIMEOUT_VAR, site)
    line = site_dump_note(rank)
    assert (line is not None) == said, line
    if line:
        assert line.startswith(f"# {DUMP_ON_TIMEOUT_VAR}={site} from the environment kept: "), line
        assert "lost rank" in line and f"{DUMP_ON_TIMEOUT_VAR}=0" in line, line
