"""Rank 0's view of each round's load: where every sample ran and what the fabric could carry there.

The ranks run the schedule every rank computes from the settings (``bench.rails.plan.schedule.schedule``, the
same seed), and rank 0 re-measures each suspect in the round its first slow sample ran in, beside that round's
other suspects only (``schedule.confirmation_rounds``). So rank 0 knows, without any rank telling it, which
pairs ran together in every matrix round and in every re-measurement, and with the cabling
(``bench.rails.plan.capacity``) what each could get: ``matrix_expected`` before the suspects are picked,
``with_again`` once the re-measurements are in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np

from bench.rails.diagnosis.expected import Cellwise, Expected
from bench.rails.diagnosis.last_answer import LastAnswer, fingerprint
from bench.rails.plan import capacity
from bench.rails.plan.fabric_map import FabricMap
from bench.rails.plan.schedule import Units, schedule

_last = LastAnswer[Expected]()
"""The last matrix's expectations: rank 0 needs them twice, to pick the suspects and to judge, and at 1024 nodes one
computation is seconds of filling millions of flows (``last_answer``)."""


def matrix_expected(fabric: FabricMap, nodes: int, repeats: int, seed: int, units: Units | None = None) -> Expected:
    """The rounds and expected fractions of ``repeats`` repeats of the matrix over ``nodes`` nodes, in the run's
    node order (``fabric`` placed on the run's own nodes and rails, ``fabric_map.place``), scheduled by ``units``
    as the ranks were (``bench.rails.plan.config.matrix_units``). A pair the schedule left out has no round (-1)
    and its fraction stays 1: it is not scheduled, never judged. Read-only arrays: the same ones serve the next
    call on the same plane, schedule and seed."""
    plane = fabric.plane()
    arrays = (plane.leaf, plane.capacity, plane.rank, plane.count)
    key = (*map(fingerprint, arrays), nodes, repeats, seed, units, fabric.rails)

    def compute() -> Expected:
        load = capacity.matrix_load(plane, schedule(nodes, repeats, seed, units, fabric.rails), repeats)
        fraction = load.fraction if load.loaded else {}
        for array in (load.round_of, *fraction.values()):
            array.setflags(write=False)
        return Expected(load.round_of, fraction, {}, capacity.taper(plane))

    return _last.answer(key, compute)


def with_again(expected: Expected, fabric: FabricMap, slow_sample: np.ndarray, passes: int) -> Expected:
    """``expected`` with the fractions of ``passes`` re-measurements: each suspect (a cell with a slow sample in
    ``slow_sample[repeat, rail, a, b]``, as rank 0 picked it) ran again in the round of its first slow sample,
    beside that round's other suspects on every rail."""
    if not expected.matrix:
        return expected
    rails, n = fabric.leaf.shape
    plane = fabric.plane()
    k, a, b = np.nonzero(np.triu(slow_sample.any(axis=0), k=1))
    first = np.argmax(slow_sample[:, k, a, b], axis=0) if len(k) else np.zeros(0, dtype=np.int64)
    group = first.astype(np.int64) * (n + 1) + expected.round_of[first, a, b]

    def again(routing: str) -> Cellwise:
        if not (passes and len(k)):
            none = np.zeros(0, dtype=np.int64)
            return Cellwise((passes, rails, n, n), none, none, none, np.ones(0))
        return Cellwise((passes, rails, n, n), k, a, b, plane.shares(k, a, b, group, routing == "destination"))

    return Expected(expected.round_of, expected.matrix, _Lazy(tuple(expected.matrix), again), expected.taper)


class _Lazy(Mapping[str, Cellwise]):
    """Each routing's re-measurement fractions, computed when first read: the judge reads only the routing the
    run showed (``Expected.routed``), each a filling of the suspects' rounds."""

    def __init__(self, routings: tuple[str, ...], compute: Callable[[str], Cellwise]) -> None:
        self._routings, self._compute = routings, compute
        self._done: dict[str, Cellwise] = {}

    def __getitem__(self, routing: str) -> Cellwise:
        if routing not in self._routings:
            raise KeyError(routing)
        if routing not in self._done:
            self._done[routing] = self._compute(routing)
        return self._done[routing]

    def __contains__(self, routing: object) -> bool:
        return routing in self._routings

    def __iter__(self) -> Iterator[str]:
        return iter(self._routings)

    def __len__(self) -> int:
        return len(self._routings)
