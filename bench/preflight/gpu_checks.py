"""The checks of the GPUs themselves: Xid events, ECC and row remapping, clock events, NVLink and MIG, and the
NVSwitch fabric manager (docs/preflight.md, "The GPUDirect path").

They read ``nvidia-smi -q -x`` and ``nvidia-smi nvlink -s`` (``bench.gpu.state``: the tool on a live node, or
files given with ``--nvidia-smi``) and the kernel log (``--kernel-log``, the journal, kern.log). Without their
source they skip, saying which source is missing; a machine without a GPU skips them all.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bench.bounded import InputError, Where, parse_float, read_bytes
from bench.fabric import link_flaps
from bench.gpu import nvlink, xid, xid_report
from bench.gpu.ecc import ecc_findings
from bench.gpu.smi import SmiGpu, SmiReport
from bench.preflight.check_base import Check, CheckResult, Context, GpuPath, Status, listed

FAILING_CLOCK_EVENTS = ("hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown", "sw_thermal_slowdown")
"""Clock event reasons that hold a GPU's clocks down for its health (nvidia-smi(1), "Clocks Event Reasons": the
hardware slowing it for heat or an external power brake, the driver for heat)."""
WARNING_CLOCK_EVENTS = ("sw_power_cap", "applications_clocks_setting")
"""Reasons that hold clocks down by configuration: the power limit reached, application clocks set low."""
UPTIME = "/proc/uptime"


def _no_gpu(ctx: Context) -> str | None:
    return None if ctx.gpu_paths else "no GPU on this machine (no NVIDIA GPU on the PCI bus)"


def _smi_or_why_not(ctx: Context) -> str | None:
    why = _no_gpu(ctx)
    if why is None and ctx.gpu_state.report is None:
        return f"no nvidia-smi -q -x report: {ctx.gpu_state.report_missing}"
    return why


def _path_of(ctx: Context, pci: str) -> GpuPath | None:
    return next((p for p in ctx.gpu_paths if p.gpu.pci_address == pci), None)


def _who(ctx: Context, gpu: SmiGpu) -> tuple[str, str, tuple[int, ...]]:
    """(label, words, gpus) of a GPU nvidia-smi reports: ``GPU3``, ``GPU 3 (0000:1b:00.0)``, (3,)."""
    path = _path_of(ctx, gpu.pci)
    if path is None:
        return gpu.pci, f"the GPU at {gpu.pci} (not on this tree's PCI bus)", ()
    return path.label, f"GPU {path.k} ({gpu.pci})", (path.k,)


def boot_time(now: datetime, live: bool) -> datetime:
    """When this node booted (``/proc/uptime``), for the journal's ``--since``; the epoch when unknown."""
    epoch = datetime(1970, 1, 1)
    if not live:
        return epoch
    try:
        text = read_bytes(UPTIME, fix="uptime is optional", max_bytes=256).decode("ascii", errors="replace")
        seconds = parse_float(text.split()[0] if text.split() else "", Where(UPTIME, "uptime"), maximum=1e10)
    except InputError:
        return epoch
    return now - timedelta(seconds=seconds)


def _smi_failed(ctx: Context) -> str | None:
    """Why nvidia-smi's report is missing on a node whose GPUs are on the PCI bus, when the tool ran and failed."""
    if not ctx.gpu_paths or not ctx.gpu_state.tool_failed:
        return None
    return (
        f"{len(ctx.gpu_paths)} GPUs on the PCI bus and no nvidia-smi report to judge them by: "
        f"{ctx.gpu_state.report_missing}"
    )


class SmiCheck(Check):
    """Base of the checks that judge ``nvidia-smi -q -x``: skipped, with the reason, without it; failed when the
    tool failed on a node that has GPUs."""

    def applies(self, ctx: Context) -> str | None:
        return _smi_or_why_not(ctx)

    def source_failed(self, ctx: Context) -> str | None:
        return _smi_failed(ctx)

    def run(self, ctx: Context) -> list[CheckResult]:
        report = ctx.gpu_state.report
        if report is None:  # applies() said so; narrowed here for the type checker
            return [self.result("skip", f"no nvidia-smi -q -x report: {ctx.gpu_state.report_missing}")]
        return self.judge(ctx, report)

    def judge(self, ctx: Context, report: SmiReport) -> list[CheckResult]:
        raise NotImplementedError


class GpuXid(Check):
    """No GPU or NVSwitch event since the node booted that takes it out of service: Xids (the line's own Fatal,
    Xid 154's recovery action, else NVIDIA's Xid catalogue through the profile's ``[gpudirect] fail_xids``), a GPU
    lost from the bus without an Xid line, and NVSwitch SXids (``bench.gpu.xid``)."""

    name = "gpu-xid"

    def applies(self, ctx: Context) -> str | None:
        return _no_gpu(ctx) or ctx.kernel_log_missing()

    def run(self, ctx: Context) -> list[CheckResult]:
        log = link_flaps.read_kernel_log(ctx.kernel_log, boot_time(ctx.now(), ctx.live))
        if log.skipped is not None:
            return [self.result("skip", f"kernel log not read: {log.skipped}")]
        lines = xid.since_boot(log.lines)
        found = xid.events(lines)
        gpu_events = [e for e in found if e.kind != "SXid"]
        out = []
        for path in ctx.gpu_paths:
            mine = xid_report.current([e for e in gpu_events if e.matches(path.address)])
            if not mine:
                continue
            said = xid_report.say(mine, ctx.profile.gpudirect.fail_xids)
            reason = f"GPU {path.k} ({path.address}): {said.words} since boot in {log.source}; latest: {said.latest}"
            action = ctx.action("gpu-xid", device=f"GPU {path.k}", pci=path.address)
            out.append(self.result(said.status, reason, path.label, action=action, gpus=(path.k,)))
        out += self._switches(ctx, [e for e in found if e.kind == "SXid"], log.source)
        stray = [e for e in gpu_events if not any(e.matches(p.address) for p in ctx.gpu_paths)]
        if stray:
            buses = listed(sorted({e.bus for e in stray}))
            out.append(self.result("warn", f"Xid events for PCI {buses}, no GPU of this node: {stray[-1].line[:200]}"))
        if not out:
            reason = (
                f"no Xid event since boot in {log.source} ({len(lines)} lines read; no SXid, no GPU lost from the bus)"
            )
            out.append(self.result("pass", reason))
        return out

    def _switches(self, ctx: Context, events: list[xid.Xid], source: str) -> list[CheckResult]:
        """One result per NVSwitch with SXids, named by its driver name and PCI address; a fatal one stalls the
        NVLink traffic of every GPU through it, so it names them all."""
        out = []
        for bus in dict.fromkeys(e.bus for e in events):
            mine = [e for e in events if e.bus == bus]
            switch = f"NVSwitch {mine[0].switch or '?'}"
            said = xid_report.say(mine, ctx.profile.gpudirect.fail_xids)
            reason = f"{switch} ({bus}.0): {said.words} since boot in {source}; latest: {said.latest}"
            action = ctx.action("gpu-xid", device=switch, pci=f"{bus}.0")
            gpus = tuple(p.k for p in ctx.gpu_paths) if said.status == "fail" else ()
            out.append(self.result(said.status, reason, mine[0].switch or "NVSwitch", action=action, gpus=gpus))
        return out


class GpuEcc(SmiCheck):
    """The GPUs' memory as NVIDIA's memory error management guide judges it (docs/design.md, "One verdict"):
    failing on what needs a GPU reset (a pending row remap, repair or page retirement, uncorrectable errors
    since the driver loaded) and on what needs the GPU replaced (a failed remap, unrepairable memory, SRAM
    errors past NVIDIA's threshold); rows remapped or pages retired in the past with nothing pending are the
    mechanism working, and pass."""

    name = "gpu-ecc"

    def judge(self, ctx: Context, report: SmiReport) -> list[CheckResult]:
        out = []
        unknown = []
        history = []
        for gpu in report.gpus:
            label, words, gpus = _who(ctx, gpu)
            finding = ecc_findings(gpu)
            if finding is None:
                unknown.append(words)
                continue
            if finding.history:
                history.append(f"{label} {finding.history}")
            status: Status | None = "fail" if finding.fails else "warn" if finding.warns else None
            if status is None:
                continue
            action = ctx.action("gpu-ecc", device=words.split(" (")[0], pci=gpu.pci)
            said = "; ".join(finding.fails + finding.warns)
            out.append(self.result(status, f"{words}: {said}", label, action=action, gpus=gpus))
        judged = len(report.gpus) - len(unknown)
        if not judged:
            return [self.result("skip", f"{report.source} reports no ECC state for {listed(unknown)}")]
        if not out:
            reason = f"no uncorrectable ECC error since the driver loaded, nothing pending or failed on {judged} GPUs"
            if history:  # said, so that a reader sees it was read and judged healthy (NVIDIA: the mechanism works)
                reason += f"; past repairs with nothing pending (healthy): {listed(history)}"
            out.append(self.result("pass", reason))
        return out


class GpuClocks(SmiCheck):
    """No GPU has its clocks held down by heat or a power brake (nvidia-smi's clock event reasons)."""

    name = "gpu-clocks"

    def judge(self, ctx: Context, report: SmiReport) -> list[CheckResult]:
        out = []
        judged = 0
        for gpu in report.gpus:
            status, held = clock_verdict(gpu)
            if status == "skip":
                continue
            judged += 1
            label, words, gpus = _who(ctx, gpu)
            action = ctx.action("gpu-clocks", device=words.split(" (")[0], pci=gpu.pci)
            if held:
                reason = f"{words}: clocks held down by {', '.join(held)}"
                out.append(self.result(status, reason, label, action=action, gpus=gpus))
        if not judged:
            return [self.result("skip", f"{report.source} has no clock event reasons (clocks_event_reasons)")]
        if not out:
            out.append(self.result("pass", f"no clock held down by heat, power or configuration on {judged} GPUs"))
        return out


def clock_verdict(gpu: SmiGpu) -> tuple[Status, list[str]]:
    """(status, the reasons holding its clocks down) of one GPU: fail on heat or a power brake, warn on
    configuration (the power cap, low application clocks), pass otherwise (``gpu_idle`` is a GPU with no work,
    ``sync_boost`` a setting); skip without a clock event section."""
    if not gpu.clock_events_known:
        return "skip", []
    bad = [e for e in gpu.clock_events if e in FAILING_CLOCK_EVENTS]
    odd = [e for e in gpu.clock_events if e in WARNING_CLOCK_EVENTS]
    return ("fail" if bad else "warn" if odd else "pass"), bad + odd


class NvLinks(Check):
    """Every GPU's NVLinks active at one speed, the fabric's NVLink bandwidth full, and MIG off (MIG instances
    have no NVLink or peer-to-peer path: NVIDIA's MIG user guide)."""

    name = "nvlink"

    def applies(self, ctx: Context) -> str | None:
        why = _no_gpu(ctx)
        state = ctx.gpu_state
        if why is None and state.report is None and state.links is None:
            return f"no nvidia-smi output: {state.report_missing}"
        return why

    def source_failed(self, ctx: Context) -> str | None:
        return _smi_failed(ctx)

    def run(self, ctx: Context) -> list[CheckResult]:
        state = ctx.gpu_state
        out = []
        for gpu in state.report.gpus if state.report is not None else ():
            label, words, gpus = _who(ctx, gpu)
            action = ctx.action("nvlink", device=words.split(" (")[0], pci=gpu.pci)
            # MIG is a setting, not a link: its own action, whatever the profile says for NVLinks
            mig_off = (
                f"turn MIG off on {ctx.node} {words} (nvidia-smi -i {gpu.pci} -mig 0, then reset the GPU): NCCL "
                "needs whole GPUs"
            )
            if gpu.mig_current == "Enabled":
                reason = f"{words}: MIG is enabled: its instances have no NVLink or GPU peer-to-peer path"
                out.append(self.result("fail", reason, label, action=mig_off, gpus=gpus))
            elif gpu.mig_pending == "Enabled":
                reason = f"{words}: MIG is enabled from the next GPU reset"
                out.append(self.result("warn", reason, label, action=mig_off, gpus=gpus))
            if gpu.fabric_bandwidth == "Degraded":
                reason = f"{words}: the NVSwitch fabric reports its NVLink bandwidth Degraded"
                out.append(self.result("fail", reason, label, action=action, gpus=gpus))
        out += self._links(ctx)
        if out:
            return out
        if state.links is None:
            return [
                self.result("skip", f"MIG off, fabric bandwidth not degraded; NVLink states: {state.links_missing}")
            ]
        judged = nvlink.judge(state.links)
        if judged.no_nvlink is not None:
            return [self.result("skip", judged.no_nvlink)]
        listed_links = [g for g in state.links if g.links]
        up = sum(len(g.active) for g in listed_links)
        by_design = sorted({n for g in listed_links for n in g.inactive})
        unused = (
            f"; link {', '.join(map(str, by_design))} inactive on every GPU, as its bridges leave them"
            if by_design
            else ""
        )
        return [self.result("pass", f"all {up} NVLinks of {len(listed_links)} GPUs up at one speed{unused}; MIG off")]

    def _links(self, ctx: Context) -> list[CheckResult]:
        """A FAIL per GPU with a link down or slow (``nvlink.judge``), naming its index, PCI address and links."""
        gpus = ctx.gpu_state.links or ()
        judged = nvlink.judge(gpus)
        paths = {p.k: p for p in ctx.gpu_paths}
        if judged.every_link_down and len(judged.faults) > 1:
            listed_links = [g for g in gpus if g.links or g.all_down]
            return [
                self.result(
                    "fail",
                    f"every NVLink of the {len(listed_links)} GPUs is inactive or down "
                    "(the fabric manager not running, or the NVLink fabric down)",
                    action=ctx.action("nvlink", device="every GPU", pci="-"),
                    gpus=paths,
                )
            ]
        out = []
        for fault in judged.faults:
            pci = _nvlink_pci(ctx, fault.index)
            reason = f"GPU {fault.index} ({pci}): {fault.why}"
            action = ctx.action("nvlink", device=f"GPU {fault.index}", pci=pci)
            out.append(self.result("fail", reason, f"GPU{fault.index}", action=action, gpus=(fault.index,)))
        return out


def _nvlink_pci(ctx: Context, index: int) -> str:
    """GPU ``index``'s PCI address: from the PCI tree, else from the ``-q -x`` report (nvidia-smi's index is its
    PCI bus order, the report's order); "PCI address unknown" when neither has it."""
    path = next((p for p in ctx.gpu_paths if p.k == index), None)
    if path is not None:
        return path.address
    report = ctx.gpu_state.report
    if report is not None and 0 <= index < len(report.gpus):
        return report.gpus[index].pci
    return "PCI address unknown"


class FabricManager(SmiCheck):
    """Every GPU registered with the NVSwitch fabric (state ``Completed``, status ``Success``): the fabric
    manager is running and has finished (NVIDIA Fabric Manager user guide; Hopper and later report it)."""

    name = "fabric-manager"

    def judge(self, ctx: Context, report: SmiReport) -> list[CheckResult]:
        reporting = [g for g in report.gpus if fabric_verdict(g) != "skip"]
        if not reporting:
            return [self.result("skip", "the GPUs report no NVSwitch fabric state (pre-Hopper, or no NVSwitch)")]
        waiting = [g for g in reporting if fabric_verdict(g) == "fail"]
        states = {(g.fabric_state, g.fabric_status) for g in waiting}
        out = []
        if len(waiting) == len(reporting) > 1 and len(states) == 1:
            # Every GPU waits alike: one cause, the fabric manager itself, said once.
            state, status = states.pop()
            shown = f", status {status}" if status else ""
            reason = (
                f"all {len(waiting)} GPUs: fabric state {state}{shown}: the fabric manager has not registered them, "
                "so CUDA and NCCL cannot use their NVLinks"
            )
            everyone = [k for g in waiting for k in _who(ctx, g)[2]]
            return [self.result("fail", reason, action=ctx.action("fabric-manager"), gpus=everyone)]
        for gpu in waiting:
            label, words, gpus = _who(ctx, gpu)
            status = f", status {gpu.fabric_status}" if gpu.fabric_status else ""
            reason = (
                f"{words}: fabric state {gpu.fabric_state}{status}: the fabric manager has not registered it, so "
                "CUDA and NCCL cannot use its NVLinks"
            )
            out.append(self.result("fail", reason, label, action=ctx.action("fabric-manager"), gpus=gpus))
        if not out:
            out.append(self.result("pass", f"fabric state Completed on all {len(reporting)} GPUs"))
        return out


def fabric_verdict(gpu: SmiGpu) -> Status:
    """One GPU's registration with the NVSwitch fabric: pass when ``Completed`` with status ``Success`` (NVML:
    the status is read only once the state is complete), fail in any other state, skip where the GPU has no
    fabric state (``N/A`` before Hopper, ``Not Supported`` on a GPU without NVSwitch)."""
    if gpu.fabric_state in (None, "Not Supported"):
        return "skip"
    return "pass" if gpu.fabric_state == "Completed" and gpu.fabric_status in (None, "Success") else "fail"
