"""The conviction step: every part the judge named becomes its defect once, whole, with its devices' error
counters, its node-local causes and its action.

Localisation names a part from bandwidth alone (``bench.rundir.named_parts.NamedPart``, its kind and address decided
where it is found). Here, on rank 0 after it, each part gets, in one pass:

* the error-counter deltas of the devices it names (a link: its node's device on its rail; a rail: that rail's
  device on every node; a node: its device on every rail; a pair: both nodes' devices), summed over every
  window of the test (``bench.rails.measurement.windows``); a saturated or cleared counter stays so, never a count.
  Every window, not only those in which the rail's traffic ran: a device's counters are its own whatever
  moved when they rose, and an event that straddles a window edge (a flap going down while every rail runs
  and up while another rail runs alone) must count whole: down and up are two carrier changes, and the
  operator's sentence and action say two;
* a rail's only pair (two live nodes on it), which bandwidth cannot tell the end of, is the link of the one
  end whose physical counters rose, where only one end's did;
* the faults of its node's own GPUDirect path that explain it (``bench.rails.diagnosis.causes``);
* its action, decided once from its symptom, its counters and its causes: the first cause's action where a
  cause says one (the reseat of GPU k, not the cable), else the profile's ``[actions]`` for its kind and
  symptom: a slow link whose physical counters (the profile's ``[errors] fail_on_rise``) rose is a cable, one
  whose counters stayed quiet is the HCA or the switch port.

A link whose physical counters rose while its bandwidth held is named too, as kind ``errors``: a warning,
unless ``[errors] fail_on_errors = true``. Each part the intra-node matrix named
(``bench.rundir.rails_records.NamedGpu``) becomes its ``GpuDefect`` in the same pass, once, with its causes and
its action. Pure functions over the outcome's records.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Iterable, Mapping, Sequence

from bench.codec import ABSENT
from bench.profile.actions import Actions, device_words
from bench.profile.errors import ErrorLimits
from bench.rails.diagnosis import causes as tied_causes
from bench.rails.diagnosis.defects import Severity
from bench.rails.diagnosis.gpu_outcome import IntraNodeOutcome
from bench.rails.diagnosis.rails_outcome import RailDevices, RailsOutcome, pair_samples, short_device
from bench.rundir.checksjson import CheckResult
from bench.rundir.defect_kinds import GPU_DEFECT_KINDS, action_key, covered_cells
from bench.rundir.named_parts import NamedPart
from bench.rundir.rails_records import (
    Conviction,
    DefectCause,
    DefectErrors,
    ErrorWindow,
    GpuDefect,
    Localisation,
    NamedGpu,
    RailDefect,
)

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


def parts_of(defect: NamedPart, nodes: Sequence[str], rails: int, where: Mapping[tuple[str, int], str]) -> list[Part]:
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


def _named_cells(defects: Iterable[NamedPart], nodes: Sequence[str], rails: int) -> set[tuple[str, int]]:
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


def corroborate(
    outcome: RailsOutcome, limits: ErrorLimits, actions: Actions, reports: tied_causes.Reports | None = None
) -> RailsOutcome:
    """The conviction step: each part the judge named (``outcome.named``) made a defect once, whole, with its
    error counters, its node-local causes (``reports``: each node's GPUDirect checks,
    ``bench.rails.diagnosis.causes``) and its action; the links whose physical counters rose while their
    bandwidth held named ``errors``; each part the intra-node matrix named made its defect once, with its causes
    and action; and every failure and warning of the nodes' checks in ``node_causes``."""
    reports = reports or {}
    where = device_of(outcome.devices)
    read = {
        (node, device) for node, devices in outcome.counters.items() for device, e in devices.items() if "errors" in e
    }
    windows = outcome.written.error_windows
    read |= {(node, device) for w in windows for node, devices in w.errors.items() for device in devices}
    carried: set[tuple[str, str, str, str | None]] = set()
    named = []
    for part in outcome.named:
        found = evidence(parts_of(part, outcome.nodes, outcome.rails, where), windows, read)
        part, found = _told_end(part, found, limits)
        causes = () if part.conviction.symptom == "errors" else _tied(tied_causes.rail_causes(part, reports, outcome))
        carried |= {_carried(c) for c in causes}
        action = _action(part, found, causes, limits, actions, where)
        named.append(convicted(part, action=action, errors=found, causes=causes))
    taken = _named_cells(outcome.named, outcome.nodes, outcome.rails)  # every part named fails
    for (node, rail), device in sorted(where.items(), key=lambda item: (item[0][1], item[0][0])):
        if (node, rail) in taken:
            continue
        found = evidence([(node, device, rail)], windows, read)
        if not _physical(found, limits):
            continue
        severity: Severity = "fail" if limits.fail_on_errors else "warn"
        held = NamedPart(
            kind="errors", node=node, rail=rail, device=short_device(device), conviction=_held(outcome, node, rail)
        )
        action = _action(held, found, (), limits, actions, where)
        named.append(convicted(held, action=action, errors=found, severity=severity))
    intra = outcome.intra_node
    if intra is not None:
        intra, gpu_carried = _intra_convicted(intra, actions, reports)
        carried |= gpu_carried
    every = tied_causes.node_causes(reports, carried)
    return dataclasses.replace(outcome, defects=tuple(named), intra_node=intra, node_causes=every)


def _tied(found: Sequence[tuple[str, CheckResult]]) -> tuple[DefectCause, ...]:
    return tuple(DefectCause(result=r, node=node) for node, r in found)


def _carried(cause: DefectCause) -> tuple[str, str, str, str | None]:
    """What ties a cause a defect carries to its entry in ``node_causes``."""
    r = cause.result
    return (cause.node or "", r.check, r.reason, r.device)


def _action(
    part: NamedPart,
    errors: tuple[DefectErrors, ...] | None,
    causes: Sequence[DefectCause],
    limits: ErrorLimits,
    actions: Actions,
    where: Mapping[tuple[str, int], str],
) -> str:
    """The one action of a part's defect, from its symptom, its counters and its causes: the first cause's that
    says one (the reseat of GPU k, not the cable), else the profile's for its kind and symptom and whether its
    physical counters rose."""
    profile = _profile_action(part, _physical(errors, limits), actions, where)
    return next((c.result.action for c in causes if c.result.action), None) or profile


def _intra_convicted(
    intra: IntraNodeOutcome, actions: Actions, reports: tied_causes.Reports
) -> tuple[IntraNodeOutcome, set[tuple[str, str, str, str | None]]]:
    """The intra-node outcome with rails.json's ``Localisation``: each part the matrix named made its defect once
    (:func:`convicted_gpu`), beside the matrix's level, ``too_noisy`` and transients; and what ties the causes the
    defects carry to ``node_causes``."""
    named = intra.named
    carried: set[tuple[str, str, str, str | None]] = set()
    defects = []
    for part in named.parts:
        causes = _tied(tied_causes.gpu_causes(part, reports))
        carried |= {_carried(c) for c in causes}
        defects.append(convicted_gpu(part, action=_gpu_action(part, causes, actions), causes=causes))
    loc = Localisation(tuple(defects), named.level_Gbps, named.too_noisy, named.transients)
    return dataclasses.replace(intra, localisation=loc), carried


def _gpu_action(part: NamedGpu, causes: Sequence[DefectCause], actions: Actions) -> str:
    """The one action of an intra-node defect: its first cause's that says one, else the profile's for its kind."""
    profile = actions.action(GPU_DEFECT_KINDS[part.kind].action, node=part.node, gpu=part.gpu, peer=part.peer)
    return next((c.result.action for c in causes if c.result.action), None) or profile


def convicted_gpu(part: NamedGpu, *, action: str, causes: tuple[DefectCause, ...] = ()) -> GpuDefect:
    """The intra-node defect of ``part``, built once, whole: its causes and its action."""
    return GpuDefect(named=part, action=action, causes=causes)


def convicted(
    part: NamedPart,
    *,
    action: str,
    errors: tuple[DefectErrors, ...] | None = None,
    causes: tuple[DefectCause, ...] = (),
    severity: Severity = "fail",
) -> RailDefect:
    """The defect of ``part``, built once, whole: the part held as the judge named it, with its counters (None: not
    read), its causes and its action. rails.json's key order, the part's place between the defect's severity and
    its line, is the record's to keep (``bench.rundir.rails_records.RailDefect.to_json``)."""
    return RailDefect(named=part, errors=errors, action=action, severity=severity, causes=causes)


def _told_end(
    part: NamedPart, found: tuple[DefectErrors, ...] | None, limits: ErrorLimits
) -> tuple[NamedPart, tuple[DefectErrors, ...] | None]:
    """A rail's only pair (``RailDefect.only_pair``: its bandwidth cannot tell its end) whose physical counters
    rose at one end alone is that end's link, with that end's counters: the port that went down and up, or took
    symbol errors, is the one the pair's traffic suffered from. Otherwise the pair, as named, and its counters."""
    if part.kind != "pair" or not part.only_pair:
        return part, found
    loud = [e for e in found or () if _physical((e,), limits)]
    if len({e.node for e in loud}) != 1:
        return part, found
    end = loud[0]
    link = dataclasses.replace(
        part, kind="link", node=end.node, peer=None, device=short_device(end.device), only_pair=ABSENT
    )
    return link, (end,)


def _profile_action(part: NamedPart, physical: bool, actions: Actions, where: Mapping[tuple[str, int], str]) -> str:
    """The profile's ``[actions]`` sentence for ``part``'s kind and symptom and whether its physical counters
    rose, said with its devices, switches and ports."""
    device = where.get((part.node, part.rail)) if part.node is not None and part.rail is not None else None
    words = device_words(device or part.device)
    if part.kind == "path" and part.carried:
        words = {
            **device_words(part.carried[0]),
            "device": " and ".join(device_words(c)["device"] for c in part.carried),
        }
    expected = device_words(part.expected_device)["device"] if part.expected_device else None
    if part.kind == "link" and part.expected_device:
        words = device_words(part.expected_device)  # a dead port is named by its own port
    if part.kind == "node" and not (device or part.device):
        # A node names no one device: every rail's ("check the port state and the cable of node02 on every rail").
        words = {**words, "device": "on every rail", "hca": "every rail's HCA"}
    switch = " and ".join(part.switches) if len(part.switches) <= 2 else ", ".join(part.switches)
    return actions.action(
        action_key(part.kind, part.conviction.symptom, physical),
        node=part.node,
        peer=part.peer,
        rail=part.rail,
        expected=expected,
        switch=switch or None,
        switch_port=part.ports[0] if part.kind == "cable" and part.ports else None,
        uplinks="; ".join(part.ports) or None,
        unit=part.unit,
        **words,
    )
