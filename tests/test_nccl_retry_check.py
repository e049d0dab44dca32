"""``railbench check``'s ``nccl-ib-retry`` line (``bench.preflight.nccl_retry``): how long NCCL retries a dead link
before its completion error can name it, from ``NCCL_IB_TIMEOUT`` and ``NCCL_IB_RETRY_CNT``."""

from __future__ import annotations

import pytest

from bench.preflight.checks import run_checks
from bench.preflight.nccl_retry import give_up_s
from bench.profiles import load_profile


def _line(env: dict[str, str], profile: str = "lambda-1cc") -> tuple[str, str]:
    (result,) = run_checks(load_profile(profile), "/nonexistent-sysfs", env=env, only=("nccl-ib-retry",))
    return result.status, result.reason


def test_the_wait_is_the_verbs_arithmetic() -> None:
    # 4.096 us x 2^20 per try, 8 tries: the ~34 s a dead link costs at NCCL's defaults.
    assert give_up_s(20, 7) == pytest.approx(34.36, abs=0.01)
    assert give_up_s(14, 0) == pytest.approx(0.0671, abs=1e-4)


def test_defaults_pass_and_say_where_the_values_come_from() -> None:
    status, reason = _line({})
    assert status == "pass", reason
    assert reason == (
        "NCCL_IB_TIMEOUT 20 (NCCL's default), NCCL_IB_RETRY_CNT 7 (NCCL's default): "
        "NCCL gives up on a dead link after 34 s"
    )
    assert _line({"NCCL_IB_TIMEOUT": "22"}) == (
        "pass",
        "NCCL_IB_TIMEOUT 22, NCCL_IB_RETRY_CNT 7 (NCCL's default): NCCL gives up on a dead link after 137 s",
    )


@pytest.mark.parametrize(
    ("env", "status", "words"),
    [
        ({"NCCL_IB_TIMEOUT": "24"}, "warn", "retries a dead link for 550 s, longer than a railbench step's --timeout"),
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
