"""Localisation on synthetic matrices: each kind of fault is named, and noise alone names nothing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from bench.exits import UserError
from bench.rails.diagnosis.corroborate import convicted
from bench.rails.diagnosis.localise import PairMatrix, PairSample, Thresholds, diagnose, localise
from bench.rundir.finding_words import describe
from bench.rundir.named_parts import NamedPart

LINE = 400.0
HEALTHY = 390.0

# factor(repeat, rail, a, b) -> multiplier of the healthy rate for that sample (a, b node indices)
Fault = Callable[[int, int, int, int], float]


def _said(part: NamedPart) -> str:
    """The line of ``part`` as localisation convicts it: no counters read, no cause, no action yet."""
    return describe(convicted(part, action=""))


def _matrix(nodes: int, rails: int, repeats: int = 1, fault: Fault | None = None, noise: float = 0.015, seed: int = 0):
    rng = np.random.default_rng(seed)
    names = [f"node{i + 1:02d}" for i in range(nodes)]
    samples = []
    for r in range(repeats):
        for k in range(rails):
            for a in range(nodes):
                for b in range(a + 1, nodes):
                    factor = 1.0 if fault is None else fault(r, k, a, b)
                    value = HEALTHY * factor * (1.0 + noise * rng.standard_normal())
                    samples.append(PairSample(names[a], names[b], k, value, r))
    return PairMatrix.from_samples(samples)


def _devices(nodes: int, rails: int) -> dict[tuple[str, int], str]:
    # mlx5_0 is the management HCA on Lambda nodes; rail k is mlx5_{k+1}.
    return {(f"node{i + 1:02d}", k): f"mlx5_{k + 1}" for i in range(nodes) for k in range(rails)}


def _kinds(defects) -> list[tuple[str, str | None, int | None]]:
    return [(d.kind, d.node, d.rail) for d in defects]


@pytest.mark.slow
@pytest.mark.parametrize("line", [LINE, None])
@pytest.mark.parametrize(
    ("nodes", "rails", "repeats"), [(2, 1, 1), (3, 2, 3), (8, 8, 1), (16, 4, 3), (5, 3, 5), (64, 8, 1)]
)
def test_noise_alone_names_nothing(nodes: int, rails: int, repeats: int, line: float | None) -> None:
    for seed in range(5):
        matrix = _matrix(nodes, rails, repeats, noise=0.02, seed=seed)
        assert localise(matrix, line) == ()


@pytest.mark.parametrize("line", [LINE, None])
@pytest.mark.parametrize("nodes", [3, 4, 8, 13])
def test_one_slow_link(nodes: int, line: float | None) -> None:
    bad_node, bad_rail = nodes - 1, 2
    matrix = _matrix(nodes, 4, 2, lambda r, k, a, b: 0.53 if k == bad_rail and bad_node in (a, b) else 1.0)
    defects = localise(matrix, line, devices=_devices(nodes, 4))
    assert _kinds(defects) == [("link", f"node{nodes:02d}", 2)]
    (d,) = defects
    assert d.device == "mlx5_3" and d.conviction.symptom == "slow"
    assert d.conviction.slow_pairs == d.conviction.pairs == nodes - 1
    assert d.conviction.measured_Gbps == pytest.approx(0.53 * HEALTHY, rel=0.05)
    if line is None:
        assert d.conviction.basis == "peers" and d.conviction.expected_Gbps == pytest.approx(HEALTHY, rel=0.05)
    else:
        assert d.conviction.basis == "line rate" and d.conviction.expected_Gbps == LINE
    assert len(d.conviction.evidence) == nodes - 1 and all(f"node{nodes:02d}" in e for e in d.conviction.evidence)


def test_two_links_on_two_nodes_are_two_link_faults() -> None:
    def fault(r: int, k: int, a: int, b: int) -> float:
        return 0.5 if (k == 1 and 2 in (a, b)) or (k == 3 and 5 in (a, b)) else 1.0

    defects = localise(_matrix(8, 4, 1, fault), LINE)
    assert sorted(_kinds(defects)) == [("link", "node03", 1), ("link", "node06", 3)]


def test_link_above_target_but_far_below_its_peers_is_found() -> None:
    # 0.7 x 390 = 273 Gb/s is below the 90% target; with a 200 Gb/s line rate it would pass the target,
    # but it is still 30% below its peers.
    defects = localise(_matrix(6, 2, 1, lambda r, k, a, b: 0.7 if k == 0 and 1 in (a, b) else 1.0), 200.0)
    assert _kinds(defects) == [("link", "node02", 0)]


@pytest.mark.parametrize("line", [LINE, None])
@pytest.mark.parametrize("nodes", [3, 4, 9])
def test_whole_rail(nodes: int, line: float | None) -> None:
    defects = localise(
        _matrix(nodes, 4, 1, lambda r, k, a, b: 0.4 if k == 1 else 1.0), line, devices=_devices(nodes, 4)
    )
    assert _kinds(defects) == [("rail", None, 1)]
    (d,) = defects
    assert d.device == "mlx5_2" and d.conviction.pairs == d.conviction.slow_pairs == nodes * (nodes - 1) // 2
    assert _said(d).startswith("rail 1 (mlx5_2, every node): ")
    assert _said(d).endswith(f"in {d.conviction.pairs}/{d.conviction.pairs} pairs → rail fault")


@pytest.mark.parametrize("line", [LINE, None])
@pytest.mark.parametrize(("nodes", "rails"), [(3, 2), (4, 4), (8, 8)])
def test_whole_node(nodes: int, rails: int, line: float | None) -> None:
    defects = localise(_matrix(nodes, rails, 2, lambda r, k, a, b: 0.3 if 0 in (a, b) else 1.0), line)
    assert _kinds(defects) == [("node", "node01", None)]
    assert defects[0].conviction.pairs == rails * (nodes - 1)
    assert "(every rail)" in _said(defects[0]) and _said(defects[0]).endswith("node fault")


def test_one_pair() -> None:
    defects = localise(_matrix(6, 4, 3, lambda r, k, a, b: 0.5 if (k, a, b) == (3, 1, 4) else 1.0), LINE)
    assert [(d.kind, d.node, d.peer, d.rail) for d in defects] == [("pair", "node02", "node05", 3)]
    assert _said(defects[0]).startswith("node02-node05 rail 3: ")


def test_flaky_link_shows_as_spread_over_repeats() -> None:
    # node04 rail 1 is slow in 2 of 5 repeats with each partner (a different 2 per partner): every single
    # pair's median is fine, but the link is suspect with every partner.
    def fault(r: int, k: int, a: int, b: int) -> float:
        if k != 1 or 3 not in (a, b):
            return 1.0
        partner = b if a == 3 else a
        return 0.35 if r in (partner % 5, (partner + 2) % 5) else 1.0

    defects = localise(_matrix(6, 2, 5, fault), LINE, devices=_devices(6, 2))
    assert _kinds(defects) == [("link", "node04", 1)]
    (d,) = defects
    assert d.conviction.symptom == "flaky"
    assert d.conviction.slow_samples == 10 and d.conviction.samples == 25
    assert d.conviction.spread > 0.5
    assert d.conviction.measured_Gbps == pytest.approx(0.35 * HEALTHY, rel=0.05)
    assert _said(d).endswith("slow in 10/25 samples, spread " + f"{100 * d.conviction.spread:.0f}% → link flaky")


def test_one_unlucky_sample_is_not_a_fault() -> None:
    defects = localise(_matrix(6, 2, 3, lambda r, k, a, b: 0.3 if (r, k, a, b) == (1, 0, 2, 3) else 1.0), LINE)
    assert defects == ()


def test_dead_link_measured_as_zero() -> None:
    defects = localise(_matrix(4, 2, 1, lambda r, k, a, b: 0.0 if k == 0 and 2 in (a, b) else 1.0), LINE)
    assert [(d.kind, d.node, d.rail, d.conviction.symptom) for d in defects] == [("link", "node03", 0, "dead")]
    assert _said(defects[0]).endswith("no traffic in 3/3 pairs → link dead")


def test_rail_fault_and_a_link_on_another_rail() -> None:
    def fault(r: int, k: int, a: int, b: int) -> float:
        return 0.5 if k == 0 or (k == 2 and 4 in (a, b)) else 1.0

    defects = localise(_matrix(6, 3, 1, fault), LINE)
    assert _kinds(defects) == [("rail", None, 0), ("link", "node05", 2)]


@pytest.mark.parametrize("line", [LINE, None])
@pytest.mark.parametrize("link", [0.02, 0.5])
def test_a_link_on_three_nodes_stays_the_link_when_the_third_pair_reads_slow_again(
    link: float, line: float | None
) -> None:
    """The testbed's campaign slice (tests/test_rails_diagnosis_netns.py) under a loaded suite: node03's rail 1 slow in
    every sample, and the one pair without it, starved of CPU, slow once and slow again when re-measured (0.46). Every
    pair reproduced: the rail was named, and without the rail the two healthy ends, the fewest links that cover all
    three pairs. The third is a passing slowdown (slow in 2 of its 5 samples) far shallower than the link's pairs; a
    rail's own fault, or two slow links, slow every pair in most samples (test_whole_rail; then the rail)."""
    names = ["node01", "node02", "node03"]
    samples = []
    for r in range(4):
        for k in range(2):
            for a, b in ((0, 1), (0, 2), (1, 2)):
                factor = link if k == 1 and 2 in (a, b) else 0.46 if (r, k, a, b) == (0, 1, 0, 1) else 1.0
                samples.append(PairSample(names[a], names[b], k, HEALTHY * factor * (1 + 0.01 * (r - 1.5)), r))
    again = {("node01", "node03"): link, ("node02", "node03"): link, ("node01", "node02"): 0.46}
    samples += [PairSample(a, b, 1, factor * HEALTHY, confirm=1) for (a, b), factor in again.items()]
    defects = localise(PairMatrix.from_samples(samples), line)
    assert _kinds(defects) == [("link", "node03", 1)]


def test_uniformly_below_target_is_every_rail() -> None:
    defects = localise(_matrix(4, 2, 1, lambda r, k, a, b: 0.6), LINE)
    assert _kinds(defects) == [("rail", None, 0), ("rail", None, 1)]


def test_human_line_format() -> None:
    names = [f"node{i:02d}" for i in range(1, 9)]
    samples = [
        PairSample(a, b, 3, 212.0 if "node07" in (a, b) else 395.0) for i, a in enumerate(names) for b in names[i + 1 :]
    ]
    (d,) = localise(PairMatrix.from_samples(samples, rails=[3]), LINE, devices={("node07", 3): "mlx5_4"})
    assert _said(d) == "node07 rail 3 (mlx5_4): 212 Gb/s = 53% of 400 Gb/s in 7/7 pairs → link fault"
    as_json = convicted(d, action="").to_json()
    assert as_json["kind"] == "link" and as_json["device"] == "mlx5_4" and len(as_json["evidence"]) == 7


def test_per_rail_line_rates() -> None:
    # rail 1 is a 200 Gb/s rail running at 190: healthy against its own rate, not against 400.
    samples = [
        PairSample(a, b, k, 390.0 if k == 0 else 190.0)
        for k in (0, 1)
        for a, b in (("n1", "n2"), ("n1", "n3"), ("n2", "n3"))
    ]
    assert localise(PairMatrix.from_samples(samples), {0: 400.0, 1: 200.0}) == ()
    assert _kinds(localise(PairMatrix.from_samples(samples), 400.0)) == [("rail", None, 1)]


def test_bad_inputs_are_user_errors() -> None:
    matrix = _matrix(3, 2)
    with pytest.raises(UserError, match="line rate for rails"):
        localise(matrix, {0: 400.0})
    with pytest.raises(UserError, match="positive"):
        localise(matrix, 0.0)
    with pytest.raises(UserError, match="pass_fraction"):
        Thresholds(pass_fraction=1.5)
    with pytest.raises(UserError, match="no measurements"):
        localise(PairMatrix.from_samples([], nodes=["a", "b"], rails=[0]), LINE)
    with pytest.raises(UserError, match="itself"):
        PairMatrix.from_samples([PairSample("a", "a", 0, 1.0)])
    with pytest.raises(UserError, match="outside"):
        PairMatrix.from_samples([PairSample("a", "b", 5, 1.0)], rails=[0])


def _cpu_like(nodes: int, rails: int, slow: Callable[[int, int, int], bool], seed: int) -> PairMatrix:
    """Healthy veth pairs on busy CPUs: 3 to 25 Gb/s; shaped ones a steady 0.29 Gb/s."""
    rng = np.random.default_rng(seed)
    names = [f"node{i + 1:02d}" for i in range(nodes)]
    samples = [
        PairSample(names[a], names[b], k, 0.29 if slow(k, a, b) else float(np.exp(rng.uniform(np.log(3), np.log(25)))))
        for k in range(rails)
        for a in range(nodes)
        for b in range(a + 1, nodes)
    ]
    return PairMatrix.from_samples(samples)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(20))
def test_relative_only_with_cpu_noise(seed: int) -> None:
    loose = Thresholds(relative_fraction=0.1)
    cases = {
        (): lambda k, a, b: False,
        (("rail", None, 0),): lambda k, a, b: k == 0,
        (("link", "node03", 1),): lambda k, a, b: k == 1 and 2 in (a, b),
        (("node", "node02", None),): lambda k, a, b: 1 in (a, b),
    }
    for want, slow in cases.items():
        # Five nodes: always exactly the part. Four nodes leave as few as six healthy samples of a spread
        # this wide, so there railbench may say it cannot tell, but never names the wrong part.
        assert tuple(_kinds(localise(_cpu_like(5, 2, slow, seed), None, loose))) == want
        found = diagnose(_cpu_like(4, 2, slow, seed), None, loose)
        assert tuple(_kinds(found.defects)) == want or (found.defects == () and found.too_noisy)
