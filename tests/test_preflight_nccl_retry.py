"""``railbench check``'s ``nccl-ib-retry`` line (``bench.preflight.nccl_retry``): how long NCCL retries a dead link
before its completion error can name it, from ``NCCL_IB_TIMEOUT`` and ``NCCL_IB_RETRY_CNT``."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.preflight.checks import run_checks
from bench.preflight.nccl_library import nccl_version
from bench.preflight.nccl_retry import after_error_s, default_ib_timeout, give_up_s
from bench.profile.cluster import load_profile
from bench.runtime.deadlines import POSTMORTEM_COLLECT_S

NCCL_2_18 = "nccl_log_h100_crusoe_ib_hca_excl_mlx5_0_sharp_issue294.txt"
"""A real NCCL 2.18.3 log (its bare ``NCCL version 2.18.3+cuda12.2`` line)."""
NCCL_2_23 = "nccl_log_a100_4node_ib_sharp_collnet_fallback_ibext_channels_issue311.txt"
"""A real NCCL 2.23.4 log."""


def _line(
    env: dict[str, str], profile: str = "lambda-1cc", logs: tuple[Path, ...] = (), step_timeout_s: float = 300.0
) -> tuple[str, str]:
    (result,) = run_checks(
        load_profile(profile),
        "/nonexistent-sysfs",
        logs,
        env=env,
        only=("nccl-ib-retry",),
        step_timeout_s=step_timeout_s,
    )
    return result.status, result.reason


def test_the_wait_is_the_verbs_arithmetic() -> None:
    # 4.096 us x 2^20 per try, 8 tries: the ~34 s a dead link costs at NCCL 2.23's defaults; 2^18: 8.6 s.
    assert give_up_s(20, 7) == pytest.approx(34.36, abs=0.01)
    assert give_up_s(18, 7) == pytest.approx(8.59, abs=0.01)
    assert give_up_s(14, 0) == pytest.approx(0.0671, abs=1e-4)


def test_nccls_default_timeout_is_its_releases() -> None:
    # NCCL_PARAM(IbTimeout, "IB_TIMEOUT", ...) at each tag of NVIDIA/nccl: 14 to v2.13.4-1, 18 from v2.14.3-1
    # through v2.22.3-1, 20 from v2.23.4-1 (src/transport/net_ib.cc, later src/transport/net_ib/connect.cc).
    assert [default_ib_timeout(v) for v in ("2.13.4", "2.14.3", "2.18.3+cuda12.2", "2.22.3-1")] == [14, 18, 18, 18]
    assert [default_ib_timeout(v) for v in ("2.23.4+cuda12.4", "2.27.5", "2.29.2")] == [20, 20, 20]
    assert default_ib_timeout(None) == default_ib_timeout("unknown") == 20


def test_defaults_pass_and_say_where_the_values_come_from(corpus: Path) -> None:
    status, reason = _line({}, logs=(corpus / NCCL_2_23,))
    assert status == "pass", reason
    assert reason == (
        "NCCL_IB_TIMEOUT 20 (NCCL 2.23.4+cuda12.4's default, from the NCCL log), NCCL_IB_RETRY_CNT 7 "
        "(NCCL's default): NCCL gives up on a dead link after 34 s"
    )
    # NCCL 2.18 (torch 2.1's wheel) waits 2^18: a quarter of the time, not 34 s.
    assert _line({}, logs=(corpus / NCCL_2_18,)) == (
        "pass",
        "NCCL_IB_TIMEOUT 18 (NCCL 2.18.3+cuda12.2's default, from the NCCL log), NCCL_IB_RETRY_CNT 7 "
        "(NCCL's default): NCCL gives up on a dead link after 8.6 s",
    )
    assert _line({"NCCL_IB_TIMEOUT": "22"}, logs=(corpus / NCCL_2_18,)) == (
        "pass",
        "NCCL_IB_TIMEOUT 22, NCCL_IB_RETRY_CNT 7 (NCCL's default): NCCL gives up on a dead link after 137 s",
    )


def test_without_a_log_the_installed_library_says_the_version() -> None:
    installed = nccl_version()
    status, reason = _line({})
    assert status == "pass", reason
    if installed is None:  # a CPU-only torch: no NCCL wheel and no system library on this machine
        assert reason.startswith("NCCL_IB_TIMEOUT 20 (NCCL's default from 2.23, 18 before: NCCL's version unknown")
    else:
        wanted = default_ib_timeout(installed)
        assert reason.startswith(f"NCCL_IB_TIMEOUT {wanted} (NCCL {installed}'s default, installed)"), reason


def test_the_warning_counts_torchs_abort_and_the_post_mortem_inside_the_steps_timeout() -> None:
    # Between NCCL's error and the link named: torch's four dump waits (railbench's 1 s, a site's own) and the
    # post-mortem's longest wait for the failed ranks' posts.
    assert after_error_s(None) == pytest.approx(4 * 1.0 + POSTMORTEM_COLLECT_S)
    assert after_error_s("15000") == pytest.approx(60.0 + POSTMORTEM_COLLECT_S)
    # 2^23 x 8 tries = 275 s: with railbench's 1 s dump wait the link is named at 299 s, inside the default 300 s.
    assert _line({"NCCL_IB_TIMEOUT": "23"})[0] == "pass"
    # torch's own 15 s dump wait (a site that set it) takes the naming past --timeout: the step ends as a hang.
    status, reason = _line({"NCCL_IB_TIMEOUT": "23", "TORCH_NCCL_WAIT_TIMEOUT_DUMP_MILSEC": "15000"})
    assert status == "warn" and "retries a dead link for 275 s" in reason and "up to 80 s more" in reason, reason
    # A run with a shorter --timeout: 34 s of retries and 24 s after them do not fit in 40 s.
    status, reason = _line({"NCCL_IB_TIMEOUT": "20"}, step_timeout_s=40.0)
    assert status == "warn" and "step's --timeout (40 s)" in reason, reason
    assert _line({"NCCL_IB_TIMEOUT": "20"}, step_timeout_s=60.0)[0] == "pass"


@pytest.mark.parametrize(
    ("env", "status", "words"),
    [
        ({"NCCL_IB_TIMEOUT": "24"}, "warn", "longer than a railbench step's --timeout (300 s by default)"),
        ({"NCCL_IB_TIMEOUT": "0"}, "fail", "0 is an infinite timeout"),
        ({"NCCL_IB_TIMEOUT": "32"}, "fail", "NCCL_IB_TIMEOUT=32 is outside 0-31"),
        ({"NCCL_IB_RETRY_CNT": "9"}, "fail", "NCCL_IB_RETRY_CNT=9 is outside 0-7"),
        ({"NCCL_IB_TIMEOUT": "twenty"}, "fail", "NCCL_IB_TIMEOUT='twenty' is not a number"),
    ],
)
def test_settings_that_hide_a_dead_link_are_said(env: dict[str, str], status: str, words: str) -> None:
    got, reason = _line(env)
    assert got == status and words in reason, reason


def test_a_profile_without_ib_verbs_skips_it() -> None:
    status, reason = _line({}, "local")
    assert status == "skip" and "not IB verbs" in reason, reason
