"""A model of a rail-optimised fat tree at full size, standing in for the measurement of ``railbench rails``.

What it models (and nothing of railbench's own logic): N nodes of R GPUs, each GPU k next to HCA k
(``mlx5_{k+1}``, ``mlx5_0`` is not a rail), in scalable units of ``unit`` nodes; one leaf switch per rail per
unit (the DGX SuperPOD reference: 32 nodes per unit); every leaf joined to every spine, non-blocking (as
many uplinks per leaf as nodes, spines of 64 ports: 8 spines of 4 links per leaf at 64 nodes, 32 spines of 1
link at 256). Its ``Cabling`` is what ``rails --topology`` would read.

The samples (what a rank would time), per pair direction and per rail-group collective:

* **healthy pairs** run at ``PAIR_EFFICIENCY`` x the 400 Gb/s line rate (48.3 GB/s; published NDR sendrecv is
  46-49 GB/s) with lognormal noise of ``SIGMA`` (1.5%), and between units a further ``SIGMA_AR`` (1%): adaptive
  routing spreads a pair's ``FLOWS`` flows over the spines afresh for every transfer;
* **heavy tails**: one sample in ``TAIL_RATE`` is slowed by a transient, uniformly between ``TAIL_LOW`` and
  ``TAIL_HIGH`` of its rate (congestion from a neighbour's burst, a host hiccup): CV about 2%, and about 1 cell
  in 60 below 90% of the line rate;
* **faults** scale the rate of every sample that crosses the broken part: a cable, HCA or node (every rail of
  it) each sample; a flaky cable in a fraction of samples; a dead cable moves nothing (the cell's budget runs
  out); a leaf every sample with an end on it; an uplink or a spine only the flows routed through it (each of a
  pair's flows picks an uplink of its leaf at random, and a pair is as slow as its slowest flow);
* **load and hot spots** (the regimes that switch them on, ``tests/support/models/fabric_load.py``): each round's
  own flows share the uplinks max-min fairly (a 2:1 tapered tree halves a round that crosses whole), and a few
  (leaf, rail) per round run hot for that round only;
* **error counters**: a bad cable raises ``symbol_error`` on its HCA during the windows its rail's traffic ran
  (an HCA fault leaves them quiet);
* **intra-node pairs** over NVLink run at ``NVLINK_EFFICIENCY`` x 3600 Gb/s with 1% noise and no fabric tails;
  a slow GPU's NVLink scales its local pairs (its GPUDirect traffic to its NIC is PCIe, unaffected).

Everything is numpy over the whole matrix; ``measure_rounds`` produces the ``PairColumns`` the ranks would
send for the rounds asked, and ``gathered`` the per-rank dictionaries ``bench.rails.diagnosis.judge`` reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.fabric.cabling import Cable, Cabling, HostPort, SwitchPort, normalised
from bench.rails.diagnosis.evidence import NodeWindow
from bench.rails.diagnosis.matrix import PairColumns
from bench.rails.diagnosis.rails_outcome import ExpectedNic, RailResult
from bench.rails.plan.budget import cell_budget
from bench.rails.plan.schedule import Round
from tests.support.models import fabric_load
from tests.support.models.fabric_regimes import KIND, Regime

LINE_GBPS = 400.0
PAIR_EFFICIENCY = 0.965
RAIL_EFFICIENCY = 0.94
SIGMA = 0.015
SIGMA_AR = 0.01
TAIL_RATE = 100
TAIL_LOW, TAIL_HIGH = 0.70, 0.98
FLOWS = 4
NVLINK_GBPS = 3600.0
NVLINK_EFFICIENCY = 0.92
NVLINK_SIGMA = 0.01
SPINE_PORTS = 64
SYMBOL_ERRORS = 1200
"""Symbol errors a bad cable raises per window (any count a ``fail_on_rise`` counter rises by will do)."""


def nccl_time_us(collective: str, nranks: int, nbytes: int, busbw_Gbps: float) -> float:
    """One call's time in NCCL's cost model over links that carry ``busbw_Gbps`` of bus bandwidth."""
    from tests.support.models.nccl_tuning import nccl_choice

    # nccl-tests' size of an all_gather is its whole gathered buffer, the bytes NCCL prices it at.
    return nccl_choice(collective, nranks, nbytes, busbw_Gbps / 8).time_us(nbytes)


def _company(
    shape: Shape, rail: np.ndarray, a: np.ndarray, b: np.ndarray, cross: np.ndarray, group: np.ndarray
) -> np.ndarray:
    """Whether each cross-unit flow shares its leaf's uplinks with another flow of its half round: another flow
    leaving its source's leaf, or entering its destination's, on its rail."""
    out = np.zeros(len(a), dtype=bool)
    idx = np.flatnonzero(cross)
    for end in (a[idx] // shape.unit, b[idx] // shape.unit):
        key = (group[idx] * (shape.units + 1) + end) * (int(rail.max(initial=0)) + 1) + rail[idx]
        _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        out[idx] |= counts[inverse] > 1
    return out


@dataclass(frozen=True)
class Shape:
    """Nodes, rails and units of a fabric, and its spines."""

    nodes: int
    rails: int = 8
    unit: int = 32
    oversubscription: int = 1
    """Nodes per uplink of a leaf: 1 is non-blocking (the reference design), 2 is a 2:1 tapered tree."""

    @property
    def units(self) -> int:
        return math.ceil(self.nodes / self.unit)

    @property
    def uplinks(self) -> int:
        """Uplinks per leaf: as many as its nodes (non-blocking), or a share of them on a tapered tree."""
        return max(1, self.unit // self.oversubscription)

    @property
    def spines(self) -> int:
        return max(1, math.ceil(self.rails * self.units * self.uplinks / SPINE_PORTS))

    @property
    def links_per_spine(self) -> int:
        return max(1, self.uplinks // self.spines)

    @property
    def cabled_spines(self) -> int:
        """The spines a leaf's uplinks reach (:meth:`cabling`: uplink j to spine ``j // links_per_spine``): every
        spine up to 256 x 8, but at 1024 x 8 a leaf of 16 (2:1) or 32 uplinks reaches 16 or 32 of the 64 or 128
        spines that ``spines`` counts by ports. A spine beyond them carries no flow in this model: a fault there
        slows nothing, so a scenario's spine is drawn among these."""
        return min(self.spines, -(-self.uplinks // self.links_per_spine))

    def node_name(self, a: int) -> str:
        return f"node{a + 1:03d}"

    def hca(self, rail: int) -> str:
        return f"mlx5_{rail + 1}"

    def leaf_name(self, unit: int, rail: int) -> str:
        return f"leaf-su{unit + 1}-r{rail}"

    def spine_name(self, spine: int) -> str:
        return f"spine-{spine + 1}"

    def unit_of(self, a: int) -> int:
        return a // self.unit

    def leaf_index(self, unit: int, rail: int) -> int:
        """Leaves in the order the cabling lists them (``bench.fabric.cabling_plan.shape``): by name."""
        return self._leaf_order()[(unit, rail)]

    def _leaf_order(self) -> dict[tuple[int, int], int]:
        from bench.fabric.sysfs_io import natural_key

        keys = sorted(
            ((u, k) for u in range(self.units) for k in range(self.rails)),
            key=lambda x: natural_key(self.leaf_name(*x)),
        )
        return {key: i for i, key in enumerate(keys)}

    def cabling(self) -> Cabling:
        """Every node's rail HCAs on its unit's leaves (node i of a unit on port i+1), every leaf's uplinks
        on ports after its nodes', spread over the spines."""
        cables: list[Cable] = []
        for a in range(self.nodes):
            u, port = self.unit_of(a), a % self.unit + 1
            for k in range(self.rails):
                cables.append(Cable(HostPort(self.node_name(a), self.hca(k)), SwitchPort(self.leaf_name(u, k), port)))
        spine_port = [0] * self.spines
        for u in range(self.units):
            for k in range(self.rails):
                for j in range(self.uplinks):
                    s = (j // self.links_per_spine) % self.spines
                    spine_port[s] += 1
                    leaf = SwitchPort(self.leaf_name(u, k), self.unit + 1 + j)
                    cables.append(Cable(leaf, SwitchPort(self.spine_name(s), spine_port[s]), "4xNDR"))
        return Cabling(
            normalised(cables, "fabric model"), "fabric model", tuple(self.hca(k) for k in range(self.rails))
        )


@dataclass(frozen=True)
class Fault:
    """One broken part and how much it slows what crosses it (``factor`` 0: nothing moves)."""

    kind: str
    """``cable``, ``hca``, ``node``, ``gpu``, ``leaf``, ``uplink``, ``spine``, ``flaky``, ``dead``."""
    node: int | None = None
    rail: int | None = None
    unit: int | None = None
    uplink: int | None = None
    """The uplink's index on its leaf (spine = uplink // links_per_spine)."""
    spine: int | None = None
    factor: float = 0.5
    share: float = 1.0
    """For a flaky cable: the fraction of samples it is slow in."""


@dataclass
class Model:
    """One fabric with its faults; ``rng`` draws every sample."""

    shape: Shape
    faults: tuple[Fault, ...]
    rng: np.random.Generator
    pair_bytes: int = 256 << 20
    rail_bytes: int = 256 << 20
    iters: int = 10
    warmup: int = 2
    regime: Regime = KIND
    _link: np.ndarray = field(init=False, repr=False)
    _persist: np.ndarray = field(init=False, repr=False)
    _flaky: list[tuple[int, int, float, float]] = field(init=False, repr=False)
    _uplinks: np.ndarray = field(init=False, repr=False)
    _salt: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        s = self.shape
        self._link = np.ones((s.rails, s.nodes))
        self._persist = self._persistent() if self.regime.harsh else np.ones((s.rails, s.nodes))
        self._flaky = []
        self._uplinks = fabric_load.uplink_capacity(s, self.faults, LINE_GBPS * PAIR_EFFICIENCY)
        # The run's queue pair numbers and source ports, which ECMP hashes: drawn only where the regime hashes, so
        # every other regime draws the random numbers it always drew.
        self._salt = int(self.rng.integers(1 << 62)) if self.regime.ecmp_qps else 0
        for f in self.faults:
            if f.kind in ("cable", "hca", "dead") and f.node is not None and f.rail is not None:
                self._link[f.rail, f.node] = min(self._link[f.rail, f.node], f.factor)
            elif f.kind == "node" and f.node is not None:
                self._link[:, f.node] = np.minimum(self._link[:, f.node], f.factor)
            elif f.kind == "leaf" and f.unit is not None and f.rail is not None:
                members = np.arange(s.nodes)[np.arange(s.nodes) // s.unit == f.unit]
                self._link[f.rail, members] = np.minimum(self._link[f.rail, members], f.factor)
            elif f.kind == "flaky" and f.node is not None and f.rail is not None:
                self._flaky.append((f.rail, f.node, f.factor, f.share))

    def _persistent(self) -> np.ndarray:
        """Each healthy link's own mean, as a share of the kind model's: node spread times link spread, held
        between the regime's floor and the line rate (a link runs no faster than its wire)."""
        s, r = self.shape, self.regime
        log = r.node_spread * self.rng.standard_normal(s.nodes)[None, :]
        log = log + r.link_spread * self.rng.standard_normal((s.rails, s.nodes))
        low = r.floor / PAIR_EFFICIENCY if r.floor else 0.0
        return np.clip(np.exp(log), low, 0.995 / PAIR_EFFICIENCY)

    def _noise(self, m: int, cross: np.ndarray) -> np.ndarray:
        """Per-sample log-noise: the kind model's normal draws, or the regime's heavy-tailed ones (Student's t
        scaled to the regime's sigma, a detour of more than a quarter left to the outliers)."""
        r, rng = self.regime, self.rng
        if not r.harsh:
            return SIGMA * rng.standard_normal(m) + SIGMA_AR * rng.standard_normal(m) * cross
        dof = r.heavy_tail_dof
        draw = rng.standard_t(dof, m) * math.sqrt((dof - 2) / dof) if dof > 2 else rng.standard_normal(m)
        log = r.sigma * draw + SIGMA_AR * rng.standard_normal(m) * cross
        return np.clip(log, -0.25, 0.05)

    def _rates(self, rail: np.ndarray, a: np.ndarray, b: np.ndarray, group: np.ndarray | None = None) -> np.ndarray:
        """One sample per (rail, a -> b) direction, Gb/s; ``group`` numbers the half round each sample ran in
        (round 2 * i + 1 is round i's higher-to-lower half)."""
        s, rng, m, r = self.shape, self.rng, len(rail), self.regime
        cross = (a // s.unit) != (b // s.unit)
        rate = LINE_GBPS * PAIR_EFFICIENCY * np.exp(self._noise(m, cross))
        if r.harsh:
            # A pair runs at its slower end's own mean.
            rate *= np.minimum(self._persist[rail, a], self._persist[rail, b])
        tail = rng.random(m) < 1 / (r.outlier_per if r.harsh else TAIL_RATE)
        low, high = (r.outlier_low, r.outlier_high) if r.harsh else (TAIL_LOW, TAIL_HIGH)
        rate[tail] *= rng.uniform(low, high, int(tail.sum()))
        if r.congestion:
            # Congestion is another flow of the round on the same uplinks: a flow its leaf carries alone between
            # units (the quiet pass) has none to share them with. The draws are the same either way.
            shared = cross & (rng.random(m) < r.congestion)
            depth = rng.uniform(r.congestion_low, r.congestion_high, int(shared.sum()))
            company = _company(s, rail, a, b, cross, np.zeros(m, np.int64) if group is None else group)
            rate[shared] *= np.where(company[shared], depth, 1.0)
        factor = np.minimum(self._link[rail, a], self._link[rail, b])
        for k, node, slow, share in self._flaky:
            hit = (rail == k) & ((a == node) | (b == node)) & (rng.random(m) < share)
            factor[hit] = np.minimum(factor[hit], slow)
        paths = [f for f in self.faults if f.kind in ("uplink", "spine")]
        if paths and cross.any():
            idx = np.flatnonzero(cross)
            if r.ecmp_qps:
                # ECMP: each queue pair's path is its hash's, every round (fabric_load.ecmp_paths).
                up, down = fabric_load.ecmp_paths(s, self._salt, r.ecmp_qps, rail[idx], a[idx], b[idx])
                spine = (up // s.links_per_spine) % s.spines
            elif r.static_routing:
                # ftree/updn: the destination fixes the path, up from the source's leaf through uplink j (the
                # destination's port on its own leaf, modulo the uplinks on a tapered tree) and down into the
                # destination's leaf through its uplink j.
                up = np.repeat((b[idx] % s.unit % s.uplinks)[:, None], FLOWS, axis=1)
                down = up
                spine = (up // s.links_per_spine) % s.spines
            else:
                up = rng.integers(s.uplinks, size=(len(idx), FLOWS))
                spine = (up // s.links_per_spine) % s.spines
                down = spine * s.links_per_spine + rng.integers(s.links_per_spine, size=(len(idx), FLOWS))
            flow = np.ones(up.shape)
            ua, ub, k = (a[idx] // s.unit)[:, None], (b[idx] // s.unit)[:, None], rail[idx][:, None]
            for f in paths:
                if f.kind == "spine":
                    hit = spine == f.spine
                else:  # up from the leaf, or down into it through the same cable
                    here = k == f.rail
                    hit = here & (((ua == f.unit) & (up == f.uplink)) | ((ub == f.unit) & (down == f.uplink)))
                flow[hit] = np.minimum(flow[hit], f.factor)
            factor[idx] = np.minimum(factor[idx], flow.min(axis=1))
        if (r.loaded or r.hot_spots) and len(a):
            factor = factor * self._round_load(rail, a, b, np.zeros(m, np.int64) if group is None else group, factor)
        return rate * factor

    def _round_load(
        self, rail: np.ndarray, a: np.ndarray, b: np.ndarray, group: np.ndarray, factor: np.ndarray
    ) -> np.ndarray:
        """What each round's hot spots and its own flows leave each sample: the hot spot's depth times the
        max-min fair share of the uplinks over what the sample's own link and faults carry alone."""
        s, r = self.shape, self.regime
        hot = np.ones(len(a))
        if r.hot_spots:
            # Drawn per round: both halves of a round see its hot spots (a group is a round's half).
            depths = fabric_load.hot_spot_depths(s, r, self.rng, int(group.max()) // 2 + 1)
            hot = fabric_load.hot_spot_factor(s, depths, group // 2, rail, a, b)
        if not r.loaded:
            return hot
        # A hot spot is other traffic on the leaf's uplinks: it slows what the round's own flows were given.
        demand = LINE_GBPS * PAIR_EFFICIENCY * np.minimum(self._persist[rail, a], self._persist[rail, b]) * factor
        return hot * fabric_load.loaded_share(s, r, self._uplinks, group, rail, a, b, demand, self._salt)

    def measure_rounds(self, rounds: Sequence[Round]) -> PairColumns:
        """What the ranks send rank 0 for these rounds: each pair's two directions on each rail it runs."""
        rails = self.shape.rails
        parts: list[np.ndarray] = []
        for rnd in rounds:
            if rnd.cells is None:
                pairs = np.array(rnd.pairs, dtype=np.int64).reshape(-1, 2)
                k = np.repeat(np.arange(rails), len(pairs))
                a, b = np.tile(pairs[:, 0], rails), np.tile(pairs[:, 1], rails)
            else:
                chosen = np.array(sorted(rnd.cells), dtype=np.int64).reshape(-1, 3)
                k, a, b = chosen[:, 0], chosen[:, 1], chosen[:, 2]
            fixed = np.broadcast_to([rnd.repeat, rnd.index, rnd.confirm], (len(k), 3))
            ordinal = np.full((len(k), 1), len(parts) // 2)
            parts.append(np.column_stack([a, b, k, fixed, ordinal]))
            parts.append(np.column_stack([b, a, k, fixed, ordinal]))
        cols = np.concatenate(parts) if parts else np.zeros((0, 7), dtype=np.int64)
        node, peer, rail, repeat, index, confirm, ordinal = cols.T
        # A round runs every pair's lower-to-higher direction at once, then the other (the ranks' exchanges,
        # bench.rails.measurement.exchanges): each half loads the uplinks on its own.
        rate = self._rates(rail, node, peer, 2 * ordinal + (node > peer))
        messages = self.warmup + self.iters
        budget = cell_budget(self.pair_bytes, messages, LINE_GBPS)
        with np.errstate(divide="ignore"):
            time_us = np.where(rate > 0, self.pair_bytes * 8 / (rate * 1e9) * 1e6, np.inf)
        # A cell whose messages do not fit its budget stops there, with the rate of what moved (none: 0).
        stopped = time_us * 1e-6 * messages > budget
        time_us = np.where(np.isfinite(time_us), time_us, budget * 1e6)
        nbytes = np.full(len(node), self.pair_bytes, dtype=np.int64)
        moved = np.where(rate > 0, nbytes, 0)
        time_us = np.where(moved > 0, time_us, budget * 1e6)
        out = PairColumns(node, peer, rail, repeat, index, nbytes, time_us, stopped, confirm)
        if (rate <= 0).any():
            # Nothing moved: the rank reports the budget's time for no bytes, a rate of 0.
            out = PairColumns(node, peer, rail, repeat, index, moved, time_us, stopped | (rate <= 0), confirm)
        return out

    def rail_results(self, collectives: Sequence[str], rng: np.random.Generator | None = None) -> list[RailResult]:
        """Rail k's collectives in every rail group at once: as fast as the ring's slowest member, each call its
        own draw of the noise (from ``rng`` where given: a measurement taken again draws from its own stream, so
        the pair matrix's draws stay those of the run without it)."""
        from bench.measure.collectives import get_collective

        s, out = self.shape, []
        rng = rng or self.rng
        for k in range(s.rails):
            live = self._link[k] > 0
            level = self._link[k] * self._persist[k]
            slowest = float(level[live].min()) if live.any() else 0.0
            share = RAIL_EFFICIENCY * slowest
            if self.regime.harsh:
                # A ring runs at its slowest link's own level, or the collective's efficiency if that is lower.
                share = min(
                    RAIL_EFFICIENCY * float(self._link[k][live].min()) if live.any() else 0.0, PAIR_EFFICIENCY * slowest
                )
            for name in collectives:
                busbw = LINE_GBPS * share * math.exp(0.005 * rng.standard_normal())
                factor = get_collective(name).busbw_factor(int(live.sum()))
                time_us = self.rail_bytes * factor * 8 / (busbw * 1e9) * 1e6 if busbw > 0 else 0.0
                if self.regime.harsh and busbw > 0 and live.sum() > 1:
                    # The harsh regimes time the call as NCCL's cost model prices it: its per-step latency
                    # on top of the bytes (tests/support/models/nccl_tuning.py).
                    time_us = nccl_time_us(name, int(live.sum()), self.rail_bytes, busbw)
                out.append(
                    RailResult(
                        k,
                        name,
                        "concurrent",
                        int(live.sum()),
                        self.rail_bytes,
                        self.rail_bytes // 4,
                        self.iters,
                        time_us,
                        time_us,
                        time_us,
                        None,
                    )
                )
        return out

    def gathered(self, collectives: Sequence[str]) -> list[dict[str, Any]]:
        """The per-rank dictionaries rank 0 gathers (``bench.rails.rank.rails_phase``), pair times aside: the
        rail-group results, which device carried each rail alone, line rates, and the error windows."""
        s = self.shape
        results = self.rail_results(collectives)
        bad_cables = {(f.node, f.rail) for f in self.faults if f.kind == "cable"}
        # Every node's counters read alike (its rail-k HCA carried rail k alone); one copy serves every node.
        alone = [
            {f"{s.hca(j)}:1": (2 * self.rail_bytes if j == r else 0) for j in range(s.rails)} for r in range(s.rails)
        ]
        whole = {f"{s.hca(j)}:1": {"bytes": 10 * self.rail_bytes, "errors": {}} for j in range(s.rails)}
        rates = {f"{s.hca(j)}:1": LINE_GBPS for j in range(s.rails)}
        quiet = [NodeWindow("pair matrix", None, {})]
        out = []
        for a in range(s.nodes):
            host = s.node_name(a)
            errors = {
                f"{s.hca(r)}:1": {"errors": {"symbol_error": SYMBOL_ERRORS}, "errors_saturated": [], "errors_reset": []}
                for r in range(s.rails)
                if (a, r) in bad_cables
            }
            windows = [NodeWindow("pair matrix", None, errors)] if errors else quiet
            for k in range(s.rails):
                reads = k == 0  # local rank 0 reads its node's counters
                out.append(
                    {
                        "host": host,
                        "results": [r for r in results if r.rail == k] if a == 0 else [],
                        "times": [],
                        "windows": alone if reads else [None],
                        "whole": whole if reads else None,
                        "error_windows": windows if reads else [],
                        "ifname": None,
                        "nic": ExpectedNic(f"{s.hca(k)}:1", "ACTIVE"),  # GPU k's nearest port (rail_nics)
                        "rail": k,
                        "rates": rates if reads else None,
                    }
                )
        return out

    def rails_again(self, gathered: list[dict[str, Any]], collectives: Sequence[str], rng: np.random.Generator) -> None:
        """The rail groups of ``collectives`` measured again, every rail at once
        (``bench.rails.measurement.steps.rails_again``): each rail's new results join its reporting rank's, as
        rank 0's gathered reports gain them."""
        again = self.rail_results(collectives, rng)
        for report in gathered:
            if report["results"]:
                report["results"] = report["results"] + [r for r in again if r.rail == report["rail"]]

    def local_matrix(self, repeats: int = 1) -> np.ndarray:
        """``sent[repeat, node, i, j]``: every local pair of every node over NVLink, Gb/s."""
        s = self.shape
        shape = (repeats, s.nodes, s.rails, s.rails)
        sent = NVLINK_GBPS * NVLINK_EFFICIENCY * np.exp(NVLINK_SIGMA * self.rng.standard_normal(shape))
        for f in self.faults:
            if f.kind == "gpu" and f.node is not None and f.rail is not None:
                sent[:, f.node, f.rail, :] *= f.factor
                sent[:, f.node, :, f.rail] *= f.factor
        eye = np.eye(s.rails, dtype=bool)
        sent[:, :, eye] = np.nan
        return sent
