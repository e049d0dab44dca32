"""The framework of ``railbench check``'s registry: results, the context the checks read, and base classes.

The concrete checks and their order live in ``bench.preflight.checks``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Literal, TypeVar, get_args

from bench.fabric import sysfs, topology
from bench.jsondoc import JSONObject, JSONValue
from bench.nccllogs import nccl_log
from bench.nccllogs.nccl_evidence import device_matches
from bench.profiles import Profile

V = TypeVar("V")
Status = Literal["pass", "warn", "fail", "skip"]
Verdict = Literal["pass", "warn", "fail", "skip"]
_STATUSES: Mapping[str, Status] = {status: status for status in get_args(Status)}


@dataclass(frozen=True)
class CheckResult:
    """One line of the verdict table."""

    check: str
    status: Status
    reason: str
    """One line that names the device."""
    device: str | None = None

    def to_json(self) -> JSONObject:
        return {"check": self.check, "status": self.status, "reason": self.reason, "device": self.device}

    @classmethod
    def from_json(cls, doc: Mapping[str, JSONValue]) -> CheckResult:
        """What :meth:`to_json` wrote on another rank (gathered over MPI). Every rank runs this same code, so a
        field of another type is a bug here, not damaged input: ValueError, as a missing key is KeyError."""
        check, status, reason, device = doc["check"], doc["status"], doc["reason"], doc["device"]
        known = _STATUSES.get(status) if isinstance(status, str) else None
        if not (
            isinstance(check, str) and known is not None and isinstance(reason, str) and isinstance(device, str | None)
        ):
            raise ValueError(f"not a check result: {dict(doc)!r:.200}")
        return cls(check, known, reason, device)


class Context:
    """What the checks look at; sysfs is read once, lazily.

    ``error_window_s`` overrides the profile's idle window of the error counters (``--error-window``);
    ``kernel_log`` is the log to scan for link flaps (None: the system's own); ``sleep`` and ``now`` are the
    clock, so a test can change its fixture tree between the window's two samples."""

    def __init__(
        self,
        profile: Profile,
        root: Path,
        logs: Sequence[nccl_log.NcclLog],
        env: Mapping[str, str],
        *,
        error_window_s: float | None = None,
        kernel_log: Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.profile = profile
        self.sysfs = sysfs.Sysfs(root)
        self.logs = tuple(logs)
        self.env = env
        self.error_window_s = error_window_s
        self.kernel_log = kernel_log
        self.sleep = sleep
        self.now = now

    @cached_property
    def devices(self) -> list[sysfs.IbDevice]:
        return sysfs.ib_devices(self.sysfs)

    @cached_property
    def ports(self) -> list[sysfs.IbPort]:
        return [p for d in self.devices for p in d.ports]

    @cached_property
    def nets(self) -> list[sysfs.NetDevice]:
        return sysfs.net_devices(self.sysfs)

    @cached_property
    def gpus(self) -> list[topology.Gpu]:
        return topology.gpus(self.sysfs)

    @cached_property
    def rails(self) -> list[sysfs.IbPort]:
        """Ports that are rails: not excluded, on the profile's link layer (any, when it names none)."""
        return [p for p in self._candidates if self.profile.link_layer in (None, p.link_layer)]

    @cached_property
    def other_ports(self) -> list[sysfs.IbPort]:
        """Ports that are neither excluded nor rails (a RoCE bond on an IB profile)."""
        return [p for p in self._candidates if p not in self.rails]

    @property
    def _candidates(self) -> list[sysfs.IbPort]:
        return [p for p in self.ports if not device_matches(p.name, self.profile.excluded_hcas)]


def listed(items: Sequence[str], limit: int = 8) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def majority(values: Sequence[V]) -> V | None:
    return Counter(values).most_common(1)[0][0] if values else None


class Check:
    """Base of the registry entries: a name, ``applies`` and ``run``."""

    name: ClassVar[str]

    def applies(self, ctx: Context) -> str | None:
        """None when the check applies, else why it is skipped."""
        return None

    def run(self, ctx: Context) -> list[CheckResult]:
        raise NotImplementedError

    def answer(self, ctx: Context) -> list[CheckResult]:
        """Its results here, or one skip that says why it does not apply."""
        why_not = self.applies(ctx)
        return [self.result("skip", why_not)] if why_not else list(self.run(ctx))

    def result(self, status: Status, reason: str, device: str | None = None) -> CheckResult:
        return CheckResult(self.name, status, reason, device)


class IbVerbsCheck(Check):
    """Base of checks that need RDMA devices on an IB/RoCE profile."""

    def applies(self, ctx: Context) -> str | None:
        if not ctx.profile.uses_ib_verbs:
            return f"profile {ctx.profile.name} uses {ctx.profile.transport}, not IB verbs"
        if not ctx.devices:
            return f"no RDMA device under {ctx.sysfs.path('class', 'infiniband')}"
        return None


class RailsFound(IbVerbsCheck):
    """Base of checks about the rails themselves: skipped when rail-count found none."""

    def applies(self, ctx: Context) -> str | None:
        why_not = super().applies(ctx)
        if why_not is None and not ctx.rails:
            return f"no {ctx.profile.link_layer or 'RDMA'} rail on this node (see rail-count)"
        return why_not
