"""Check answers that a named defect already tells (docs/design.md, "One fault, one defect").

A dead or slow cable is seen twice in ``accept``: by the checks that read the link itself on its node (its port
state and speed, its error counters, its flaps in the kernel log) and by the rails test, which names the link
from the traffic. Both are the same part and the same action. So a failing or warning answer of one of those
checks on the NIC of a link the rails test named (the same node, the same device) is that defect's evidence,
not a defect of its own; and a ``same-answers`` failure is told too when the nodes would agree once those
answers are taken as the link's (recomputed from the answers, never read from the sentence).

Decided from structured fields alone (node, device, check name): ``accept`` marks the items it folds
(``bench.check.items``), the report folds the same answers into the link's row (``bench.report.summary``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.preflight.checks import CheckResult
from bench.preflight.cluster import NodeReport, disagreements
from bench.rundir.rails_records import RailDefect

LINK_CHECKS = frozenset({"rail", "socket-rail", "rail-errors", "link-flaps"})
"""The checks that read a rail's link itself on its node (IB port state and rate, a socket rail's operstate
and speed, its error counters, its flaps): what they find on a NIC is what the rails test sees on that link."""

ACROSS = ""
"""The node of a cross-node answer (``same-answers``)."""


@dataclass(frozen=True)
class Told:
    """A check's answer that ``defect`` already tells: shown as its evidence, never as a defect of its own."""

    node: str
    """The node that answered, or :data:`ACROSS` for a cross-node comparison."""
    result: CheckResult
    defect: RailDefect


def _owner(node: str, result: CheckResult, defects: Sequence[RailDefect]) -> RailDefect | None:
    """The failing defect on ``node``'s NIC that ``result`` (a link check's fail or warning there) is part of."""
    if result.check not in LINK_CHECKS or result.status not in ("fail", "warn") or not result.device:
        return None
    return next((d for d in defects if d.node == node and _same_nic(result.device, d)), None)


def _same_nic(device: str, defect: RailDefect) -> bool:
    """Whether a check's device is the NIC of the defect: a port (``mlx5_4:1``) is its HCA's (``mlx5_4``) where
    either side names only the HCA, as the rails test does where it read the device from the byte counters."""
    for named in (defect.device, defect.expected_device):
        if not named:
            continue
        if ":" in device and ":" in named:
            if device == named:
                return True
        elif device.split(":")[0] == named.split(":")[0]:
            return True
    return False


def told(
    defects: Sequence[RailDefect], nodes: Mapping[str, Sequence[CheckResult]], cross: Sequence[CheckResult] = ()
) -> list[Told]:
    """Every answer in ``nodes`` (node -> its results) and ``cross`` that a failing defect of ``defects`` tells."""
    failing = [d for d in defects if d.severity == "fail"]
    found = [
        Told(node, r, owner)
        for node, results in nodes.items()
        for r in results
        if (owner := _owner(node, r, failing)) is not None
    ]
    if not found or not cross:
        return found
    # The nodes' answers with the told ones as the link's: does each disagreement still stand without them?
    by_check = {(t.node, t.result): t.defect for t in found}
    before = disagreements([NodeReport(node, tuple(results), {}) for node, results in nodes.items()])
    if_fixed = [
        NodeReport(node, tuple(dataclasses.replace(r, status="pass") if (node, r) in by_check else r for r in rs), {})
        for node, rs in nodes.items()
    ]
    standing = {check for check, _ in disagreements(if_fixed)}
    # checks.json holds the comparison with the action it was given since: the same answer by its other fields
    given = {_key(r): r for r in cross}
    for check, said in before:
        if check in standing or _key(said) not in given:
            continue
        owner = next(d for (_, r), d in by_check.items() if r.check == check)
        found.append(Told(ACROSS, given[_key(said)], owner))
    return found


def _key(result: CheckResult) -> tuple[str, str, str, str | None]:
    return (result.check, result.status, result.reason, result.device)
