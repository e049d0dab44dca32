"""Name the slow GPU from the intra-node pair matrix: every pair of local ranks on each node.

A transfer between local ranks i and j of one node (NVLink through the NVSwitch on GPUs, loopback on CPU)
runs at the speed of the slower of GPU i's links, GPU j's links and the switch. So, per node:

* ``gpu``: local rank i is slow with every local partner -> GPU i (its NVLink ports, its PCIe, its clocks);
* ``gpu-pair``: one pair is slow and neither end is slow with everyone -> that path, or noise;
* ``node``: every local pair of the node is slow -> the switch, or every GPU: no single GPU to name.

A GPU needs at least two partners to be told from its pair (with two local ranks a slow pair is a
``gpu-pair``: either end could be the culprit).

The healthy level is a robust central estimate over every node: each GPU's median over its partners, then
the median of those. One slow GPU of eight moves no healthy GPU's median (one partner in seven), so the level
holds while up to half the GPUs are slow. A pair counts as slow when it is below the absolute target (the
profile's NVLink sendrecv figure x ``pass_fraction``, GPUs only), or below ``relative_fraction`` x the level
*and* further below it than the healthy pairs' own spread explains. That spread is measured on log rates
(bandwidth noise is multiplicative) with the median absolute deviation, and the band widens with the number
of comparisons, so a larger cluster raises no more false alarms than a small one. When the band is so wide
that even a GPU at half the level would pass for noise, nothing is named on the relative test and the
outcome says why ("too noisy to localise").

One slow sample convicts nothing. A pair with a slow sample is a *suspect*, and the rank side re-measures
every suspect (``confirm`` passes, in the round it was first measured in, beside the same partners' traffic)
before anything is named, as the rails matrix does (docs/design.md, "Localisation"). The rules are the rails
matrix's own (``bench.rails.diagnosis.cells.Cells``), with each node standing where the rails matrix has a rail: a node
is a matrix of its own whose pairs run beside the other nodes' in every round. A suspect *reproduces* when a
re-measurement is slow again; a ``gpu`` or ``node`` is named when every pair of it is suspect and at least
half of those reproduce; a ``gpu-pair`` when it reproduced and is slow in most of its samples, re-measurements
included. A suspect that nothing named explains is a ``Transient``: slow once, normal when re-measured, shown
with its samples and never a fault. Without re-measurements (``--confirm 0``) a pair must be slow in most of
its samples instead.

Pure functions over numpy arrays; the rank side (``bench.rails.measurement.intranode``) gathers the times.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal

import numpy as np

from bench.rails.diagnosis import lone_pairs
from bench.rails.diagnosis.cells import Cells, transients
from bench.rails.diagnosis.matrix import PairMatrix
from bench.rails.plan.schedule import Cell
from bench.rundir.finding_words import gbps
from bench.rundir.rails_records import Conviction, NamedGpu, Transient

GpuSymptom = Literal["slow", "flaky", "dead"]

FALSE_ALARMS = 0.01
"""Expected defects raised by noise alone over a whole healthy cluster."""
NOISY_BELOW = 0.5
"""Too noisy to localise when the noise band reaches below this fraction of the healthy level."""
SCOPE = "local-pair"
"""results.csv scope of an intra-node pair (group ``node03/gpu1-gpu5``)."""


@dataclass(frozen=True)
class LocalPairTime:
    """One direction of one intra-node pair: local rank ``gpu`` of node ``node`` sent ``nbytes`` to ``peer``."""

    node: int
    gpu: int
    peer: int
    repeat: int
    round: int
    nbytes: int
    time_us: float
    """Mean time per message at the slower of the two ends."""
    confirm: int = 0
    """0: a matrix sample; 1..: the n-th re-measurement of a suspect pair, run in the round (``repeat``,
    ``round``) that first found it slow."""

    @property
    def busbw_Gbps(self) -> float:
        """Point-to-point: busbw = algbw = S / t, in Gb/s."""
        return self.nbytes * 8 / (self.time_us * 1e-6) / 1e9 if self.time_us > 0 else 0.0


@dataclass(frozen=True, eq=False)
class LocalMatrix:
    """``sent[repeat, node, i, j]``: local rank i to local rank j on one node, Gb/s, NaN where unmeasured;
    ``sent_again[pass, node, i, j]`` the re-measurements of the suspect pairs (no passes without them)."""

    nodes: tuple[str, ...]
    sent: np.ndarray = field(repr=False)
    again: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Frozen: the default (no re-measurement pass) is filled in once, here.
        if self.again is None:
            object.__setattr__(self, "again", np.full((0, *self.sent.shape[1:]), np.nan))

    @property
    def sent_again(self) -> np.ndarray:
        assert self.again is not None  # set in __post_init__
        return self.again

    @property
    def busbw(self) -> np.ndarray:
        """``[repeat, node, i, j]``, symmetric: the slower direction of each pair."""
        return np.fmin(self.sent, np.swapaxes(self.sent, 2, 3))

    @property
    def busbw_again(self) -> np.ndarray:
        """``[pass, node, i, j]``: the slower direction of each re-measured pair, NaN where none."""
        return np.fmin(self.sent_again, np.swapaxes(self.sent_again, 2, 3))

    @classmethod
    def from_times(cls, times: Sequence[LocalPairTime], nodes: Sequence[str], local_ranks: int) -> LocalMatrix:
        """The matrix and its re-measurements (``LocalPairTime.confirm``) from every direction measured."""
        repeats = 1 + max((t.repeat for t in times if not t.confirm), default=0)
        passes = max((t.confirm for t in times), default=0)
        shape = (len(nodes), local_ranks, local_ranks)
        sent, again = np.full((repeats, *shape), np.nan), np.full((passes, *shape), np.nan)
        for t in times:
            if t.confirm:
                again[t.confirm - 1, t.node, t.gpu, t.peer] = t.busbw_Gbps
            else:
                sent[t.repeat, t.node, t.gpu, t.peer] = t.busbw_Gbps
        return cls(tuple(nodes), sent, again)


@dataclass(frozen=True)
class NamedGpus:
    """What the intra-node matrix says before its parts are convicted: the parts it named, the healthy level, why
    nothing could be named, if so, and the suspects that read normal again. The conviction step makes it
    rails.json's ``Localisation`` (``bench.rundir.rails_records``), each part a ``GpuDefect``."""

    parts: tuple[NamedGpu, ...] = ()
    level_Gbps: float | None = None
    too_noisy: str | None = None
    transients: tuple[Transient, ...] = ()


def pair_name(node: str, a: int, b: int) -> str:
    return f"{node}/gpu{min(a, b)}-gpu{max(a, b)}"


def localise_gpus(
    matrix: LocalMatrix,
    *,
    target_Gbps: float | None,
    pass_fraction: float,
    relative_fraction: float,
    bus_ids: Mapping[str, Sequence[str | None]] | None = None,
) -> NamedGpus:
    """The smallest explanation of every reproducible slow local pair: nodes, then GPUs, then GPU pairs; the
    suspects that read normal when re-measured are transients."""
    j = _judge(matrix, target_Gbps, pass_fraction, relative_fraction)
    if j is None:
        return NamedGpus((), None, None)
    parts, explained = _parts(j, bus_ids or {})
    found = tuple(_on_gpus(matrix.nodes, t) for t in transients(j.cells, j.cells.suspect & ~explained))
    return NamedGpus(parts, float(np.exp(j.level)), j.too_noisy, found)


def suspect_cells(
    times: Sequence[LocalPairTime],
    nodes: Sequence[str],
    local_ranks: int,
    *,
    target_Gbps: float | None,
    pass_fraction: float,
    relative_fraction: float,
) -> list[Cell]:
    """Rank 0: every local pair with a slow matrix sample, as ``(repeat, round, node, low, high)`` of its first
    slow one, for ``bench.rails.plan.schedule.confirmation_rounds`` to re-measure (the node where a rails cell has its
    rail)."""
    matrix_times = [t for t in times if not t.confirm]
    j = _judge(LocalMatrix.from_times(matrix_times, nodes, local_ranks), target_Gbps, pass_fraction, relative_fraction)
    if j is None:
        return []
    round_of = {(t.repeat, t.node, min(t.gpu, t.peer), max(t.gpu, t.peer)): t.round for t in matrix_times}
    out: list[Cell] = []
    for k, a, b in zip(*np.nonzero(np.triu(j.cells.suspect, k=1)), strict=True):
        repeat = int(np.flatnonzero(j.cells.slow_sample[:, k, a, b])[0])
        index = round_of.get((repeat, int(k), int(a), int(b)))
        if index is not None:
            out.append((repeat, index, int(k), int(a), int(b)))
    return out


@dataclass(frozen=True, eq=False)
class _Judged:
    """The matrix with every sample judged: the rails matrix's ``Cells``, each node where a rail stands there."""

    matrix: LocalMatrix
    cells: Cells
    absolute: float
    """log of the absolute cut (-inf without a target)."""
    level: float
    """log of the healthy level."""
    target: float | None
    too_noisy: str | None


def _judge(
    matrix: LocalMatrix, target_Gbps: float | None, pass_fraction: float, relative_fraction: float
) -> _Judged | None:
    """Which matrix samples and re-measurements are slow; None where there is no local pair to judge."""
    x = matrix.busbw
    sent = np.log(np.maximum(matrix.sent, 1e-12))
    n_nodes, local = x.shape[1], x.shape[2]
    off = ~np.eye(local, dtype=bool)[None, :, :]
    measured = (~np.isnan(x)).any(axis=0) & off
    if local < 2 or not measured.any():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the diagonal is NaN by design
        logs = np.log(np.maximum(x, 1e-12))
        cell = np.nanmedian(logs, axis=0)  # [node, i, j]
        gpu_score = np.nanmedian(np.where(measured, cell, np.nan), axis=2)  # [node, i]
    level = float(np.nanmedian(gpu_score))
    rel_cut = level + np.log(relative_fraction)
    # The noise: the spread of every one-way sample of the pairs whose two ends look healthy. A pair keeps
    # the slower of its two directions, so its low tail is that of two one-way samples: each one-way sample
    # screened counts as a comparison (every repeat's), and so does each GPU.
    healthy_gpu = gpu_score >= rel_cut
    healthy_cell = measured & healthy_gpu[:, :, None] & healthy_gpu[:, None, :]
    samples = sent[:, healthy_cell]
    samples = samples[~np.isnan(samples)]
    sigma = 1.4826 * float(np.median(np.abs(samples - np.median(samples)))) if samples.size else 0.0
    comparisons = int((~np.isnan(matrix.sent) & off).sum()) + n_nodes * local
    z = NormalDist().inv_cdf(1.0 - FALSE_ALARMS / max(1, comparisons))
    noise_cut = level - z * sigma
    too_noisy = None
    if int(np.triu(measured, k=1).sum()) < 2:
        # One local pair in the whole matrix (two ranks on one node): the relative test has nothing to compare
        # it with, so it judged nothing, however tight its own samples are.
        too_noisy = "one local pair: the relative test has no other pair to compare it with"
    elif noise_cut < level + np.log(NOISY_BELOW):
        values = np.exp(samples) if samples.size else np.exp(cell[measured])
        too_noisy = (
            f"too noisy to localise GPUs: healthy local pairs spread {gbps(float(values.min()))}-"
            f"{gbps(float(values.max()))} Gb/s"
        )
    relative = -np.inf if too_noisy else min(rel_cut, noise_cut)
    absolute = np.log(pass_fraction * target_Gbps) if target_Gbps else -np.inf
    cut = max(relative, absolute)
    again = np.log(np.maximum(matrix.busbw_again, 1e-12))  # NaN stays NaN: never slow
    slow_sample = (logs < cut) & measured[None]
    # One pair matrix of GPUs per node, the node where the rails matrix has its rail: the suspects, what
    # reproduced and what convicts are the rails matrix's own rules (bench.rails.diagnosis.cells.Cells).
    gpus = PairMatrix(tuple(f"gpu{i}" for i in range(local)), tuple(range(n_nodes)), x, confirm=matrix.busbw_again)
    cells = Cells(
        matrix=gpus,
        measured=measured,
        slow_sample=slow_sample,
        slow_again=(again < cut) & measured[None],
        # The screen above is this matrix's one test of noise: a slow sample is beyond it.
        beyond_noise=slow_sample,
        cell_median=cell,
        slow_rail=np.zeros(n_nodes, dtype=bool),
        expected=np.full(n_nodes, float(target_Gbps) if target_Gbps else float(np.exp(level))),
        basis="line rate" if target_Gbps else "peers",
        too_noisy=too_noisy,
    )
    return _Judged(matrix, cells, absolute, level, target_Gbps, too_noisy)


def _on_gpus(nodes: Sequence[str], transient: Transient) -> Transient:
    """A transient of ``Cells`` (its GPUs named as nodes, its node as a rail) named by its two GPUs."""
    assert transient.rail is not None  # bench.rails.diagnosis.cells.transients names the rail (here: the node) of each
    node = nodes[transient.rail]
    return dataclasses.replace(transient, node=f"{node}/{transient.node}", peer=f"{node}/{transient.peer}", rail=None)


def _confirmed(cells: Cells, k: int, pairs: Sequence[tuple[int, int]]) -> bool:
    """At least half of the suspects among the local pairs ``pairs`` of node ``k`` were slow again."""
    a, b = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    return cells.confirmed(np.full(len(pairs), k), a, b)


def _one_gpu_explains(cells: Cells, k: int, pairs: Sequence[tuple[int, int]]) -> bool:
    """Whether the pairs of node ``k`` that reproduced all share one GPU: then that GPU explains them, and the
    node's other suspects were noise (on 4 GPUs a slow GPU is slow with 3 of the 6 pairs, and one noisy sample
    on each other pair makes every pair a suspect), as a rail whose reproducing pairs meet at one node is that
    node's link in the rails matrix."""
    again = [p for p in pairs if cells.reproduces[k, p[0], p[1]]]
    return bool(again) and any(all(g in p for p in again) for g in again[0])


def _parts(j: _Judged, bus_ids: Mapping[str, Sequence[str | None]]) -> tuple[tuple[NamedGpu, ...], np.ndarray]:
    """The parts named, and ``[node, i, j]``: the local pairs they explain."""
    cells = j.cells
    local = cells.measured.shape[1]
    explained = np.zeros(cells.measured.shape, dtype=bool)
    # A pair alone is named when it reproduced and is slow in most of its samples, and when noise does not
    # explain that (bench.rails.diagnosis.lone_pairs; on a few nodes' matrices the screen's significance stands).
    lone = cells.pair_slow & lone_pairs.beyond_noise(cells)
    out: list[NamedGpu] = []
    for k, node in enumerate(j.matrix.nodes):
        ids = tuple(bus_ids.get(node) or (None,) * local)
        pairs = [(a, b) for a in range(local) for b in range(a + 1, local) if cells.measured[k, a, b]]
        suspects = [(a, b) for a, b in pairs if cells.suspect[k, a, b]]
        if not suspects:
            continue
        every_pair = local >= 3 and len(suspects) == len(pairs) and _confirmed(cells, k, pairs)
        if every_pair and not _one_gpu_explains(cells, k, pairs):
            out.append(_part(j, k, ids, "node", None, None, pairs))
            explained[k] = True
            continue
        for g in range(local):
            mine = [(a, b) for a, b in pairs if g in (a, b)]
            if local >= 3 and mine and all(cells.suspect[k, a, b] for a, b in mine) and _confirmed(cells, k, mine):
                out.append(_part(j, k, ids, "gpu", g, None, mine))
                for a, b in mine:
                    explained[k, a, b] = explained[k, b, a] = True
        for a, b in pairs:
            if lone[k, a, b] and not explained[k, a, b]:
                out.append(_part(j, k, ids, "gpu-pair", a, b, [(a, b)]))
                explained[k, a, b] = explained[k, b, a] = True
    return tuple(out), explained


def _part(
    j: _Judged,
    k: int,
    ids: Sequence[str | None],
    kind: str,
    gpu: int | None,
    peer: int | None,
    cells: list[tuple[int, int]],
) -> NamedGpu:
    """The part of node ``k`` the local pairs ``cells`` convict, whole: its kind and address, its rate and symptom
    from their samples and re-measurements."""
    node = j.matrix.nodes[k]
    first, second = [a for a, _ in cells], [b for _, b in cells]
    values = np.concatenate([j.matrix.busbw[:, k, first, second], j.matrix.busbw_again[:, k, first, second]])
    flags = np.concatenate([j.cells.slow_sample[:, k, first, second], j.cells.slow_again[:, k, first, second]])
    valid = ~np.isnan(values)
    v, f = values[valid], flags[valid]
    symptom: GpuSymptom = "slow" if int(f.sum()) >= 0.5 * len(v) else "flaky"
    if symptom == "slow" and len(v) and float(v.max()) <= 0:
        symptom = "dead"
    rate = float(np.median(v[f] if symptom == "flaky" and f.any() else v)) if len(v) else 0.0
    below_target = j.target is not None and np.log(max(rate, 1e-12)) < j.absolute
    slow_cells = [(a, b) for a, b in cells if j.cells.suspect[k, a, b]]
    return NamedGpu(
        kind=kind,
        node=node,
        gpu=gpu,
        peer=peer,
        bus_id=None if gpu is None else ids[gpu],
        peer_bus_id=None if peer is None else ids[peer],
        conviction=Conviction(
            measured_Gbps=rate,
            expected_Gbps=float(j.target) if below_target and j.target else float(np.exp(j.level)),
            basis="target" if below_target else "peers",
            symptom=symptom,
            slow_pairs=len(slow_cells),
            pairs=len(cells),
            slow_samples=int(f.sum()),
            samples=len(v),
            evidence=tuple(pair_name(node, a, b) for a, b in slow_cells),
        ),
    )
