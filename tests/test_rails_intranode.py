"""The intra-node pair matrix, localised (pure): a GPU slow with every local partner is a ``gpu`` defect,
one slow local pair a ``gpu-pair``, a node whose every local pair is slow a ``node``; noise names nothing, and
a pair slow once that reads normal when re-measured is a transient, never a defect."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from bench import codec
from bench.profile.actions import Actions
from bench.profile.errors import ErrorLimits
from bench.rails.diagnosis.corroborate import convicted_gpu, corroborate
from bench.rails.diagnosis.gpu_outcome import IntraNodeOutcome
from bench.rails.diagnosis.gpu_pairs import LocalMatrix, LocalPairTime, NamedGpus, localise_gpus, suspect_cells
from bench.rails.diagnosis.items import intra_node_items
from bench.rails.diagnosis.rails_outcome import RailsOutcome
from bench.rails.documents import intra_node_section, local_pair_rows
from bench.rails.output import intra_node_table
from bench.rails.plan.schedule import confirmation_rounds, schedule
from bench.rundir.finding_words import describe_gpu
from bench.rundir.railsdoc import IntraNode, RailsDoc

MIB = 1 << 20


def _times(
    nodes: int,
    local: int,
    rate: dict[tuple[int, int, int], float],
    *,
    repeats: int = 1,
    noise: float = 0.02,
    seed: int = 0,
    healthy: float = 2880.0,
) -> list[LocalPairTime]:
    """Both directions of every local pair; ``rate[(node, a, b)]`` overrides the healthy Gb/s of a pair."""
    rng = np.random.default_rng(seed)
    out = []
    for repeat in range(repeats):
        for node in range(nodes):
            for a in range(local):
                for b in range(local):
                    if a == b:
                        continue
                    gbps = rate.get((node, min(a, b), max(a, b)), healthy) * float(np.exp(rng.normal(0, noise)))
                    time_us = 256 * MIB * 8 / (gbps * 1e9) * 1e6
                    out.append(LocalPairTime(node, a, b, repeat, 0, 256 * MIB, time_us))
    return out


def _again(
    pairs: dict[tuple[int, int, int], float], *, passes: int = 2, noise: float = 0.02, seed: int = 1
) -> list[LocalPairTime]:
    """Both directions of each pair ``(node, a, b)`` re-measured ``passes`` times at its Gb/s."""
    rng = np.random.default_rng(seed)
    out = []
    for confirm in range(1, passes + 1):
        for (node, a, b), rate in pairs.items():
            for gpu, peer in ((a, b), (b, a)):
                time_us = 256 * MIB * 8 / (rate * float(np.exp(rng.normal(0, noise))) * 1e9) * 1e6
                out.append(LocalPairTime(node, gpu, peer, 0, 0, 256 * MIB, time_us, confirm))
    return out


def _slowed_once(times: list[LocalPairTime], node: int, a: int, b: int, gbps: float) -> list[LocalPairTime]:
    """``times`` with the one direction a -> b of one pair slowed to ``gbps`` in the first repeat: a rank starved
    of CPU for one sample, as on a loaded machine."""
    slow_us = 256 * MIB * 8 / (gbps * 1e9) * 1e6
    return [
        dataclasses.replace(t, time_us=slow_us) if (t.node, t.gpu, t.peer, t.repeat) == (node, a, b, 0) else t
        for t in times
    ]


def _slow_gpu(node: int, gpu: int, local: int, gbps: float) -> dict[tuple[int, int, int], float]:
    return {(node, min(gpu, p), max(gpu, p)): gbps for p in range(local) if p != gpu}


def _localise(times: list[LocalPairTime], nodes: int, local: int, target: float | None = None) -> NamedGpus:
    names = tuple(f"node{k:02d}" for k in range(nodes))
    bus = {n: tuple(f"0000:{0x18 + 16 * g:02x}:00.0" for g in range(local)) for n in names}
    matrix = LocalMatrix.from_times(times, names, local)
    return localise_gpus(matrix, target_Gbps=target, pass_fraction=0.9, relative_fraction=0.8, bus_ids=bus)


def _convicted(intra: IntraNodeOutcome) -> IntraNodeOutcome:
    """The outcome as the conviction step leaves it (``bench.rails.diagnosis.corroborate``): each part named
    its defect, with no node check to explain it and the default profile's action."""
    convicted = corroborate(RailsOutcome(RailsDoc(nodes=intra.nodes), intra_node=intra), ErrorLimits(), Actions())
    assert convicted.intra_node is not None
    return convicted.intra_node


@pytest.mark.parametrize(("nodes", "local"), [(1, 4), (4, 8), (16, 8)])
def test_a_clean_matrix_names_nothing(nodes: int, local: int) -> None:
    for seed in range(5):
        loc = _localise(_times(nodes, local, {}, noise=0.1, seed=seed), nodes, local)
        assert loc.parts == () and loc.too_noisy is None


def test_one_slow_gpu_is_named_with_its_bus_id() -> None:
    loc = _localise(_times(4, 8, _slow_gpu(2, 5, 8, 1000.0), noise=0.05), 4, 8)
    (defect,) = loc.parts
    assert (defect.kind, defect.node, defect.gpu, defect.bus_id) == ("gpu", "node02", 5, "0000:68:00.0")
    assert defect.conviction.slow_pairs == defect.conviction.pairs == 7 and defect.conviction.basis == "peers"
    assert 900 < defect.conviction.measured_Gbps < 1100 and 2600 < defect.conviction.expected_Gbps < 3200
    line = describe_gpu(convicted_gpu(defect, action=""))  # its line as the conviction step's record says it
    assert line.startswith("node02 GPU 5 (0000:68:00.0): ") and line.endswith("in 7/7 local pairs → gpu fault")


def test_one_slow_gpu_on_a_single_four_gpu_node() -> None:
    loc = _localise(_times(1, 4, _slow_gpu(0, 1, 4, 700.0)), 1, 4)
    assert [(d.kind, d.gpu) for d in loc.parts] == [("gpu", 1)]


def test_one_slow_pair_is_a_gpu_pair() -> None:
    loc = _localise(_times(2, 8, {(1, 2, 6): 1200.0}), 2, 8)
    (defect,) = loc.parts
    assert (defect.kind, defect.node, defect.gpu, defect.peer) == ("gpu-pair", "node01", 2, 6)
    assert defect.conviction.evidence == ("node01/gpu2-gpu6",)


def test_two_local_ranks_cannot_tell_which_gpu() -> None:
    loc = _localise(_times(4, 2, {(3, 0, 1): 700.0}), 4, 2)
    assert [(d.kind, d.node) for d in loc.parts] == [("gpu-pair", "node03")]


def test_one_local_pair_in_all_is_not_judged_however_tight_its_samples() -> None:
    """Two ranks on one node (``rails --np 2 --intra-node`` on a CPU host): the pair has no peer, so the relative
    test judged nothing; a tight spread once made that a PASS, a loaded machine's a MEASURED."""
    for noise in (0.0, 0.001, 0.3):
        loc = _localise(_times(1, 2, {}, repeats=3, noise=noise), 1, 2)
        assert loc.parts == () and (loc.too_noisy or "").startswith("one local pair: ")
    outcome = _convicted(IntraNodeOutcome(("node00",), 2, named=_localise(_times(1, 2, {}), 1, 2)))
    (item,) = intra_node_items(outcome)
    assert item.state == "measured" and "no other pair to compare it with" in item.reason


def test_a_node_with_every_pair_slow_is_the_node_not_eight_gpus() -> None:
    slow = {(1, a, b): 1000.0 for a in range(8) for b in range(a + 1, 8)}
    loc = _localise(_times(4, 8, slow), 4, 8)
    assert [(d.kind, d.node, d.gpu) for d in loc.parts] == [("node", "node01", None)]


def test_below_the_target_everywhere_fails_every_node_against_the_target() -> None:
    loc = _localise(_times(2, 4, {}, healthy=1000.0), 2, 4, target=2880.0)
    assert [(d.kind, d.conviction.basis) for d in loc.parts] == [("node", "target")] * 2


def test_too_noisy_names_nothing_and_says_so() -> None:
    loc = _localise(_times(1, 4, _slow_gpu(0, 1, 4, 1400.0), noise=0.8, seed=3), 1, 4)
    assert loc.parts == ()
    assert (loc.too_noisy or "").startswith("too noisy to localise GPUs: healthy local pairs spread ")


def test_outputs_rows_json_and_table() -> None:
    times = _times(1, 4, _slow_gpu(0, 3, 4, 700.0), repeats=2)
    outcome = _convicted(
        IntraNodeOutcome(
            ("node00",), 4, tuple(times), {"node00": (None,) * 4}, named=_localise(times, 1, 4), process_groups=1
        )
    )
    assert outcome.failed and outcome.node_reasons("node00") and not outcome.node_reasons("other")
    csv = local_pair_rows(outcome, 10)
    assert len(csv) == 6 * 2 and {r["scope"] for r in csv} == {"local-pair"}
    assert {r["group"] for r in csv} >= {"node00/gpu0-gpu1", "node00/gpu2-gpu3"}
    intra = intra_node_section(outcome)
    assert len(intra.measurements) == 12 * 2 and intra.process_groups == 1
    assert [(d.kind, d.gpu) for d in intra.localisation.defects] == [("gpu", 3)]
    text = intra_node_table(outcome)
    assert "node00: 12 samples" in text and "node00 GPU 3 (0000:48:00.0): " in text


def test_on_by_default_with_nccl_only_and_asked_for_in_rails() -> None:
    from bench.profile.cluster import load_profile
    from bench.rails.measurement.intranode import wanted
    from bench.rails.plan.config import RailsConfig, resolve, retargeted

    profile = load_profile("lambda-1cc")
    auto = resolve(RailsConfig(intra_node=None), profile)
    assert wanted(auto, "nccl") and not wanted(auto, "gloo")
    assert not wanted(resolve(RailsConfig(), profile), "nccl")  # rails: only with --intra-node
    assert wanted(resolve(RailsConfig(intra_node=True), profile), "gloo")
    # the profile's NVLink sendrecv figure of the run's GPU generation, once the ranks have reported their GPUs
    assert auto.local_pair_target_gbps is None
    assert retargeted(auto, profile.for_gpus(["NVIDIA H100 80GB HBM3"] * 8)).local_pair_target_gbps == 2880
    assert retargeted(auto, profile.for_gpus(["NVIDIA B200"] * 8)).local_pair_target_gbps is None  # none published


@pytest.mark.parametrize(("flag", "expected"), [([], None), (["--intra-node"], True), (["--no-intra-node"], False)])
def test_accept_carries_intra_node_to_the_ranks(flag: list[str], expected: bool | None, tmp_path: Path) -> None:
    import argparse

    from bench.accept.config import AcceptConfig
    from bench.commands import accept as cmd
    from bench.commands.flags import config_or_spec

    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    config = cmd.config_from_args(parser.parse_args(["--profile", "local", *flag]))
    assert config.rails.intra_node is expected
    again = config_or_spec(parser.parse_args(config.rank_argv(tmp_path)[1:]), AcceptConfig, cmd.config_from_args)
    assert again.rails.intra_node == config.rails.intra_node


def test_a_gpu_defect_fails_its_node_in_accept() -> None:
    from bench.frame.decide import decide, said
    from bench.rails.diagnosis.items import node_items, rail_items

    times = _times(2, 4, _slow_gpu(1, 0, 4, 700.0))
    intra = _convicted(IntraNodeOutcome(("node00", "node01"), 4, tuple(times), named=_localise(times, 2, 4)))
    outcome = RailsOutcome(RailsDoc(skipped="1 node"), intra_node=intra)
    assert outcome.failed
    status = {i.name: (i.state, said(i)) for i in node_items(["node00", "node01"], outcome)}
    assert status["node00"] == ("pass", "")
    assert status["node01"][0] == "fail" and status["node01"][1].startswith("node01 GPU 0 (0000:18:00.0): ")
    # the intra-node item names the GPU, and the run fails on it (the node line only repeats it)
    verdict = decide(rail_items(outcome) + node_items(["node00", "node01"], outcome))
    assert verdict.word == "fail" and verdict.reasons == (status["node01"][1],)


def test_a_pair_slow_in_one_one_way_sample_and_normal_again_is_a_transient() -> None:
    """The loaded test machine's case: one direction of one healthy pair at 75% of the level in one sample.
    Before re-measurement it is a suspect (a gpu-pair, had it been judged alone); re-measured normal twice, it
    is a transient and nothing is named."""
    times = _slowed_once(_times(1, 4, {}, healthy=0.25, noise=0.01), 0, 0, 3, 0.18)
    alone = _localise(times, 1, 4)
    assert [(d.kind, d.gpu, d.peer) for d in alone.parts] == [("gpu-pair", 0, 3)]  # what --confirm 0 says
    again = _again({(0, 0, 3): 0.25})
    loc = _localise(times + again, 1, 4)
    assert loc.parts == ()
    (transient,) = loc.transients
    assert (transient.node, transient.peer, transient.rail) == ("node00/gpu0", "node00/gpu3", None)
    assert transient.samples_Gbps == (pytest.approx(0.18),) and len(transient.confirm_Gbps) == 2
    outcome = _convicted(IntraNodeOutcome(("node00",), 4, tuple(times), named=loc, remeasured=tuple(again)))
    assert not outcome.failed
    text = intra_node_table(outcome)
    assert "node00/gpu0-gpu3: slow at 0.18 Gb/s, normal when re-measured (" in text
    assert "# intra-node defects: none" in text and "node00: 6 samples" in text  # the matrix, not its re-runs
    written = intra_node_section(outcome)
    assert len(written.measurements) == 12 and len(local_pair_rows(outcome, 10)) == 6
    # rails.json keeps the transient beside the matrix, and reads it back
    assert written.localisation.transients == loc.transients
    (read,) = codec.decode(IntraNode, written.to_json(), "intra_node.").localisation.transients
    assert (read.node, read.peer, read.samples_Gbps) == (transient.node, transient.peer, (0.18,))
    assert read.confirm_Gbps == pytest.approx(transient.confirm_Gbps, abs=1e-6)  # written to 6 places


def test_a_slow_pair_slow_again_when_re_measured_is_named() -> None:
    times = _times(2, 8, {(1, 2, 6): 1200.0})
    loc = _localise(times + _again({(1, 2, 6): 1200.0}), 2, 8)
    (defect,) = loc.parts
    assert (defect.kind, defect.node, defect.gpu, defect.peer, defect.conviction.symptom) == (
        "gpu-pair",
        "node01",
        2,
        6,
        "slow",
    )
    assert defect.conviction.slow_samples == defect.conviction.samples == 3 and loc.transients == ()


def test_a_pair_slow_once_in_three_samples_is_not_named() -> None:
    """Slow in the matrix and in one re-measurement of two: reproduced, but slow in under most of its samples
    only when the other re-measurement is normal too, as the rails matrix's lone pairs."""
    times = _times(2, 8, {(1, 2, 6): 1200.0})
    again = _again({(1, 2, 6): 1200.0}, passes=1) + [
        dataclasses.replace(t, confirm=2) for t in _again({(1, 2, 6): 2880.0}, passes=1)
    ]
    loc = _localise(times + again, 2, 8)
    (defect,) = loc.parts  # 2 of 3 samples slow: most of them
    assert defect.kind == "gpu-pair" and defect.conviction.slow_samples == 2 and defect.conviction.samples == 3
    healthy_again = _again({(1, 2, 6): 2880.0})
    loc = _localise(times + healthy_again, 2, 8)
    assert loc.parts == () and [(t.node, t.peer) for t in loc.transients] == [("node01/gpu2", "node01/gpu6")]


def test_a_slow_gpu_slow_again_is_named_and_a_noisy_sample_beside_it_is_a_transient() -> None:
    slow = _slow_gpu(0, 1, 8, 700.0)
    times = _slowed_once(_times(1, 8, slow), 0, 2, 3, 1000.0)
    loc = _localise(times + _again({**slow, (0, 2, 3): 2880.0}), 1, 8)
    assert [(d.kind, d.gpu, d.conviction.slow_pairs, d.conviction.pairs) for d in loc.parts] == [("gpu", 1, 7, 7)]
    assert [(t.node, t.peer) for t in loc.transients] == [("node00/gpu2", "node00/gpu3")]


def test_one_slow_gpu_and_every_other_pair_slow_once_is_the_gpu_not_the_node() -> None:
    """On four GPUs a slow GPU is slow with 3 of the 6 pairs; one noisy sample on each other pair makes every
    pair a suspect, and half of them reproduce. The GPU explains what reproduced, so the node is not named."""
    slow = _slow_gpu(0, 1, 4, 700.0)
    times = _times(3, 4, slow)
    for a, b in ((0, 2), (0, 3), (2, 3)):
        times = _slowed_once(times, 0, a, b, 1000.0)
    normal = {(0, a, b): 2880.0 for a, b in ((0, 2), (0, 3), (2, 3))}
    loc = _localise(times + _again({**slow, **normal}), 3, 4)
    assert [(d.kind, d.node, d.gpu) for d in loc.parts] == [("gpu", "node00", 1)]
    assert len(loc.transients) == 3


def test_the_suspects_are_re_measured_in_their_own_round_with_their_partner() -> None:
    """Rank 0's suspects, as the rails matrix's confirmation rounds take them: a node's suspect pair in the
    round that found it, the node where a rails cell has its rail, and nobody else exchanging."""
    rounds = schedule(4, 1, 0)
    times = [
        dataclasses.replace(t, round=next(r.index for r in rounds if r.partner(t.gpu) == t.peer))
        for t in _slowed_once(_times(2, 4, {}, noise=0.01), 1, 3, 0, 1000.0)
    ]
    found = suspect_cells(times, ("node00", "node01"), 4, target_Gbps=None, pass_fraction=0.9, relative_fraction=0.8)
    (cell,) = found
    index = next(r.index for r in rounds if r.partner(0) == 3)
    assert cell == (0, index, 1, 0, 3)
    again = confirmation_rounds(rounds, found, 2)
    assert [(r.confirm, r.index) for r in again] == [(1, index), (2, index)]
    assert [again[0].partner(g, 1) for g in range(4)] == [3, None, None, 0]
    assert [again[0].partner(g, 0) for g in range(4)] == [None] * 4  # node00 has no suspect: it waits
