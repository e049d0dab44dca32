"""The fabric testifies too: every named defect gets its devices' error counters and an action.

Localisation names a part from bandwidth alone. Here, on rank 0 after it, each defect gets:

* the error-counter deltas of the devices it names (a link: its node's device on its rail; a rail: that rail's
  device on every node; a node: its device on every rail; a pair: both nodes' devices), summed over every
  window of the test (``bench.rails.windows``); a saturated or cleared counter stays so, never a count.
  Every window, not only those in which the rail's traffic ran: a device's counters are its own whatever
  moved when they rose, and an event that straddles a window edge (a flap going down while every rail runs
  and up while another rail runs alone) must count whole: down and up are two carrier changes, and the
  operator's sentence and action say two;
* its action from the profile's ``[actions]``: a slow link whose physical counters (the profile's ``[errors]
  fail_on_rise``) rose is a cable, one whose counters stayed quiet is the HCA or the switch port;
* a rail's only pair (two live nodes on it), which bandwidth cannot tell the end of, is the link of the one
  end whose physical counters rose, where only one end's did.

A link whose physical counters rose while its bandwidth held is named too, as kind ``errors``: a warning,
unless ``[errors] fail_on_errors = true``. Pure functions over the outcome's records.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Iterable, Mapping, Sequence

from bench.actions import Actions, device_words
from bench.codec import ABSENT
from bench.error_limits import ErrorLimits
from bench.rails.defects import Severity
from bench.rails.records import RailDevices, RailsOutcome, pair_samples, short_device
from bench.rundir.defect_kinds import GPU_DEFECT_KINDS, action_key, covered_cells
from bench.rundir.rails_records import Conviction, DefectErrors, ErrorWindow, GpuDefect, RailDefect

Part = tuple[str, str, int]
"""(node, device, rail) of one device a defect names."""


def device_of(devices: Sequence[RailDevices]) -> dict[tuple[str, int], str]:
    """(node, rail) -> the full device name (``mlx5_4:1``, ``eth1``): the one that carried the rail, else the
    interface the rail should use."""
    out: dict[tuple[str, int], str] = {}
    for rd in devices:
        for node in {*rd.device, *rd.expected}:
            name = rd.device.get(node) or rd.expected.get(node)
            if name:
                out[(node, rd.rail)] = name
    return out


def parts_of(defect: RailDefect, nodes: Sequence[str], rails: int, where: Mapping[tuple[str, int], str]) -> list[Part]:
    """The devices ``defect`` names, each with its node and rail (a switch part's none: no node's counters see
    its ports)."""
    out = []
    for node, rail in covered_cells(defect.kind, defect.node, defect.peer, defect.rail, nodes, rails):
        if node is None or rail is None:
            continue
        name = where.get((node, rail)) or (defect.device if defect.kind in ("link", "cable", "errors") else None)
        if name:
            out.append((node, name, rail))
    return out


def evidence(
    parts: Iterable[Part], windows: Sequence[ErrorWindow], read: set[tuple[str, str]]
) -> tuple[DefectErrors, ...] | None:
    """Each part's error counters summed over every window of the test; None when none of them was read."""
    out = []
    for node, device, _rail in parts:
        if (node, device) not in read:
            continue
        risen: dict[str, int] = {}
        saturated: dict[str, None] = {}
        reset: dict[str, None] = {}
        for window in windows:
            entry = window.errors.get(node, {}).get(device)
            if entry is None:
                continue
            for name, count in (entry.errors or {}).items():
                if count:
                    risen[name] = risen.get(name, 0) + count
            saturated.update(dict.fromkeys(entry.errors_saturated or ()))
            reset.update(dict.fromkeys(entry.errors_reset or ()))
        out.append(
            DefectErrors(
                node=node, device=device, errors=risen, errors_saturated=tuple(saturated), errors_reset=tuple(reset)
            )
        )
    return tuple(out) if out else None


def _physical(found: tuple[DefectErrors, ...] | None, limits: ErrorLimits) -> bool:
    """Whether a counter of the profile's ``fail_on_rise`` (symbol errors, link downs...) rose on any device."""
    return any(name in limits.fail_on_rise for e in found or () for name in e.errors)


def _named_cells(defects: Iterable[RailDefect], nodes: Sequence[str], rails: int) -> set[tuple[str, int]]:
    return {
        (node, rail)
        for d in defects
        for node, rail in covered_cells(d.kind, d.node, d.peer, d.rail, nodes, rails)
        if node is not None and rail is not None
    }


def _held(outcome: RailsOutcome, node: str, rail: int) -> Conviction:
    """What convicts an errors defect of ``node`` on ``rail``: its counters, while its pairs' bandwidth held (the
    median, spread, pairs and samples of its pairs on the rail, none of them counted slow; all 0 without one)."""
    samples = [s for s in pair_samples(outcome.pair_times, outcome.nodes) if s.rail == rail and not s.confirm]
    mine = [s for s in samples if node in (s.node_a, s.node_b)]
    values = [s.busbw_Gbps for s in mine]
    line = outcome.expected.get(rail)
    median = statistics.median(values) if values else 0.0
    return Conviction(
        measured_Gbps=median,
        expected_Gbps=line or (statistics.median(s.busbw_Gbps for s in samples) if values else 0.0),
        basis="line rate" if line else "peers",
        symptom="errors",
        slow_pairs=0,
        pairs=len({(s.node_a, s.node_b) for s in mine}),
        slow_samples=0,
        samples=len(values),
        spread=(max(values) - min(values)) / median if median > 0 else 0.0,
    )


def corroborate(outcome: RailsOutcome, limits: ErrorLimits, actions: Actions) -> RailsOutcome:
    """``outcome`` with every defect's error counters and action, and the links named ``errors``."""
    where = device_of(outcome.devices)
    read = {
        (node, device) for node, devices in outcome.counters.items() for device, e in devices.items() if "errors" in e
    }
    windows = outcome.written.error_windows
    read |= {(node, device) for w in windows for node, devices in w.errors.items() for device in devices}
    named = []
    for defect in outcome.defects:
        found = evidence(parts_of(defect, outcome.nodes, outcome.rails, where), windows, read)
        defect = _told_end(dataclasses.replace(defect, errors=found), limits)
        named.append(_with_action(defect, _physical(defect.errors, limits), actions, where))
    taken = _named_cells((d for d in outcome.defects if d.severity == "fail"), outcome.nodes, outcome.rails)
    for (node, rail), device in sorted(where.items(), key=lambda item: (item[0][1], item[0][0])):
        if (node, rail) in taken:
            continue
        found = evidence([(node, device, rail)], windows, read)
        if not _physical(found, limits):
            continue
        severity: Severity = "fail" if limits.fail_on_errors else "warn"
        defect = RailDefect(
            kind="errors",
            node=node,
            rail=rail,
            device=short_device(device),
            conviction=_held(outcome, node, rail),
            errors=found,
            severity=severity,
        )
        named.append(_with_action(defect, True, actions, where))
    intra = outcome.intra_node
    if intra is not None and intra.defects:
        loc = dataclasses.replace(intra.localisation, defects=tuple(_gpu_action(d, actions) for d in intra.defects))
        intra = dataclasses.replace(intra, localisation=loc)
    return dataclasses.replace(outcome, defects=tuple(named), intra_node=intra)


def _told_end(defect: RailDefect, limits: ErrorLimits) -> RailDefect:
    """A rail's only pair (``RailDefect.only_pair``: its bandwidth cannot tell its end) whose physical counters
    rose at one end alone is that end's link: the port that went down and up, or took symbol errors, is the one
    the pair's traffic suffered from. Otherwise the pair, as named."""
    if defect.kind != "pair" or not defect.only_pair:
        return defect
    loud = [e for e in defect.errors or () if _physical((e,), limits)]
    if len({e.node for e in loud}) != 1:
        return defect
    end = loud[0]
    return dataclasses.replace(
        defect, kind="link", node=end.node, peer=None, device=short_device(end.device), errors=(end,), only_pair=ABSENT
    )


def _with_action(
    defect: RailDefect, physical: bool, actions: Actions, where: Mapping[tuple[str, int], str]
) -> RailDefect:
    device = where.get((defect.node, defect.rail)) if defect.node is not None and defect.rail is not None else None
    words = device_words(device or defect.device)
    if defect.kind == "path" and defect.carried:
        words = {
            **device_words(defect.carried[0]),
            "device": " and ".join(device_words(c)["device"] for c in defect.carried),
        }
    expected = device_words(defect.expected_device)["device"] if defect.expected_device else None
    if defect.kind == "link" and defect.expected_device:
        words = device_words(defect.expected_device)  # a dead port is named by its own port
    if defect.kind == "node" and not (device or defect.device):
        # A node names no one device: every rail's ("check the port state and the cable of node02 on every rail").
        words = {**words, "device": "on every rail", "hca": "every rail's HCA"}
    switch = " and ".join(defect.switches) if len(defect.switches) <= 2 else ", ".join(defect.switches)
    sentence = actions.action(
        action_key(defect.kind, defect.conviction.symptom, physical),
        node=defect.node,
        peer=defect.peer,
        rail=defect.rail,
        expected=expected,
        switch=switch or None,
        switch_port=defect.ports[0] if defect.kind == "cable" and defect.ports else None,
        uplinks="; ".join(defect.ports) or None,
        unit=defect.unit,
        **words,
    )
    return dataclasses.replace(defect, action=sentence)


def _gpu_action(defect: GpuDefect, actions: Actions) -> GpuDefect:
    key = GPU_DEFECT_KINDS[defect.kind].action
    return dataclasses.replace(defect, action=actions.action(key, node=defect.node, gpu=defect.gpu, peer=defect.peer))
