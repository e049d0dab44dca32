"""Slurm's own commands, as railbench calls them: ``sinfo`` to read nodes' states and reasons, ``scontrol`` to
drain and resume a node. Each call is bounded in time and its output in size, and a refusal (no such node,
permission denied, no controller) comes back as a :class:`SchedulerError` with Slurm's own line, never a
traceback.

The commands are found on ``PATH``, else in the system's default path: a health check runs with the
environment slurmd gives it, in which PATH may be unset.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from bench import toolrun
from bench.exits import UserError
from bench.runtime import env as benv
from bench.textlines import printable

CALL_TIMEOUT_S = 10.0
"""Longest a single sinfo or scontrol may take: a controller that does not answer in this is down. A health
check makes two calls after its checks, so its 30 s default time limit and these stay under the 60 s after
which slurmd kills it."""
MAX_OUTPUT_BYTES = 8_000_000
"""sinfo of 100,000 nodes is about 5 MB; a partition railbench reads is far smaller. More is not sinfo's
answer to what railbench asked, and is not kept."""
USABLE = ("idle", "mixed", "allocated", "completing", "planned", "mix", "alloc", "comp", "plnd")
"""Node states (sinfo's ``%T``, and ``%t``'s short forms) in which Slurm gives a node jobs: free, partly or
wholly busy (its jobs end), finishing, or held for a pending job; a power-saving ``~`` or powering-up ``#``
node counts (Slurm wakes it). Everything else (drained, draining, down, failed, reserved, maintenance, not
responding ``*``) does not: the same rule as ci/nightly/usable-nodes.sh."""


MAX_NODE_NAME_CHARS = 255
"""A host name's most (``HOST_NAME_MAX`` is 64 on Linux; slurm.conf's NodeName may be longer, never this)."""
_NOT_IN_A_NODE_NAME = ",[]="
"""What Slurm reads as syntax around a node name: ``,`` and ``[...]`` make a host list (``node[01-03]`` names
three nodes), ``=`` ends ``NodeName=`` in scontrol's update."""


class SchedulerError(Exception):
    """A Slurm command failed or is missing; the message is one line that says which and why.

    The message carries what Slurm answered (another operator's words, scontrol's refusal) and node names, so
    it is made printable once, here: no escape sequence or newline from outside reaches the terminal."""

    def __init__(self, message: str) -> None:
        super().__init__(printable(message))


def node_name_problem(name: str) -> str | None:
    """Why ``name`` cannot go into a Slurm command as one node's name (whitespace, a control character such as
    ESC or a newline, host-list syntax); None where it can. Said with the character's code point, so the
    character itself is never printed."""
    if not name:
        return "it is empty"
    if len(name) > MAX_NODE_NAME_CHARS:
        return f"it is {len(name)} characters long, over {MAX_NODE_NAME_CHARS}"
    bad = next((c for c in name if not c.isprintable() or c.isspace() or c in _NOT_IN_A_NODE_NAME), None)
    if bad is None:
        return None
    if bad == "=":
        what = "'=', which ends NodeName= in scontrol"
    elif bad in _NOT_IN_A_NODE_NAME:
        what = f"'{bad}', which Slurm reads as a host list"
    else:
        what = "whitespace" if bad.isspace() else "a control character"
    return f"it holds {what} (U+{ord(bad):04X})"


def check_node_name(name: str, source: str) -> str:
    """``name`` when Slurm can take it as one node's name; UserError (exit 2, one line) naming ``source``
    (``--node``, ``SLURMD_NODENAME``, this host's name) otherwise, before railbench puts it into Slurm."""
    problem = node_name_problem(name)
    if problem is not None:
        raise UserError(
            f"node name '{printable(name[:80])}' from {source} is not one Slurm node name: {problem}; "
            "pass --node with the name slurm.conf gives this node"
        )
    return name


@dataclass(frozen=True)
class NodeState:
    """One node as sinfo sees it."""

    node: str
    state: str
    """sinfo's long state (``%T``): ``idle``, ``mixed``, ``allocated``, ``drained``, ``draining``, ``down``..."""
    reason: str
    """Why it is drained or down (``%E``); empty when it has no reason."""
    user: str = ""
    """Who set the reason (``%u``)."""

    @property
    def drained(self) -> bool:
        """Drained or draining: Slurm starts no new job on it until someone resumes it."""
        return any(word.startswith(("drain", "drng")) for word in _words(self.state))

    @property
    def usable(self) -> bool:
        """Slurm may give it a job (see :data:`USABLE`)."""
        words = self.state.strip().lower().split("+")
        return len(words) == 1 and words[0].rstrip("~#") in USABLE


def _words(state: str) -> list[str]:
    return [word.rstrip("*~#!%$@^-") for word in state.lower().split("+") if word]


def command(name: str) -> str:
    """The path of Slurm command ``name``; SchedulerError when it is not installed."""
    found = shutil.which(name, path=benv.get("PATH") or os.defpath)
    if found is None:
        raise SchedulerError(f"Slurm's {name} is not on PATH: run on a node of a Slurm cluster, or put {name} on PATH")
    return found


def require(flag: str) -> None:
    """UserError, before anything runs, when sinfo or scontrol is missing: ``flag`` acts through them."""
    for name in ("sinfo", "scontrol"):
        try:
            command(name)
        except SchedulerError as exc:
            raise UserError(f"{flag}: {exc}; or leave {flag} off") from None


def _call(argv: Sequence[str]) -> str:
    """stdout of a Slurm command; SchedulerError with its first line of stderr when it fails."""
    tool = command(argv[0])
    try:
        done = toolrun.run_tool([tool, *argv[1:]], CALL_TIMEOUT_S, MAX_OUTPUT_BYTES)
    except toolrun.ToolMissing as exc:
        raise SchedulerError(f"{argv[0]} could not run: {exc.strerror or exc}") from None
    if done.timed_out:
        said = " ".join(argv[:3])
        raise SchedulerError(f"{said} did not answer within {CALL_TIMEOUT_S:g} s: is slurmctld up?")
    if done.over_cap:
        raise SchedulerError(f"{argv[0]} {argv[1]} wrote over {MAX_OUTPUT_BYTES >> 20} MiB, more than any answer")
    if done.returncode != 0:
        said = done.first_line() or f"exit {done.returncode}"
        raise SchedulerError(f"{argv[0]} {argv[1]}: {said[:300]}")
    return done.stdout.decode("utf-8", errors="replace")


def node_states(nodes: Sequence[str] = (), partition: str | None = None) -> dict[str, NodeState]:
    """node -> its state, for ``nodes`` (every node when empty), within ``partition`` when given.
    SchedulerError when Slurm knows none of ``nodes``."""
    argv = ["sinfo", "--noheader", "--Node", "--format", "%N|%T|%u|%E"]
    if nodes:
        argv += ["--nodes", ",".join(_one_node(node) for node in nodes)]
    if partition:
        argv += ["--partition", partition]
    states: dict[str, NodeState] = {}
    for line in _call(argv).splitlines():
        fields = line.split("|", 3)
        if len(fields) != 4:
            continue
        node, state, user, reason = (f.strip() for f in fields)
        # sinfo lists a node once per partition; the states agree, the first is kept.
        states.setdefault(node, NodeState(node, state, "" if reason == "none" else reason, user))
    return states


def _one_node(node: str) -> str:
    """``node`` where Slurm can take it as one node's name; SchedulerError otherwise (never sent to Slurm)."""
    problem = node_name_problem(node)
    if problem is not None:
        raise SchedulerError(f"'{node[:80]}' is not one Slurm node name ({problem}): nothing sent to Slurm")
    return node


def drain(node: str, reason: str) -> None:
    """Drain ``node`` with ``reason`` (a node already drained keeps its state and takes the new reason).
    Slurm stores the reason as it is given and shows it to every operator: it goes in printable, one line."""
    said = " ".join(printable(reason).split())
    _call(["scontrol", "update", f"NodeName={_one_node(node)}", "State=DRAIN", f"Reason={said}"])


def resume(node: str) -> None:
    """Return ``node`` to service."""
    _call(["scontrol", "update", f"NodeName={_one_node(node)}", "State=RESUME"])
