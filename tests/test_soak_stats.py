"""The soak's statistics (``bench.soak.stats``) against their definitions, and the duty-cycle judge's
corrections (``bench.soak.duty``) on many links (docs/design.md, "Soak: duty cycle")."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from bench.rundir.part import Part
from bench.soak import duty
from bench.soak.stats import binomial_tail, holm, mann_kendall_fall
from tests.support.soak_judging import PROFILE


def test_a_thousand_clean_windows_of_512_links_name_nothing() -> None:
    """Each link named by its windows at the windows' false-alarm rate: Holm over the links keeps the soak's."""
    rng = np.random.default_rng(11)
    counts = rng.binomial(1000, PROFILE.soak.window_false_alarm, 512)
    series = [
        duty.Series(Part(kind="link", node=f"n{i}", rail=0), 1000, list(range(int(k)))) for i, k in enumerate(counts)
    ]
    judged = duty.judge(series, PROFILE.soak.window_false_alarm, PROFILE.soak.false_alarm)
    assert judged.convicted == [] and judged.measured == 512


def test_binomial_tail_is_the_sum_of_the_law() -> None:
    for n, k, p in ((10, 3, 0.1), (40, 10, 0.01), (7, 0, 0.5), (7, 8, 0.5)):
        exact = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))
        assert binomial_tail(k, n, p) == pytest.approx(exact, rel=1e-9, abs=1e-300)


def test_mann_kendall_exact_is_the_share_of_permutations() -> None:
    """For a series without ties the p-value is the share of the n! orderings whose S is at most the one seen."""
    y = np.array([3.0, 5.0, 1.0, 4.0, 0.0, 2.0])
    s_of = lambda v: sum(np.sign(v[j] - v[i]) for i, j in itertools.combinations(range(len(v)), 2))  # noqa: E731
    seen = s_of(y)
    share = np.mean([s_of(np.array(p)) <= seen for p in itertools.permutations(y)])
    assert mann_kendall_fall(y) == pytest.approx(share)


def test_windows_that_name_healthy_links_more_often_than_the_profile_says_raise_the_floor() -> None:
    """A window's test that names a healthy link 5% of the time, not the profile's 1%: the typical link's rate
    (the median over the links) is the floor, so the healthy links go free and the one named in 40% does not."""
    rng = np.random.default_rng(3)
    counts = [*rng.binomial(200, 0.05, 31), 80]
    series = [
        duty.Series(Part(kind="link", node=f"n{i}", rail=0), 200, list(range(int(k)))) for i, k in enumerate(counts)
    ]
    judged = duty.judge(series, 0.01, 0.01, pooled=True)
    assert [r.part.node for r in judged.convicted] == ["n31"]
    assert judged.rate == pytest.approx(float(np.median(np.array(counts) / 200)))
    # taken at the profile's word, the healthy links' own false alarms would convict some of them
    assert len(duty.judge(series, 0.01, 0.01).convicted) > 1


def test_holm_counts_the_parts_never_named() -> None:
    assert holm([0.004, 0.5], 0.01) == [True, False]
    assert holm([0.004, 0.5], 0.01, family=3) == [False, False]
