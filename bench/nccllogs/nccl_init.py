"""Which ranks of an ``NCCL_DEBUG=INFO`` log failed to make their communicator, from NCCL's own error trace.

When a call fails inside NCCL, every function it returns through logs ``NCCL INFO <file>:<line> -> <code>``
(NCCL's ``NCCLCHECK`` macros, src/include/checks.h), after the ``NCCL WARN`` that says why. A trace through
``init.cc`` is a failed communicator init (``ncclCommInitRank`` and its async job live there): that rank has
no communicator, and no collective will run. Other traces are not: CollNet and net-plugin setup fail, log
``transport.cc:356 -> 2`` or ``plugin/net.cc:118 -> 2``, and NCCL goes on without them. A rank is told apart
by host, pid and CUDA device (one process may drive several GPUs), and its last word counts: a later
``Init COMPLETE`` of the same rank means it recovered (or a later communicator formed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from bench.nccllogs.nccl_lines import NcclLine

_RETURN = re.compile(r"(?P<file>[\w./-]{1,200}):\d{1,7} -> (?P<code>\d{1,4})\b")
_INIT_FILES = frozenset({"init.cc"})
MAX_RANKS = 4096
"""Ranks followed per log: more than any node has; past it, new ranks are not followed."""


def _init_trace(message: str) -> bool:
    """Whether ``message`` is a line of an error trace through communicator init (``init.cc:1089 -> 3``)."""
    trace = _RETURN.match(message) if " -> " in message else None
    return trace is not None and trace["code"] != "0" and PurePosixPath(trace["file"]).name in _INIT_FILES


@dataclass(frozen=True)
class InitFailure:
    """One rank whose communicator init failed, and the line that says why."""

    pid: int
    device: int | None
    reason: str
    """The ``NCCL WARN`` message the rank printed before its trace, else the first line of the trace."""
    source: str | None
    line: int


@dataclass
class InitWatch:
    """Fed every NCCL line of a log in order; ``failures`` and ``ranks`` once it has all of them."""

    source: str | None = None
    _last: dict[tuple[str, int, int | None], InitFailure | None] = field(default_factory=dict)
    """Per rank, its last init event: the failure, or None for an ``Init COMPLETE``."""
    _warned: dict[tuple[str, int, int | None], tuple[str, int]] = field(default_factory=dict)
    _ranks: dict[str, dict[tuple[int, int | None], None]] = field(default_factory=dict)

    def feed(self, line: NcclLine, number: int) -> None:
        if line.pid is None:
            return
        key = (line.host, line.pid, line.device)
        ranks = self._ranks.setdefault(line.host, {})
        if (line.pid, line.device) not in ranks:
            if sum(len(r) for r in self._ranks.values()) >= MAX_RANKS:
                return
            ranks[(line.pid, line.device)] = None
        message = line.message
        if line.level == "WARN":
            self._warned.setdefault(key, (message[:300], number))
        elif message.endswith("Init COMPLETE"):
            self._last[key] = None
            self._warned.pop(key, None)
        elif self._last.get(key) is None and _init_trace(message):
            reason, at = self._warned.get(key, (message[:300], number))
            self._last[key] = InitFailure(line.pid, line.device, reason, self.source, at)

    def failures(self, host: str) -> tuple[InitFailure, ...]:
        """The ranks of ``host`` whose last init failed, in the order they were first seen."""
        return tuple(
            failure
            for (pid, device) in self._ranks.get(host, {})
            if (failure := self._last.get((host, pid, device))) is not None
        )

    def ranks(self, host: str) -> tuple[str, ...]:
        """Every rank the log shows on ``host``, as ``pid/device``."""
        return tuple(f"{pid}/{'' if device is None else device}" for pid, device in self._ranks.get(host, {}))
