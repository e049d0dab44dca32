"""``soak --drain``: every node a soak's gates convict, drained in Slurm as ``accept --drain`` drains (docs/slurm.md,
``bench.slurm.drain``): the same reason key, the same policy (never a node someone else drained), and run.json's
``drain`` section saying what was done to each node and which findings drained none."""

from __future__ import annotations

from collections.abc import Iterable

from bench.frame.decide import Item
from bench.rundir.finding_words import not_drained_words
from bench.rundir.sections import Drain
from bench.slurm import drain

GPU_KINDS = frozenset({"gpu"})
"""A GPU the soak convicts (its clocks held down, its ECC risen) drains its node, as ``accept``'s GPU defects do."""


def faults(items: Iterable[Item]) -> tuple[list[drain.NodeFault], list[str]]:
    """The failing findings of the soak's gates that name a part of one node, and (second) those that drain no node
    (a rail, a switch, a world collective), each said with why. Warnings fail nothing and drain nothing."""
    found, not_drained = [], []
    for item in items:
        for finding in item.findings:
            if finding.severity != "fail":
                continue
            part = finding.part
            if part.node and (part.kind in drain.NODE_DEFECTS or part.kind in GPU_KINDS):
                found.append(drain.NodeFault(part.node, finding))
            else:
                not_drained.append(not_drained_words(finding))
    return found, list(dict.fromkeys(not_drained))


def drain_section(items: Iterable[Item]) -> Drain:
    """Drain every node the soak convicts; the ``drain`` section that says what was done."""
    return drain.drain_and_say(*faults(items))
