"""The bar's time left: a sweep's steps grow in size, so the estimate follows bytes, not the step count."""

from __future__ import annotations

import pytest

from bench.runtime.progress import Eta, clock, times_text

SIZES = [1 << k for k in range(10, 35)]  # 1K .. 16G, as a long sweep


def step_time(nbytes: int) -> float:
    return 25e-6 + nbytes / 40e9  # 25 µs per call plus 40 GB/s


def test_nothing_is_promised_before_the_first_step() -> None:
    assert Eta(SIZES).left() is None


@pytest.mark.parametrize("done", [4, 12, 20, 24])
def test_a_latency_plus_bandwidth_sweep_is_estimated_from_its_first_steps(done: int) -> None:
    eta = Eta(SIZES)
    for size in SIZES[:done]:
        eta.step_done(step_time(size))
    truth = sum(step_time(size) for size in SIZES[done:])
    left = eta.left()
    assert left is not None and left == pytest.approx(truth, rel=1e-6)
    # counting steps would have said this much: off by orders of magnitude early on
    by_count = sum(step_time(s) for s in SIZES[:done]) / done * (len(SIZES) - done)
    assert done >= 20 or by_count < truth / 10


def test_noise_and_equal_sizes_never_give_a_negative_estimate() -> None:
    eta = Eta([1024] * 5)
    for seconds in (0.3, 0.1, 0.2):
        eta.step_done(seconds)
    assert eta.left() == pytest.approx(0.4)  # two steps left at the mean
    shaky = Eta(SIZES[:6])
    for seconds in (0.5, 0.1, 0.05):  # slower at the small end: no bandwidth can be read yet
        shaky.step_done(seconds)
    left = shaky.left()
    assert left is not None and left >= 0


def test_the_words_on_the_bar() -> None:
    assert clock(42) == "0:42" and clock(725) == "12:05" and clock(3725) == "1:02:05"
    assert times_text(151, 250) == "2:31 elapsed, about 4:10 left"
    assert times_text(3, None) == "0:03 elapsed"
