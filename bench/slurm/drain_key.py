"""The key a railbench drain reason carries: what railbench reads back from a node's Slurm Reason, as data it
wrote, never as its sentence (docs/slurm.md, "The drain policy"; docs/design.md, "Adding a finding").

A node's Reason is the only state that survives from one ``railbench health`` to the next on a node (slurmd
runs it every ``HealthCheckInterval``, and anyone may resume the node by hand in between), so railbench must
read something back from it: whose drain it is, and which check decides whether the part it was drained for
is fixed. The reason opens with a **token**, one word, then a space and the sentence
(``bench.rundir.finding_words.drain_words``)::

    railbench[<kind>:<name>/<action>] <part> <finding>; <action sentence>
    railbench[check:gpu-ecc/gpu-ecc] gpu-ecc GPU3 GPU 3 (0000:1b:00.0): 1 pending row remap; drain gpu-node07 ...
    railbench[link:1/-] rail 1 (mlx5_2) link dead; check the port state and the cable of gpu-node07 mlx5_2 port 1

``kind`` is the finding's ``Part.kind`` (``check``, ``run``, ``link``, ``cable``, ``errors``, ``path``,
``node``, ``gpu``, ``gpu-pair``); ``name`` which part of that kind on the node: a check's name (a ``run``
part's: the check that hung), a rail's number, a GPU's index (``1-6`` for a pair), ``gpus`` for every local
pair of the node; absent for a node's every rail. ``action`` is the profile's ``[actions]`` key the finding
records (``Finding.action_key``), ``-`` where it records none. Every field is lower-case letters, digits,
``-``, ``_`` or ``.``: Slurm keeps them as given (scontrol strips only a ``"`` at either end of the value,
``src/scontrol/update_node.c``; slurmctld stores the rest as sent, ``src/slurmctld/node_mgr.c``
``update_node``), the project's escaper for outside text (``bench.textlines.printable``) leaves them alone, and
there is no space in it, so readers that split a reason at whitespace (LBNL NHC's ``node-mark-online`` takes
its first word as whose it is) see it whole. A name that is not a key (a check's name from outside: a
checks.json) is left out, never written.

**Older releases** wrote ``railbench: <part> <finding>; <action>``, which said the check only as the first words
of its sentence. :func:`legacy_owned`, :func:`legacy_drained_for` and :func:`legacy_measured` read those, and
nothing else does: a node an older release drained is still railbench's after an upgrade, and still kept drained
while the check it was drained for goes unjudged, or for good when it was drained for a measured part. Their next
drain by this release writes the token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bench.rundir.findings import Finding

TOKEN_OPEN = "railbench["
"""How a reason this release wrote opens."""
NO_ACTION = "-"
"""The action field of a finding that records no ``[actions]`` key."""
_FIELD = r"[a-z0-9][a-z0-9._-]{0,23}"
"""One field: what Slurm, the escaper and a whitespace split all keep as it is. At most 24 characters (a check's
name is 18 at most today; a test holds every check's key whole), so the key leaves the sentence its room
within the 255 bytes Slurm's accounting keeps (``bench.slurm.drain.MAX_REASON_CHARS``)."""
_KEY = re.compile(_FIELD)
_TOKEN = re.compile(rf"railbench\[(?P<kind>{_FIELD})(?::(?P<name>{_FIELD}))?/(?P<action>{_FIELD}|-)\](?= |$)")
"""The token, at the start of the reason and ended by the space before the sentence (or the reason's end)."""

JUDGED_KINDS = frozenset({"check", "run"})
"""Kinds of part a check of one node judges again: a check's own answer, and the check that hung. Every other kind
(``link``, ``cable``, ``errors``, ``path``, ``node``, ``gpu``, ``gpu-pair``) is a rails or intra-node defect,
measured across nodes or under load, which no check of one node measures (docs/slurm.md, "The drain policy")."""


@dataclass(frozen=True)
class DrainKey:
    """What a drain reason says as data: which part of the node, and what the technician was told to do."""

    kind: str
    """The part's kind (``bench.rundir.part.Part.kind``)."""
    name: str | None = None
    """Which one of that kind on the node: a check's name, a rail's number, a GPU's index."""
    action: str | None = None
    """The ``[actions]`` key, where the finding recorded one."""

    @property
    def token(self) -> str:
        """``railbench[check:gpu-ecc/gpu-ecc]``: what the reason opens with."""
        name = f":{self.name}" if self.name else ""
        return f"{TOKEN_OPEN}{self.kind}{name}/{self.action or NO_ACTION}]"

    @property
    def judged_by(self) -> str | None:
        """The check whose answer says again whether the part is broken: a check's own, the check that hung; None
        for a part railbench measured (:attr:`measured`)."""
        return self.name if self.kind in JUDGED_KINDS else None

    @property
    def measured(self) -> bool:
        """A rails or intra-node defect: its bandwidth, its errors under load or its GPUDirect path were measured
        across nodes, and a port that is up again or counters quiet at rest do not say it is fixed (a slow cable
        keeps its port ACTIVE at full rate), so no health check resumes the node."""
        return self.kind not in JUDGED_KINDS


def key_of(finding: Finding) -> DrainKey:
    """The key of a finding that drains its node, from its part's and its own fields."""
    part = finding.part
    if part.kind in ("check", "run"):
        name = part.check
    elif part.intra and part.kind == "node":
        name = "gpus"
    elif part.gpu is not None:
        name = str(part.gpu.index) if part.peer_gpu is None else f"{part.gpu.index}-{part.peer_gpu.index}"
    else:
        name = None if part.rail is None else str(part.rail)
    return DrainKey(_kept(part.kind) or "part", _kept(name), _kept(finding.action_key))


def _kept(field: str | None) -> str | None:
    """``field`` where it is a key the token can carry whole; None for anything else (outside text)."""
    return field if field is not None and _KEY.fullmatch(field) else None


def read_key(reason: str) -> DrainKey | None:
    """The key a reason of this release opens with; None for any other reason (someone else's, an older
    release's: :func:`legacy_owned`)."""
    found = _TOKEN.match(reason)
    if found is None:
        return None
    action = found["action"]
    return DrainKey(found["kind"], found["name"], None if action == NO_ACTION else action)


# -- reasons an older release wrote ----------------------------------------------------------------------

LEGACY_PREFIX = "railbench:"
"""How a reason written before the token opened: ``railbench: <part> <finding>; <action>``."""


def legacy_owned(reason: str) -> bool:
    """A reason an older release set."""
    return reason.startswith(LEGACY_PREFIX)


_LEGACY_MEASURED = re.compile(r"(?:rail \d+ \(|GPU \d+ |every rail |every local pair)")
"""How an older release's sentence opened for a measured part: ``rail 2 (mlx5_3) cable slow``, ``GPU 3
(0000:1b:00.0) gpu slow``, ``every rail node slow``; a check's opened with the check's name (``rail mlx5_3:1
port DOWN``)."""


def _legacy_said(reason: str) -> str | None:
    return reason[len(LEGACY_PREFIX) :].lstrip() if legacy_owned(reason) else None


def legacy_measured(reason: str) -> bool:
    """An older release's reason for a measured part (:attr:`DrainKey.measured`)."""
    said = _legacy_said(reason)
    return said is not None and _LEGACY_MEASURED.match(said) is not None


def legacy_drained_for(reason: str, checks: Iterable[str]) -> str | None:
    """The check an older release's reason names, among ``checks``: its sentence opened with the check's name
    (``railbench: gpu-ecc GPU3 ...``, ``railbench: rail-errors did not finish ...``); None for any other reason,
    a measured part's included (:func:`legacy_measured`). The one reader of those sentences, kept for nodes drained
    before an upgrade."""
    said = _legacy_said(reason)
    if said is None or legacy_measured(reason):
        return None
    return next((c for c in sorted(checks, key=len, reverse=True) if said.startswith((f"{c} ", f"{c}:"))), None)
