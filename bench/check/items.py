"""The preflight checks as items of the frame's one verdict (``bench.frame.decide``): a check that failed
fails, one that passed passes, one that warned is a ``warn`` (it passes, and its reason is kept in run.json
``items`` and junit.xml), and one that did not apply is a skip that never counts as a pass. ``check`` and
``accept`` both judge their checks this way.

An answer a rails defect already tells (``bench.preflight.told``: ``accept``'s link checks on the NIC of a link
the rails test named) still fails, as that defect's evidence: its item repeats the defect's, so its sentence is
not said again in the verdict and it is no JUnit testcase of its own (one fault, one defect)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

from bench.frame.decide import Item, State
from bench.preflight.checks import CheckResult
from bench.preflight.cluster import NodeReport
from bench.rundir.findings import Finding, check_finding

_STATE: dict[str, State] = {"pass": "pass", "warn": "warn", "fail": "fail", "skip": "skip"}


def check_items(
    reports: Sequence[NodeReport],
    cross: Sequence[CheckResult],
    cabling: Sequence[CheckResult] = (),
    told: Collection[tuple[str, CheckResult]] = (),
) -> list[Item]:
    """One item per check result on each node, per cross-node comparison, and per finding of the fabric's
    cabling (``--topology``); ``told`` (node, or ``""`` across nodes, and the answer) repeat a rails defect."""
    items = []
    for report in reports:
        for r in report.results:
            found = check_finding(report.node, r)
            items.append(_item(f"railbench.check.{report.node}", r, found, (report.node, r) in told))
    for r in cross:
        items.append(_item("railbench.check.cluster", r, check_finding("", r), ("", r) in told))
    for r in cabling:
        items.append(_item("railbench.check.fabric", r, check_finding("", r, fabric=True)))
    return items


def _item(group: str, r: CheckResult, found: Finding, repeats: bool = False) -> Item:
    """A check's item: a failure or warning carries its finding (``found``, of ``r``); a skip says why in its
    note. The finding's action is said where the command's items say it (``accept``: ``bench.accept.rank``),
    not here."""
    name = r.check if not r.device else f"{r.check} {r.device}"
    state = _STATE[r.status]
    if state in ("fail", "warn"):
        carried = (replace(found, action=""),)
        return Item(group, name, state, decides=not repeats, repeats=repeats, findings=carried)
    note = f"{found.part.where} {r.check}: {r.reason}" if state == "skip" else ""
    return Item(group, name, state, note, decides=not repeats, repeats=repeats)
