"""How the rails test is judged, item by item, for the frame's one verdict (``bench.frame.decide``).

* a rail fails on a defect, a rail-group result under its line rate's target, or counter evidence naming it;
  it passes when it was judged: its line rate is known, or the pair matrix was compared across rails and
  nodes (the relative test), which is not possible when the fabric's own spread is too wide
  (``too_noisy``); otherwise it is only measured, and the item says why;
* the intra-node matrix is judged per node the same way (a target on GPUs, else the relative test);
* a single node has no rail groups: the rails item is a skip that says so.

Pure functions of rank 0's :class:`~bench.rails.diagnosis.rails_outcome.RailsOutcome`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bench.frame.decide import Item, State
from bench.rails.diagnosis.gpu_outcome import IntraNodeOutcome
from bench.rails.diagnosis.rails_outcome import RailsOutcome
from bench.rundir.findings import Finding, check_finding, rail_finding

GROUP = "railbench.rails"
INTRA_GROUP = "railbench.intra_node"
NODE_GROUP = "railbench.nodes"
GPUDIRECT_GROUP = "railbench.gpudirect"


def rail_items(outcome: RailsOutcome) -> list[Item]:
    """One item per rail (or one skip for a single node), counter findings that name no rail, and the
    intra-node matrix's items."""
    items = _rails(outcome)
    if outcome.intra_node is not None:
        items += intra_node_items(outcome.intra_node)
    return items


def _rails(outcome: RailsOutcome) -> list[Item]:
    if outcome.written.skipped:
        return [Item(GROUP, "rails", "skip", f"rails not tested: {outcome.written.skipped}")]
    relative = bool(outcome.pair_times) and outcome.written.too_noisy is None
    items = []
    claimed: list[Finding] = []
    for rail in range(outcome.rails):
        found = outcome.rail_reasons(rail)
        claimed += found
        lines = [f"{r.collective} ({r.mode}): {r.busbw_Gbps:.4g} Gb/s" for r in outcome.rail_results if r.rail == rail]
        lines += [f"{node}: {dev}" for rd in outcome.devices if rd.rail == rail for node, dev in rd.device.items()]
        warned = tuple(rail_finding(d) for d in outcome.warnings if d.rail == rail)
        details = "\n".join(lines)
        if found:
            items.append(Item(GROUP, f"rail{rail}", "fail", details=details, findings=tuple(found)))
        elif outcome.expected.get(rail) or relative:
            # a warned link passes its rail, and the warning stays with the rail's item (run.json, junit.xml)
            state: State = "warn" if warned else "pass"
            items.append(Item(GROUP, f"rail{rail}", state, details=details, findings=warned))
        else:
            items.append(Item(GROUP, f"rail{rail}", "measured", _rail_not_judged(outcome), details))
    loose = [f for f in [*outcome.counter_findings, *map(rail_finding, outcome.failing)] if f not in claimed]
    if loose:
        # one finding once, however many of the lists above hold it
        once = tuple(f for i, f in enumerate(loose) if f not in loose[:i])
        items.append(Item(GROUP, "defects", "fail", findings=once))
    return items


def local_cause_items(outcome: RailsOutcome) -> list[Item]:
    """``rails``: one item per node whose GPUDirect path checks failed on something no defect carries
    (``bench.rails.measurement.local_causes``): the fault is real whether or not this run's traffic felt it. ``accept``
    judges the same results in its check phase and does not add these."""
    loose: dict[str, list[Finding]] = {}
    for c in outcome.node_causes:
        if c.result.status == "fail" and not c.explains and c.node is not None:
            loose.setdefault(c.node, []).append(check_finding(c.node, c.result))
    return [Item(GPUDIRECT_GROUP, node, "fail", findings=tuple(found)) for node, found in loose.items()]


def _rail_not_judged(outcome: RailsOutcome) -> str:
    why = outcome.written.too_noisy or "the pair matrix did not run (--no-pairs)"
    return (
        f"no line rate is known for the rails and the relative test could not judge ({why}): "
        "give --rail-rate-gbps or the profile's rail_rate_gbps"
    )


def intra_node_items(intra: IntraNodeOutcome) -> list[Item]:
    """One item per node of the intra-node GPU x GPU matrix."""
    if intra.skipped:
        return [Item(INTRA_GROUP, "intra-node", "skip", f"intra-node matrix not run: {intra.skipped}")]
    judged = intra.target_Gbps is not None or intra.localisation.too_noisy is None
    items = []
    for node in intra.nodes:
        found = tuple(intra.node_reasons(node))
        if found:
            items.append(Item(INTRA_GROUP, node, "fail", findings=found))
        elif judged:
            items.append(Item(INTRA_GROUP, node, "pass"))
        else:
            why = intra.localisation.too_noisy
            items.append(
                Item(INTRA_GROUP, node, "measured", f"intra-node pairs measured, not judged: {why} (no target on CPU)")
            )
    return items


def node_items(
    nodes: Sequence[str], outcome: RailsOutcome, other: Mapping[str, Sequence[Finding]] | None = None
) -> list[Item]:
    """One item per node gathering what names it (its failed checks in ``other``, rails defects, counter
    findings): a view for the operator and JUnit that repeats other items, so it never decides alone."""
    items = []
    for node in nodes:
        failed = (*(other or {}).get(node, ()), *outcome.node_reasons(node))
        warned = tuple(rail_finding(d) for d in outcome.warnings if d.node == node)
        state: State = "fail" if failed else "warn" if warned else "pass"
        found = failed or warned
        items.append(Item(NODE_GROUP, node, state, decides=False, repeats=True, findings=found, of_node=node))
    return items
