"""The drain policy (docs/slurm.md, "The drain policy"): which findings name a part of one node, the short
reason a drained node carries, and what railbench may do to a node's state.

* **What is drained.** A node is drained for a part of its own: a failed hardware check of the node (a rail
  port down or at the wrong rate, a missing HCA or GPU, a GPU far from its NIC, error counters rising, a
  damaged sysfs), and a rails or intra-node defect of kind ``link``, ``cable``, ``errors``, ``path`` or
  ``node``, or of one of its GPUs. A part above the nodes (a ``rail``, a ``pair``'s switch path, a
  ``leaf``, an ``uplink``, a ``spine``) drains no node: every node it touches is healthy, and draining them
  would take a working cluster out of service. Nor does a setting of the run (``NCCL_IB_HCA``,
  ``NCCL_SOCKET_IFNAME``), which is the job's, not the node's. Warnings and transients drain nothing.
* **The reason** opens with the key of the part it names (``bench.slurm.drain_key``: who drained it, the
  part's kind and name, the action's key), then says the part and what to do, in one ASCII line Slurm shows
  in ``sinfo -R``: ``railbench[link:1/-] rail 1 (rail1) link dead; check the port state and the cable of
  node02 rail1``. A node with several faults names the first and how many more.
* **Whose node it is.** railbench changes only what it did: it drains a node that is in service, renews
  the reason of a node it drained itself (the reason opens with its key, or with an older release's
  ``railbench:``), resumes only such a node (and only when a check of the node judged its part again: never
  one drained for a part measured across nodes, ``drained_for_measured``), and leaves a node someone else
  drained exactly as it is, saying so. Whose it is and what it was drained for are read from the key alone,
  never from the sentence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from bench.jsondoc import JSONObject
from bench.preflight.checks import CheckResult
from bench.profile.actions import Actions
from bench.rundir.finding_words import drain_words, not_drained_words
from bench.rundir.findings import Finding, check_finding, gpu_finding, rail_finding
from bench.rundir.railsdoc import GpuDefect, RailDefect
from bench.rundir.sections import Drain, DrainedNode
from bench.slurm import scheduler
from bench.slurm.drain_key import (
    LEGACY_PREFIX,
    DrainKey,
    key_of,
    legacy_drained_for,
    legacy_measured,
    legacy_owned,
    read_key,
)
from bench.slurm.scheduler import SchedulerError
from bench.textlines import printable

MAX_SENTENCE_CHARS = 200 - len(LEGACY_PREFIX) - 1
"""The sentence after the key: one line in ``sinfo -R`` and ``scontrol show node``, the room every release gave
it (older ones wrote ``railbench: `` and it in 200 characters), so the part, finding and action read as they
did. Slurm keeps longer ones; people do not read them."""
MAX_REASON_CHARS = 255
"""The whole reason, key and sentence: Slurm's accounting keeps 255 bytes of a node's reason (slurmdbd's
``event_table.reason`` is a ``tinytext``, ``accounting_storage_mysql.c``), so nothing railbench writes is cut
there. slurmctld itself stores a reason as sent, of any length (``node_mgr.c``, ``update_node``)."""

NODE_CHECKS: frozenset[str] = frozenset(
    {
        "ib-devices",
        "rail-count",
        "rail",
        "socket-rail",
        "gpu-count",
        "gpu-nic-affinity",
        "rail-errors",
        "link-flaps",
        "sysfs-tree",
        "rail-firmware",
        "pcie-link",
        "pcie-acs",
        "iommu",
        "gpu-peer-memory",
        "nic-pcie",
        "port-mtu",
        "gpu-xid",
        "gpu-ecc",
        "gpu-clocks",
        "nvlink",
        "fabric-manager",
    }
)
"""Checks that judge a part of the node (its hardware, firmware, kernel and BIOS settings): a failure drains it."""
RUN_SETTING_CHECKS: frozenset[str] = frozenset(
    {"nccl-ib-hca", "nccl-ib-retry", "nccl-socket-ifname", "nccl-log", "input"}
)
"""Checks that judge the run's settings or input rather than the node: a failure drains nothing. Every check
of the registry is in one of the two sets (a test holds it), so a new check says which it is."""

NODE_DEFECTS: frozenset[str] = frozenset({"link", "cable", "errors", "path", "node"})
"""Kinds of rails defects that are a part of one node (``bench.rails.diagnosis.defects``); every kind of intra-node
defect (a GPU, a GPU pair, every pair of a node) is one too."""

Outcome = Literal["drained", "renewed", "resumed", "kept", "left", "failed", "unknown"]
"""What railbench did to a node: ``drained`` (it was in service), ``renewed`` (railbench had drained it; the
reason now says tonight's finding), ``resumed`` (railbench had drained it and it passes now), ``kept``
(railbench had drained it for the same finding: nothing changed), ``left`` (someone else drained it or
it is down: nothing changed), ``failed`` (Slurm refused: the note says why), ``unknown`` (Slurm has no such
node)."""


@dataclass(frozen=True)
class NodeFault:
    """One broken part of one node: a view of the finding that names it, in the words a Slurm reason carries
    (``bench.rundir.finding_words.drain_words``)."""

    node: str
    found: Finding

    @property
    def part(self) -> str:
        """``rail 1 (rail1)``, ``socket-rail rail1``, ``GPU 3``; empty for the node as a whole."""
        return drain_words(self.found)[0]

    @property
    def finding(self) -> str:
        """``link dead``, ``operstate down, expected up``."""
        return drain_words(self.found)[1]

    @property
    def action(self) -> str:
        return drain_words(self.found)[2]

    @property
    def key(self) -> DrainKey:
        """What the reason says as data: ``railbench[link:1/-]``."""
        return key_of(self.found)

    @property
    def short(self) -> str:
        """``rail 1 (rail1) link dead; check the port state and the cable of node02 rail1``."""
        said = f"{self.part} {self.finding}" if self.part else self.finding
        return f"{said}; {self.action}" if self.action else said


@dataclass(frozen=True)
class NodeAction:
    """What railbench did (or found it must not do) to one node's state in Slurm."""

    node: str
    outcome: Outcome
    reason: str
    """The reason railbench gave or would have given (``railbench[...] ...``); empty for a resume."""
    note: str = ""
    """Who else drained it and why, Slurm's refusal, the reason it kept."""

    def __post_init__(self) -> None:
        # Each field may carry outside text (a host's name, another operator's reason, Slurm's refusal) and
        # goes to the terminal, the report and run.json as it is: made printable once, here.
        for name in ("node", "reason", "note"):
            object.__setattr__(self, name, printable(getattr(self, name)))

    def to_json(self) -> JSONObject:
        return {"node": self.node, "outcome": self.outcome, "reason": self.reason, "note": self.note}

    @property
    def line(self) -> str:
        """One line for the terminal and the report: the node, then :attr:`words`."""
        return f"{self.node} {self.words}"

    @property
    def words(self) -> str:
        """What happened to the node, without its name."""
        said = {
            "drained": f"drained ({self.reason})",
            "renewed": f"drained by railbench before; reason now: {self.reason}",
            "resumed": "resumed: railbench had drained it and it passes now",
            "kept": f"still drained by railbench ({self.reason})" + (f": {self.note}" if self.note else ""),
            "left": f"not drained by railbench: {self.note}",
            "failed": f"NOT drained: {self.note}",
            "unknown": f"NOT drained: {self.note}",
        }
        return said[self.outcome]


def owned(reason: str) -> bool:
    """A reason railbench set: one that opens with its key, or one an older release wrote."""
    return read_key(reason) is not None or legacy_owned(reason)


WHOLE_NODE = DrainKey("run")
"""The key of a node drained with no fault named: the node as a whole, which no check judges alone."""


def reason(faults: Sequence[NodeFault]) -> str:
    """The drain reason for one node's faults: the first's key (``bench.slurm.drain_key``), then its sentence and
    how many more (ASCII, one line). Past :data:`MAX_SENTENCE_CHARS` the finding is shortened, never the key, the
    part or the action: they are what railbench reads back and a technician needs from ``scontrol show node``
    (``sinfo -R`` prints only a reason's first 20 characters, its ``%20E``)."""
    more = f" (+{len(faults) - 1} more)" if len(faults) > 1 else ""
    if not faults:
        return f"{WHOLE_NODE.token} failed its checks{more}"
    first = faults[0]
    token = first.key.token
    room = min(MAX_SENTENCE_CHARS, MAX_REASON_CHARS - len(token) - 1) - len(more)
    plain = _ascii(first.short)
    if len(plain) > room:
        part, finding, action = _ascii(first.part), _ascii(first.finding), _ascii(first.action)
        head = f"{part} " if part else ""
        tail = f"; {action}" if action else ""
        left = room - len(head) - len(tail) - 3
        if left >= 12:
            plain = f"{head}{finding[:left].rstrip()}...{tail}"
        elif len(head) + len(tail) <= room:  # no room for a finding worth reading: the part and what to do
            plain = f"{head.rstrip()}{tail}"
        else:
            plain = plain[: room - 3].rstrip() + "..."
    return f"{token} {plain}{more}"


def _ascii(text: str) -> str:
    """One line of ASCII: Slurm's reason field and ``sinfo`` columns take nothing else."""
    return " ".join(printable(text.replace("→", "->")).encode("ascii", "replace").decode().split())


# -- findings -> faults -----------------------------------------------------------------------------------


def check_faults(node: str, results: Iterable[CheckResult], actions: Actions) -> tuple[list[NodeFault], list[str]]:
    """The node's failed checks that name a part of it, and (second) the failed checks that drain nothing,
    each said with why."""
    faults, not_drained = [], []
    for r in results:
        if r.status != "fail":
            continue
        # the check's own action (the GPUDirect path's names the PCI address), else [actions.checks]'s
        found = check_finding(node, r, actions.for_check(r.check, node, r.device))
        if r.check not in NODE_CHECKS:
            not_drained.append(not_drained_words(found))
            continue
        faults.append(NodeFault(node, found))
    return faults, not_drained


def defect_faults(
    defects: Iterable[RailDefect], gpu_defects: Iterable[GpuDefect] = ()
) -> tuple[list[NodeFault], list[str]]:
    """The rails and intra-node defects that name a part of one node, and (second) those that drain no node,
    each said with why (warnings and transients are neither: they fail nothing)."""
    faults, not_drained = [], []
    for d in defects:
        if d.severity != "fail" or d.conviction.symptom == "transient":
            continue
        found = rail_finding(d)
        if found.part.kind not in NODE_DEFECTS or not found.part.node:
            not_drained.append(not_drained_words(found))
            continue
        faults.append(NodeFault(found.part.node, found))
    for g in gpu_defects:
        if g.node:
            faults.append(NodeFault(g.node, gpu_finding(g)))
    return faults, not_drained


# -- acting on Slurm ----------------------------------------------------------------------------------------


def by_node(faults: Iterable[NodeFault]) -> dict[str, list[NodeFault]]:
    grouped: dict[str, list[NodeFault]] = {}
    for fault in faults:
        grouped.setdefault(fault.node, []).append(fault)
    return grouped


def drain_faulty(faults: Iterable[NodeFault]) -> list[NodeAction]:
    """Drain every node ``faults`` name (see the module docstring for whose nodes railbench touches); one
    action per node, in the order the faults name them. Slurm's refusals are outcomes, never raised; a name
    Slurm cannot take as one node's (a comma or brackets make a host list, a newline or ESC would land in the
    Reason every operator reads) is never sent to it."""
    grouped = by_node(faults)
    refused = {node: problem for node in grouped if (problem := scheduler.node_name_problem(node)) is not None}
    named = {node: its for node, its in grouped.items() if node not in refused}
    asked = iter(_drain_named(named) if named else [])  # one action per named node, in their order
    return [
        NodeAction(node, "failed", reason(its), f"not one Slurm node name ({refused[node]}): not drained")
        if node in refused
        else next(asked)
        for node, its in grouped.items()
    ]


def drain_and_say(faults: Iterable[NodeFault], not_drained: Sequence[str]) -> Drain:
    """``--drain`` of a job (accept, soak): every node of ``faults`` drained as :func:`drain_faulty` says, each
    action and each finding that drained no node (``not_drained``, said with why) printed on a ``# drain:`` line,
    and run.json's ``drain`` section that says the same."""
    actions = drain_faulty(faults)
    for action in actions:
        print(f"# drain: {action.line}", flush=True)
    for line in not_drained:
        print(f"# drain: {line}", flush=True)
    nodes = tuple(DrainedNode(node=a.node, outcome=a.outcome, reason=a.reason, note=a.note) for a in actions)
    return Drain(nodes=nodes, not_drained=tuple(not_drained))


def _drain_named(grouped: dict[str, list[NodeFault]]) -> list[NodeAction]:
    # A host that calls itself by its full name is the node slurm.conf names by the first label.
    names = list(dict.fromkeys([*grouped, *(node.split(".")[0] for node in grouped)]))
    try:
        states = scheduler.node_states(names)
    except SchedulerError as exc:
        return [NodeAction(node, "failed", reason(its), str(exc)) for node, its in grouped.items()]
    return [
        _drain_one(node, reason(its), states.get(node) or states.get(node.split(".")[0]))
        for node, its in grouped.items()
    ]


def _drain_one(node: str, why: str, state: scheduler.NodeState | None) -> NodeAction:
    if state is None:
        return NodeAction(node, "unknown", why, f"Slurm has no node named {node}")
    node = state.node
    if state.drained and not owned(state.reason):
        return NodeAction(node, "left", why, _whose(state))
    if state.drained and state.reason == why:
        return NodeAction(node, "kept", why, "the same finding as when it was drained")
    try:
        scheduler.drain(node, why)
    except SchedulerError as exc:
        return NodeAction(node, "failed", why, str(exc))
    return NodeAction(node, "renewed" if state.drained else "drained", why)


def drained_for(reason: str, checks: Iterable[str]) -> str | None:
    """The check among ``checks`` that judges the part a railbench drain reason names (its key's
    ``judged_by``; an older release's reason by its one reader, ``legacy_drained_for``); None for any other
    reason, or a part no check of ``checks`` judges."""
    key = read_key(reason)
    if key is None:
        return legacy_drained_for(reason, checks)
    return key.judged_by if key.judged_by in set(checks) else None


def drained_for_measured(reason: str) -> bool:
    """A railbench drain reason for a part it measured across nodes (a rails or intra-node defect: the key's
    ``measured``; an older release's reason by ``legacy_measured``): no health check resumes such a node."""
    key = read_key(reason)
    return key.measured if key is not None else legacy_measured(reason)


def resume_if_ours(node: str, unjudged: Callable[[str], str | None] = lambda _: None) -> NodeAction | None:
    """A node that passes: resumed when railbench drained it; said (``left``) when someone else did; None
    when it is in service (nothing to do). ``unjudged(reason)`` says why the drain's own finding was not judged
    this time (its check skipped): then the node stays drained (``kept``), since passing what was not checked
    is not passing what was found."""
    try:
        state = scheduler.node_states([node]).get(node)
    except SchedulerError as exc:
        return NodeAction(node, "failed", "", str(exc))
    if state is None:
        return NodeAction(node, "unknown", "", f"Slurm has no node named {node}")
    if not state.drained:
        return None
    if not owned(state.reason):
        return NodeAction(node, "left", "", _whose(state))
    why_kept = unjudged(state.reason)
    if why_kept:
        return NodeAction(node, "kept", state.reason, why_kept)
    try:
        scheduler.resume(node)
    except SchedulerError as exc:
        return NodeAction(node, "failed", "", str(exc))
    return NodeAction(node, "resumed", "", f"was: {state.reason}")


def _whose(state: scheduler.NodeState) -> str:
    by = f" by {state.user}" if state.user and state.user.lower() != "unknown" else ""
    if state.drained:
        return f"drained{by} for '{state.reason or 'no reason'}', left as it is"
    return f"{state.state}{by}: '{state.reason or 'no reason'}', left as it is"
