"""The framework of ``railbench check``'s registry: results (``CheckResult``, declared once in the run-directory
layer, ``bench.rundir.checksjson``, where every reader of checks.json and rails.json imports it too), the context
the checks read, and base classes.

The concrete checks and their order live in ``bench.preflight.checks``.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Literal, TypeVar

from bench import sysroot
from bench.exits import UserError
from bench.fabric import sysfs, topology
from bench.fabric.rail_nics import PlacedGpu, PlacedNic, nearest_rail_nics
from bench.gpu import state
from bench.nccllogs import nccl_log
from bench.nccllogs.nccl_evidence import device_matches
from bench.profile.cluster import Profile
from bench.rundir.checksjson import CheckResult as CheckResult
from bench.rundir.checksjson import Status as Status
from bench.runtime.deadlines import DEFAULT_TIMEOUT_S

V = TypeVar("V")
LIVE_SYSFS = sysroot.LIVE
"""The live ``/sys`` (a name of its own here so a test can make a fixture tree stand for it)."""
Verdict = Literal["pass", "warn", "fail", "skip"]


class Context:
    """What the checks look at; sysfs is read once, lazily.

    ``error_window_s`` overrides the profile's idle window of the error counters (``--error-window``);
    ``kernel_log`` is the log to scan for link flaps and Xid events (None: the system's own); ``nvidia_smi``
    holds captured ``nvidia-smi -q -x`` / ``nvidia-smi nvlink -s`` output (empty: run the tool on a live node);
    ``node`` names the node in actions; ``sleep`` and ``now`` are the clock, so a test can change its fixture
    tree between the window's two samples; ``step_timeout_s`` is the ``--timeout`` of the run the checks
    vouch for (railbench's default where they run alone)."""

    def __init__(
        self,
        profile: Profile,
        root: Path,
        logs: Sequence[nccl_log.NcclLog],
        env: Mapping[str, str],
        *,
        error_window_s: float | None = None,
        kernel_log: Path | None = None,
        nvidia_smi: Sequence[Path] = (),
        node: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = datetime.now,
        step_timeout_s: float = DEFAULT_TIMEOUT_S,
        ibv_devinfo: Path | None = None,
    ) -> None:
        self.profile = profile
        self.sysfs = sysfs.Sysfs(root)
        self.logs = tuple(logs)
        self.env = env
        self.error_window_s = error_window_s
        self.kernel_log = kernel_log
        self.nvidia_smi = tuple(nvidia_smi)
        self.node = node or socket.gethostname()
        self.sleep = sleep
        self.now = now
        self.step_timeout_s = step_timeout_s
        self.ibv_devinfo = ibv_devinfo
        """Captured ``ibv_devinfo`` output: the InfiniBand ports' active MTU on a copied tree (None: run it live)."""

    @cached_property
    def live(self) -> bool:
        """Whether the tree is this machine's own ``/sys`` (a copy is another node's: no tool of this machine
        speaks for it)."""
        return Path(os.path.realpath(self.sysfs.root)) == LIVE_SYSFS

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

    @cached_property
    def gpu_paths(self) -> list[GpuPath]:
        """Every GPU on the PCI bus in bus order (fixed-width hex sorted as text: GPU k is local rank k's, and rail
        k's), each with the rail NIC nearest it in the PCIe tree (``bench.fabric.rail_nics``, as ``rails``
        maps them) where the profile has RDMA rails."""
        by_device = {d.name: d for d in self.devices}
        nics = [
            PlacedNic(p.name, by_device[p.device].pci_path, by_device[p.device].numa_node, p.state)
            for p in self.rails
            if p.device in by_device and self.profile.uses_ib_verbs
        ]
        ordered = sorted(self.gpus, key=lambda g: g.pci_address or "")
        placed = [PlacedGpu(g.pci_address or f"GPU{k}", g.pci_path, g.numa_node) for k, g in enumerate(ordered)]
        found = nearest_rail_nics(placed, nics) if nics else {}
        ports = {p.name: p for p in self.rails}
        out = []
        for k, (gpu, where) in enumerate(zip(ordered, placed, strict=True)):
            nic = found[where.address].nic if where.address in found else None
            port = ports.get(nic) if nic else None
            device = by_device.get(port.device) if port else None
            out.append(
                GpuPath(
                    k,
                    gpu,
                    nic,
                    device.pci_address if device else None,
                    device.pci_path if device else (),
                    port.rate_gbps if port and port.rate_gbps else self.profile.rail_rate_gbps,
                )
            )
        return out

    @cached_property
    def gpu_state(self) -> state.GpuState:
        """nvidia-smi's view of the GPUs: the files given, else the tool on a live node; why not, otherwise."""
        if self.nvidia_smi:
            return state.from_files(self.nvidia_smi)
        if not self.live:
            why = (
                f"the sysfs tree {self.sysfs.root} is not this machine's: give its nvidia-smi output with --nvidia-smi"
            )
            return state.GpuState(report_missing=why, links_missing=why)
        return state.from_tool()

    def kernel_log_missing(self) -> str | None:
        """Why no kernel log speaks for this tree: it is a copy of another node's and no ``--kernel-log`` came
        with it (this machine's own journal would speak for the wrong node); None when one does."""
        if self.kernel_log is None and not self.live:
            return f"the sysfs tree {self.sysfs.root} is not this machine's: give its kernel log with --kernel-log"
        return None

    def action(self, key: str, **words: object) -> str:
        """The profile's action (``[actions.checks]``) for check ``key`` on this node."""
        return self.profile.actions.check_action(key, node=self.node, **words)


@dataclass(frozen=True)
class GpuPath:
    """GPU k of a node (PCI bus order) and the rail NIC its GPUDirect traffic should leave through."""

    k: int
    gpu: topology.Gpu
    nic: str | None
    """The rail port, ``mlx5_4:1``; None where none is placed next to the GPU (a socket profile, no rails)."""
    nic_pci: str | None
    nic_chain: tuple[str, ...]
    rate_gbps: float | None
    """The rail's line rate: its port's, else the profile's."""

    @property
    def label(self) -> str:
        """``GPU3``, as the checks name a GPU."""
        return f"GPU{self.k}"

    @property
    def address(self) -> str:
        return self.gpu.pci_address or self.label

    @property
    def hca(self) -> str | None:
        return self.nic.split(":")[0] if self.nic else None


def listed(items: Sequence[str], limit: int = 8) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def majority(values: Sequence[V]) -> V | None:
    return Counter(values).most_common(1)[0][0] if values else None


_UNJUDGED_ACTION = (
    "keep {node} out of service until this check runs: run railbench check on {node} by hand and fix what stops "
    "it (the tool's own error is in the reason)"
)
"""What to do about a check that could not judge a part that is there: the node is not known to be healthy."""


class Check:
    """Base of the registry entries: a name, ``applies`` and ``run``."""

    name: ClassVar[str]

    def applies(self, ctx: Context) -> str | None:
        """None when the check applies, else why it is skipped."""
        return None

    def run(self, ctx: Context) -> list[CheckResult]:
        raise NotImplementedError

    def source_failed(self, ctx: Context) -> str | None:
        """Why the part this check judges is there but its source failed (a tool that ran and gave no answer on
        a node that has the hardware), else None. Such a check fails: it is not a check that does not apply."""
        return None

    def answer(self, ctx: Context) -> list[CheckResult]:
        return [_with_buses(ctx, r) for r in self._answer(ctx)]

    def _answer(self, ctx: Context) -> list[CheckResult]:
        """Its results here, or one skip that says why it does not apply. A check that cannot judge what is there
        fails, never skips or passes: its source failed, or the check itself raised (the error is its
        finding, so a node is never taken as healthy, nor resumed, on a check that did not run)."""
        try:
            why_not = self.applies(ctx)
            if why_not:
                failed = self.source_failed(ctx)
                if failed:
                    return [self.result("fail", failed, action=_UNJUDGED_ACTION.format(node=ctx.node))]
                return [self.result("skip", why_not)]
            return list(self.run(ctx))
        except UserError:
            raise  # bad input the user gave (a file, a flag): exit 2 before anything is judged
        except Exception as exc:  # any error inside a check is a finding of that check, never a crash or a pass
            said = " ".join(str(exc).split())[:200] or "no message"
            reason = f"could not be judged: the check raised {type(exc).__name__}: {said}"
            return [self.result("fail", reason, action=_UNJUDGED_ACTION.format(node=ctx.node))]

    def result(
        self,
        status: Status,
        reason: str,
        device: str | None = None,
        *,
        action: str | None = None,
        gpus: Iterable[int] = (),
    ) -> CheckResult:
        return CheckResult(self.name, status, reason, device, action, tuple(sorted(gpus)))

    def on_device(
        self, status: Status, device: str, said: str, *, action: str | None = None, gpus: Iterable[int] = ()
    ) -> CheckResult:
        """A result whose reason opens with the device it is about (``mlx5_1:1: port DOWN ...``): the check
        gives the device and its words apart, and the answer keeps both (``said``), so a line that names the
        device itself takes the words whole and never cuts them from the reason."""
        opened = self.result(status, f"{device}: {said}", device, action=action, gpus=gpus)
        return dataclasses.replace(opened, said=said)


def _with_buses(ctx: Context, result: CheckResult) -> CheckResult:
    """``result`` with the PCI address of each GPU it names (``gpus`` index the tree's GPUs in bus order): a rank
    knows the address of the GPU it drives, never which of the node's GPUs CUDA numbered it."""
    if not result.gpus:
        return result
    order = [p.gpu.pci_address for p in ctx.gpu_paths]
    buses = tuple(order[k] or "" for k in result.gpus if k < len(order))
    return dataclasses.replace(result, gpu_buses=tuple(b for b in buses if b))


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
