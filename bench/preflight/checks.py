"""The preflight checks of ``railbench check``: an ordered registry of small check objects.

Each check says whether it applies (``applies`` returns why not, or None) and returns results with a status
(pass/warn/fail/skip) and a one-line reason that names the device. A check that cannot apply (no GPU on
this machine, no NCCL log given) says skip, never pass. ``verdict`` aggregates: any fail fails.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bench.fabric import hca, pcie, sysfs, topology
from bench.fabric.rail_nics import PlacedGpu, PlacedNic, nearest_rail_nics
from bench.nccllogs import nccl_evidence, nccl_log
from bench.nccllogs.nccl_evidence import device_matches
from bench.preflight import deadline, gpu_count
from bench.preflight.check_base import Check, CheckResult, Context, IbVerbsCheck, RailsFound, Verdict, listed, majority
from bench.preflight.error_checks import LinkFlaps, RailErrorWindow
from bench.preflight.gpu_checks import FabricManager, GpuClocks, GpuEcc, GpuXid, NvLinks
from bench.preflight.nccl_retry import IbRetry
from bench.preflight.path_checks import GpuPeerMemory, Iommu, NicPcie, PcieAcs, PcieLinkSpeed, PortMtu
from bench.profile.cluster import Profile
from bench.runtime.deadlines import DEFAULT_TIMEOUT_S


class RdmaDevices(Check):
    name = "ib-devices"

    def applies(self, ctx: Context) -> str | None:
        if not ctx.profile.uses_ib_verbs:
            return f"profile {ctx.profile.name} uses {ctx.profile.transport}, not IB verbs"
        return None

    def run(self, ctx: Context) -> list[CheckResult]:
        if not ctx.devices:
            where = ctx.sysfs.path("class", "infiniband")
            return [self.result("fail", f"no RDMA device under {where}: is the driver (mlx5_ib) loaded?")]
        names = [d.name for d in ctx.devices]
        return [self.result("pass", f"{len(names)} RDMA devices: {listed(names, 12)}")]


class RailCount(IbVerbsCheck):
    name = "rail-count"

    def run(self, ctx: Context) -> list[CheckResult]:
        profile, rails = ctx.profile, [p.name for p in ctx.rails]
        layer = profile.link_layer or "RDMA"
        out = []
        if profile.rail_count is not None and len(rails) != profile.rail_count:
            present = {p.device for p in ctx.ports}
            missing = [n for n in profile.rail_names if n not in present]
            wrong = [f"{p.name} is {p.link_layer}" for p in ctx.other_ports]
            detail = "; ".join(
                x
                for x in (
                    f"missing: {listed(missing)}" if missing else "",
                    f"not {layer}: {listed(wrong)}" if wrong else "",
                )
                if x
            )
            device = missing[0] if missing else (ctx.other_ports[0].name if ctx.other_ports else None)
            found = f"found {len(rails)} {layer} rails, expected {profile.rail_count}"
            out.append(self.result("fail", found + (f" ({detail})" if detail else ""), device))
        else:
            out.append(self.result("pass", f"{len(rails)} {layer} rails: {listed(rails)}"))
            for port in ctx.other_ports:
                message = f"{port.name} is {port.link_layer}, not one of the {layer} rails"
                out.append(self.result("warn", message, port.name))
        return out


class RailPorts(RailsFound):
    name = "rail"

    def run(self, ctx: Context) -> list[CheckResult]:
        profile = ctx.profile
        rate = profile.rail_rate_gbps or majority([p.rate_gbps for p in ctx.rails if p.state == "ACTIVE"])
        layer = profile.link_layer or majority([p.link_layer for p in ctx.rails])
        out = []
        for port in ctx.rails:
            speed = f"{port.rate_gbps:g} Gb/s" if port.rate_gbps else "rate unknown"
            if port.width_speed:
                speed += f" ({port.width_speed})"
            problems = []
            if port.state != "ACTIVE" or port.phys_state != "LinkUp":
                problems.append(f"port {port.state} (phys_state {port.phys_state}), expected ACTIVE/LinkUp")
            elif rate is not None and port.rate_gbps != rate:
                problems.append(f"at {speed}, expected {rate:g} Gb/s")
            if layer is not None and port.link_layer != layer:
                problems.append(f"link layer {port.link_layer}, expected {layer}")
            if problems:
                out.append(self.on_device("fail", port.name, "; ".join(problems)))
            else:
                out.append(self.on_device("pass", port.name, f"ACTIVE LinkUp {speed} {port.link_layer}"))
        return out


class NcclIbHca(IbVerbsCheck):
    name = "nccl-ib-hca"

    def run(self, ctx: Context) -> list[CheckResult]:
        value = ctx.env.get("NCCL_IB_HCA")
        said = "NCCL_IB_HCA unset" if value is None else f"NCCL_IB_HCA='{hca.show(value)}'"
        candidates = [hca.Candidate(p.device, p.port, p.state, p.link_layer, p.rate_gbps) for p in ctx.ports]
        explained = hca.explain(value, candidates)
        selected = explained.selected
        rails = [p.name for p in ctx.rails if p.state == "ACTIVE"]
        excluded = [d for d in selected if device_matches(d, ctx.profile.excluded_hcas)]
        extra = [d for d in selected if d not in rails and d not in excluded]
        left_out = [d for d in rails if d not in selected]
        fix = ctx.profile.recommended_env.get("NCCL_IB_HCA")
        if extra and rails and not left_out:
            names = [*ctx.profile.excluded_hcas, *(d.split(":")[0] for d in extra)]
            fix = "^=" + ",".join(dict.fromkeys(names))
        hint = f"; set NCCL_IB_HCA='{fix}'" if fix and fix != value else ""
        problems = []
        if excluded:
            problems.append(f"NCCL would use {listed(excluded)}, which the profile excludes")
        if extra:
            problems.append(f"NCCL would also use {listed(extra)}, not a rail")
        if left_out:
            problems.append(f"NCCL would leave out rail {listed(left_out)}")
        if problems:
            device = (excluded or extra or left_out)[0]
            return [self.result("fail", f"{said}: " + "; ".join(problems) + hint, device)]
        if explained.warnings:
            return [self.result("warn", f"{said}: {explained.warnings[0].message}")]
        return [self.result("pass", f"{said} selects exactly the {len(rails)} active rails")]


class SocketIfname(Check):
    name = "nccl-socket-ifname"

    def applies(self, ctx: Context) -> str | None:
        if ctx.profile.transport == "loopback":
            return "loopback profile: NCCL sockets stay on this machine"
        return None

    def run(self, ctx: Context) -> list[CheckResult]:
        value = ctx.env.get("NCCL_SOCKET_IFNAME")
        up = [n.name for n in ctx.nets if n.operstate in ("up", "unknown")]
        if value is None:
            chosen = hca.nccl_default_ifnames(up)
            wanted = ctx.profile.socket_ifnames or (ctx.profile.oob_ifname and f"={ctx.profile.oob_ifname}")
            if not wanted:
                guess = sysfs.ip_interface(ctx.nets)
                wanted = f"={guess}" if guess else None
            advice = f"; recommended NCCL_SOCKET_IFNAME='{wanted}'" if wanted else ""
            return [self.result("warn", f"NCCL_SOCKET_IFNAME unset: NCCL picks {listed(chosen) or 'nothing'}{advice}")]
        chosen = hca.select_ifnames(value, up)
        said = f"NCCL_SOCKET_IFNAME='{hca.show(value)}'"
        if not chosen:
            return [self.result("fail", f"{said} matches no interface that is up ({listed(up)})")]
        bad = [n for n in chosen if n in ctx.profile.excluded_ifnames]
        if bad:
            return [self.result("fail", f"{said} selects {listed(bad)}, which the profile excludes", bad[0])]
        if ctx.profile.socket_ifnames is not None:
            expected = hca.select_ifnames(ctx.profile.socket_ifnames, [n.name for n in ctx.nets])
            missing = [n for n in expected if n not in chosen]
            if missing:
                return [self.result("fail", f"{said} leaves out rail {listed(missing)}", missing[0])]
        return [self.result("pass", f"{said} selects {listed(chosen)}")]


class SocketRails(Check):
    name = "socket-rail"

    def applies(self, ctx: Context) -> str | None:
        if ctx.profile.transport != "socket":
            return f"profile {ctx.profile.name} does not run NCCL over socket rails"
        return None

    def run(self, ctx: Context) -> list[CheckResult]:
        profile = ctx.profile
        by_name = {n.name: n for n in ctx.nets}
        if profile.rail_names:
            names = list(profile.rail_names)
        else:
            names = hca.select_ifnames(profile.socket_ifnames or "", list(by_name))
        speed = majority([by_name[n].speed_mbps for n in names if n in by_name and by_name[n].speed_mbps])
        out = []
        for name in names:
            dev = by_name.get(name)
            if dev is None:
                out.append(self.on_device("fail", name, "missing"))
            elif dev.operstate != "up":
                out.append(self.on_device("fail", name, f"operstate {dev.operstate}, expected up"))
            elif speed and dev.speed_mbps != speed:
                have = f"{dev.speed_gbps:g} Gb/s" if dev.speed_gbps else "unknown speed"
                out.append(self.on_device("fail", name, f"{have}, the other rails run at {speed / 1000:g}"))
            else:
                have = f"{dev.speed_gbps:g} Gb/s" if dev.speed_gbps else "speed unknown"
                out.append(self.on_device("pass", name, f"up, {have}"))
        if profile.rail_count is not None and len(names) != profile.rail_count:
            out.append(self.result("fail", f"{len(names)} socket rails, expected {profile.rail_count}"))
        return out or [self.result("fail", "the profile names no socket rail")]


class GpuCount(Check):
    """The GPUs that answer on the PCI bus: as many as the profile expects, of its model (``gpu_count``)."""

    name = "gpu-count"

    def applies(self, ctx: Context) -> str | None:
        if ctx.profile.gpus_per_node is None and ctx.profile.gpu_model is None:
            return f"profile {ctx.profile.name} expects no GPU count or model"
        if not ctx.gpus and not topology.pci_bus_listed(ctx.sysfs):
            return f"the sysfs tree {ctx.sysfs.root} lists no PCI function (bus/pci/devices): nothing to count"
        return None

    def run(self, ctx: Context) -> list[CheckResult]:
        return gpu_count.count_findings(ctx, self.name)


class GpuNicAffinity(Check):
    """Each GPU has a rail NIC next to it: on a switch design (HGX, PCIe GPUs) behind the same PCIe switch (PIX or
    PXB); on a Grace superchip (GB200, GB300, GH200: ``bench.fabric.pcie.GRACE_SUPERCHIP_GPUS``) the GPU reaches
    its NIC through its Grace over NVLink-C2C by design, so any PCIe distance is the design's, not a fault."""

    name = "gpu-nic-affinity"

    def applies(self, ctx: Context) -> str | None:
        if not ctx.gpus:
            return "no GPU on this machine"
        if not ctx.profile.uses_ib_verbs or not ctx.rails:
            return "no rail NIC to pair GPUs with"
        if not any(g.pci_path for g in ctx.gpus):
            return "the GPUs' PCI paths are unknown"
        return None

    def run(self, ctx: Context) -> list[CheckResult]:
        # The rails' own mapping (bench.fabric.rail_nics), so that check, rails and accept name the same NIC.
        by_device = {d.name: d for d in ctx.devices}
        nics = [
            PlacedNic(p.name, by_device[p.device].pci_path, by_device[p.device].numa_node, p.state)
            for p in ctx.rails
            if p.device in by_device
        ]
        gpus = [PlacedGpu(g.pci_address or f"GPU{g.index}", g.pci_path, g.numa_node) for g in ctx.gpus]
        found = nearest_rail_nics(gpus, nics)
        pairs = [(g, found[p.address]) for g, p in zip(ctx.gpus, gpus, strict=True)]
        c2c = {g.index: chip for g in ctx.gpus if g.pci_address and (chip := _superchip(ctx, g.pci_address))}
        far = [(g, a) for g, a in pairs if not a.near and not (g.index in c2c and a.nic)]
        out = [
            self.result(
                "fail",
                f"GPU{g.index} ({g.pci_address}): nearest rail NIC {short(a.nic)} is at {a.distance}, "
                "expected PIX or PXB",
                f"GPU{g.index}",
            )
            for g, a in far
        ]
        if far:
            return out
        shown = ", ".join(f"GPU{g.index} ({g.pci_address})->{short(a.nic)} {a.distance}" for g, a in pairs)
        if c2c:
            chips = listed(sorted(set(c2c.values())))
            out.append(
                self.result(
                    "pass",
                    f"every GPU has a rail NIC: {shown}; {chips} GPUs reach their NIC through their Grace CPU over "
                    "NVLink-C2C by design (no PCIe switch is shared, so nvidia-smi topo -m shows no PIX/PXB)",
                )
            )
        else:
            out.append(self.result("pass", f"every GPU has a rail NIC at PIX/PXB: {shown}"))
        # NCCL spreads GPUs that tie on a set of NICs over it one each; only a NIC that two GPUs must share while
        # another rail NIC carries none halves those GPUs' share of the network.
        load = Counter(short(a.nic) for _, a in pairs if a.nic)
        doubled = sorted(n for n, count in load.items() if n and count > 1)
        idle = sorted({short(n.name) or n.name for n in nics} - set(load))
        if doubled and idle:
            carry = "carries" if len(idle) == 1 else "carry"
            message = f"GPUs share rail NIC {listed(doubled)} while {listed(idle)} {carry} no GPU"
            out.append(self.result("warn", message, doubled[0]))
        return out


def _superchip(ctx: Context, address: str) -> str | None:
    """``GB200`` when the GPU at ``address`` is a Grace superchip's (joined to its CPU by NVLink-C2C)."""
    return pcie.pci_function(ctx.sysfs, address).superchip


def short(nic: str | None) -> str | None:
    """``mlx5_4:1`` -> ``mlx5_4``: the HCA, as people name it."""
    return nic.split(":")[0] if nic else nic


class FirmwareUniform(RailsFound):
    name = "rail-firmware"

    def run(self, ctx: Context) -> list[CheckResult]:
        rail_devices = {p.device for p in ctx.rails}
        fw = {d.name: d.fw_ver or "unknown" for d in ctx.devices if d.name in rail_devices}
        common = majority(list(fw.values()))
        odd = [f"{n} ({v})" for n, v in fw.items() if v != common]
        if odd:
            return [self.result("warn", f"rail firmware differs from {common}: {listed(odd)}", odd[0].split()[0])]
        return [self.result("pass", f"all {len(fw)} rail HCAs run firmware {common}")]


class NcclLogEvidence(Check):
    name = "nccl-log"

    def applies(self, ctx: Context) -> str | None:
        return None if ctx.logs else "no --nccl-log given"

    def run(self, ctx: Context) -> list[CheckResult]:
        found = nccl_evidence.findings(ctx.logs, ctx.profile)
        out = [self.result(f.severity, f.message, f.device) for f in found]
        flagged = {f.host for f in found}
        for name, host in nccl_evidence.hosts(ctx.logs).items():
            if host.has_network_evidence and name not in flagged:
                out.append(self.result("pass", nccl_evidence.describe(host)))
        return out


class SysfsTree(Check):
    """Entries of the sysfs tree that are not what sysfs holds (a FIFO, a device node, a symlink loop, a file
    over a page, a number that is not one): each is a fail naming the path, since every other check's answer
    about that device is then unfounded. A sound tree adds no line."""

    name = "sysfs-tree"
    shown = 8

    def run(self, ctx: Context) -> list[CheckResult]:
        # Read everything the other checks might not have (a socket profile never lists class/infiniband).
        _ = ctx.devices, ctx.nets, ctx.gpus
        problems = ctx.sysfs.problems
        out = [self.result("fail", p.message, p.path) for p in problems[: self.shown]]
        if len(problems) > self.shown:
            out.append(
                self.result("fail", f"and {len(problems) - self.shown} more damaged entries under {ctx.sysfs.root}")
            )
        return out


REGISTRY: tuple[Check, ...] = (
    RdmaDevices(),
    RailCount(),
    RailPorts(),
    NcclIbHca(),
    IbRetry(),
    SocketIfname(),
    SocketRails(),
    GpuCount(),
    GpuNicAffinity(),
    PcieLinkSpeed(),
    PcieAcs(),
    Iommu(),
    GpuPeerMemory(),
    NicPcie(),
    PortMtu(),
    FirmwareUniform(),
    RailErrorWindow(),
    LinkFlaps(),
    GpuXid(),
    GpuEcc(),
    GpuClocks(),
    NvLinks(),
    FabricManager(),
    NcclLogEvidence(),
    SysfsTree(),
)
"""The checks, in the order they run and print."""


CHECKS_TIME_LIMIT_S = 300.0
"""The most a node's checks may take: each tool is bounded (nvidia-smi 60 + 30 s, ibv_devinfo 15 s, the journal),
the error window is seconds; past this a read has hung (a wedged driver's sysfs file), and ``check`` and
``accept`` say so instead of never answering (``railbench health`` has its own, shorter ``--time-limit``)."""


def run_checks(
    profile: Profile,
    sysfs_root: Path | str,
    nccl_logs: Sequence[nccl_log.NcclLog | Path | str] = (),
    env: Mapping[str, str] | None = None,
    *,
    error_window_s: float | None = None,
    kernel_log: Path | None = None,
    nvidia_smi: Sequence[Path] = (),
    node: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    only: Sequence[str] | None = None,
    time_limit_s: float = CHECKS_TIME_LIMIT_S,
    step_timeout_s: float = DEFAULT_TIMEOUT_S,
    ibv_devinfo: Path | None = None,
) -> list[CheckResult]:
    """Run every registered check against this node (``sysfs_root`` stands in for /sys), within
    ``time_limit_s`` (``bench.preflight.deadline``: a check still running then is a ``time-limit`` failure).

    ``nccl_logs`` are parsed logs or paths to parse; ``env`` is the environment NCCL will see (default: the
    process environment, read through ``bench.runtime.env``). ``error_window_s``, ``kernel_log``,
    ``nvidia_smi``, ``node`` and ``sleep`` are the checks' context (see ``Context``); ``only`` runs the named
    checks alone (``rails`` reads the node-local causes of a slow rail this way); ``step_timeout_s`` is the
    ``--timeout`` of the run the checks vouch for (``nccl-ib-retry`` weighs NCCL's retries against it);
    ``ibv_devinfo`` is captured ``ibv_devinfo`` output (``port-mtu`` on a copied tree).
    """
    from bench.runtime import env as benv

    logs = [x if isinstance(x, nccl_log.NcclLog) else nccl_log.parse_file(x) for x in nccl_logs]
    ctx = Context(
        profile,
        Path(sysfs_root),
        logs,
        benv.environ() if env is None else env,
        error_window_s=error_window_s,
        kernel_log=kernel_log,
        nvidia_smi=nvidia_smi,
        node=node,
        sleep=sleep,
        step_timeout_s=step_timeout_s,
        ibv_devinfo=ibv_devinfo,
    )
    selected = [check for check in REGISTRY if only is None or check.name in only]
    return deadline.run_within(ctx, selected, time_limit_s).answers


def timed_checks(
    profile: Profile, sysfs_root: Path | str, env: Mapping[str, str] | None = None
) -> list[tuple[CheckResult, float]]:
    """``run_checks`` with each result's wall time in seconds (JUnit's testcase time): a check that answers
    once per device shares its time evenly among its answers, so the times add up to the checks' own."""
    from bench.runtime import env as benv

    return _timed(Context(profile, Path(sysfs_root), [], benv.environ() if env is None else env))


def _timed(ctx: Context, only: Sequence[str] | None = None) -> list[tuple[CheckResult, float]]:
    out: list[tuple[CheckResult, float]] = []
    for check in REGISTRY:
        if only is not None and check.name not in only:
            continue
        started = time.monotonic()
        results = check.answer(ctx)
        share = (time.monotonic() - started) / max(1, len(results))
        out += [(result, share) for result in results]
    return out


def verdict(results: Sequence[CheckResult]) -> Verdict:
    """``fail`` if any result failed, ``warn`` if any warned, ``pass`` if any passed, else ``skip``: a node
    whose every check skipped was not checked, which is never a pass."""
    statuses = {r.status for r in results}
    if "fail" in statuses:
        return "fail"
    if "warn" in statuses:
        return "warn"
    return "pass" if "pass" in statuses else "skip"


def expected_rails(profile: Profile, sysfs_root: Path | str) -> list[str]:
    """The devices that should carry the benchmark's bytes on this node: rail ports (``mlx5_1:1``) on an
    IB/RoCE profile, rail interfaces on a socket profile, nothing on a loopback profile."""
    ctx = Context(profile, Path(sysfs_root), (), {})
    if profile.uses_ib_verbs:
        return [p.name for p in ctx.rails]
    if profile.transport == "socket":
        names = [n.name for n in ctx.nets]
        return list(profile.rail_names) or hca.select_ifnames(profile.socket_ifnames or "", names)
    return []


def node_env(profile: Profile, sysfs_root: Path | str) -> dict[str, str]:
    """The NCCL environment to recommend on this node: the profile's ``recommended_env`` plus, when the
    profile does not fix it, NCCL_SOCKET_IFNAME set to the node's IP interface (its ``oob_ifname``, else the
    interface ``sysfs.ip_interface`` finds)."""
    env = dict(profile.recommended_env)
    if "NCCL_SOCKET_IFNAME" not in env and profile.transport != "loopback":
        name = profile.oob_ifname or sysfs.ip_interface(sysfs.net_devices(sysfs.Sysfs(Path(sysfs_root))))
        if name:
            env["NCCL_SOCKET_IFNAME"] = f"={name}"
    return env
