"""The checks of the GPUDirect path between GPU k and its rail NIC: PCIe links, ACS, the IOMMU, peer memory,
the NIC's MaxReadReq and its port's MTU (docs/preflight.md, "The GPUDirect path").

Each result that finds a fault names the part, says why it costs GPUDirect bandwidth, carries the profile's
action and the GPUs whose path it sits on (``CheckResult.gpus``), so that ``rails`` and ``accept`` can tie it to
the rail it slows. A check without its data source skips with the reason; none passes what it did not read.
"""

from __future__ import annotations

from bench.fabric import devinfo, iommu, pci_config, pcie, peer_memory
from bench.nccllogs import nccl_evidence
from bench.preflight.check_base import Check, CheckResult, Context, GpuPath, RailsFound, listed


def _no_gpu(ctx: Context) -> str | None:
    return None if ctx.gpu_paths else "no GPU on this machine (no NVIDIA GPU on the PCI bus)"


def part(ctx: Context, function: pcie.PciFunction) -> tuple[str, str, str]:
    """(label, words, name) of a PCI function on a GPU's path: ``GPU3``, ``GPU 3``, ``GPU 3``; ``mlx5_4`` thrice;
    or the port by its address and kind: ``0000:1a:00.0``, ``PCIe switch downstream port 0000:1a:00.0``, ``the
    PCIe switch downstream port`` (for an action, which gives the address apart)."""
    for path in ctx.gpu_paths:
        if path.gpu.pci_address == function.address:
            return path.label, f"GPU {path.k}", f"GPU {path.k}"
        if path.nic_pci == function.address and path.hca:
            return path.hca, path.hca, path.hca
    kind = f"PCIe {function.pcie.port_name}" if function.pcie is not None else "PCIe bridge"
    return function.address, f"{kind} {function.address}", f"the {kind}"


def _on_paths(gpus: set[int], ctx: Context) -> str:
    paths = [p for p in ctx.gpu_paths if p.k in gpus]
    if len(paths) == 1:
        path = paths[0]
        return f"{path.label}" + (f" -> {path.hca}" if path.hca else "")
    return listed([p.label for p in paths])


class PcieLinkSpeed(Check):
    """Every link on GPU k's path to its rail NIC (or, without one, from its root port down) at what both its
    ends support."""

    name = "pcie-link"

    def applies(self, ctx: Context) -> str | None:
        return _no_gpu(ctx)

    def run(self, ctx: Context) -> list[CheckResult]:
        found: dict[tuple[str | None, str], tuple[pcie.PcieLink, set[int]]] = {}
        peer: set[tuple[str | None, str]] = set()
        for path in ctx.gpu_paths:
            # The GPU-NIC path, then the GPU's own path from its root port: a switch's upstream link carries no
            # GPU-NIC traffic under that switch, but every copy between host memory and the GPU.
            for on_peer_path, chain in ((True, path.nic_chain), (False, ())):
                for link in pcie.path_links(ctx.sysfs, path.gpu.pci_path, chain):
                    key = (link.above.address if link.above else None, link.below.address)
                    found.setdefault(key, (link, set()))[1].add(path.k)
                    if on_peer_path or not path.nic_chain:
                        peer.add(key)
        known = [(key, link, gpus) for key, (link, gpus) in found.items() if link.width is not None or link.speed_gts]
        if not known:
            where = listed([p.address for p in ctx.gpu_paths], 4)
            return [self.result("skip", f"sysfs shows no PCIe link speed or width on the paths of {where}")]
        out = [
            self._judged(ctx, link, gpus, host_side=key not in peer)
            for key, link, gpus in known
            if link.degraded or link.down
        ]
        if not out:
            out.append(self.result("pass", _healthy(ctx, [link for _, link, _ in known])))
        return out

    def _judged(self, ctx: Context, link: pcie.PcieLink, gpus: set[int], *, host_side: bool) -> CheckResult:
        label, words, name = part(ctx, link.below)
        above = f" to {link.above.address}" if link.above is not None else ""
        if link.down:
            reason = f"{words} ({link.below.address}): its PCIe link{above} is down (width 0)"
            return self.result("fail", reason, label, action=self._act(ctx, name, link), gpus=gpus)
        paths = [p for p in ctx.gpu_paths if p.k in gpus]
        if host_side:
            where = words if label == link.below.address else f"{words} ({link.below.address})"
            reason = (
                f"{where} above {_on_paths(gpus, ctx)}: PCIe link{above} at "
                f"{link.describe()}; GPU-NIC traffic turns below it, but every copy between host memory and "
                f"{listed([p.label for p in paths])} crosses it at that rate"
            )
            return self.result("fail", reason, label, action=self._act(ctx, name, link), gpus=gpus)
        if link.below.is_gpu:
            nic = f", rail NIC {paths[0].hca}" if len(paths) == 1 and paths[0].hca else ""
            where = f"{words} ({link.below.address}{nic})"
        else:
            where = f"{words} ({link.below.address}) on the path of {_on_paths(gpus, ctx)}"
        reason = f"{where}: PCIe link{above} at {link.describe()}"
        rates = [p.rate_gbps for p in ctx.gpu_paths if p.k in gpus and p.rate_gbps]
        available = link.available_gbps
        # A Grace superchip's GPU reaches its NIC over NVLink-C2C, not over its own PCIe link.
        c2c = link.below.superchip is not None
        if rates and available is not None and available < max(rates) and not c2c:
            reason += f", under the rail's {max(rates):g} Gb/s line rate"
        if link.slow and not link.narrow and link.below.is_gpu:
            # nvidia-smi(1): the current generation "may be reduced when the GPU is not in use".
            reason += "; an idle NVIDIA GPU may lower its link speed: read it again under load before reseating"
            return self.result("warn", reason, label, action=self._act(ctx, name, link), gpus=gpus)
        return self.result("fail", reason, label, action=self._act(ctx, name, link), gpus=gpus)

    def _act(self, ctx: Context, words: str, link: pcie.PcieLink) -> str:
        return ctx.action("pcie-link", device=words, pci=link.below.address)


def _healthy(ctx: Context, links: list[pcie.PcieLink]) -> str:
    gpus = [link for link in links if link.below.is_gpu]
    nics = {p.nic_pci for p in ctx.gpu_paths if p.nic_pci}
    shown = []
    for what, chosen in (("GPUs", gpus), ("NICs", [link for link in links if link.below.address in nics])):
        widths = sorted({f"x{link.width} at {pcie.speed_words(link.speed_gts)}" for link in chosen})
        if widths:
            shown.append(f"{what} {', '.join(widths)}")
    target = "their root ports and rail NICs" if nics else "their root ports"
    summary = f" ({'; '.join(shown)})" if shown else ""
    count = len(ctx.gpu_paths)
    return f"all {len(links)} PCIe links between the {count} GPUs and {target} at full width and speed{summary}"


class PcieAcs(Check):
    """No bridge between GPU k and its rail NIC redirects peer-to-peer traffic to the root complex (NCCL's
    troubleshooting guide: "PCI Access Control Services (ACS) ... must be disabled" for GPUDirect)."""

    name = "pcie-acs"

    def applies(self, ctx: Context) -> str | None:
        if not ctx.gpu_paths:
            return _no_gpu(ctx)
        if not any(p.nic_chain for p in ctx.gpu_paths):
            return "no rail NIC placed next to a GPU: no GPU-to-NIC peer path to judge"
        if not any(_peers(p) for p in ctx.gpu_paths):
            # A GPU and NIC under different root ports (a Grace superchip's C2C GPU, a NIC on the CPU) exchange
            # nothing across a PCIe switch: ACS on those root ports redirects no GPU-NIC peer traffic.
            return (
                "no GPU shares a PCIe switch with its rail NIC: no peer-to-peer path under a switch for ACS to divert"
            )
        return None

    def run(self, ctx: Context) -> list[CheckResult]:
        bridges: dict[str, set[int]] = {}
        for path in ctx.gpu_paths:
            if _peers(path):
                for address in pcie.bridges_on_path(path.gpu.pci_path, path.nic_chain):
                    bridges.setdefault(address, set()).add(path.k)
        out: list[CheckResult] = []
        unread: list[tuple[str, int]] = []
        for address, gpus in bridges.items():
            function = pcie.pci_function(ctx.sysfs, address)
            config = function.config
            if config is None or not config.extended:
                unread.append((address, config.readable if config else 0))
                continue
            acs = config.acs
            if acs is None or not acs.redirects:
                continue
            label, words, name = part(ctx, function)
            reason = (
                f"{words} on the path of {_on_paths(gpus, ctx)}: {acs.describe()}: {' and '.join(acs.redirects)} send "
                "GPU-NIC peer traffic up to the root complex instead of across the switch"
            )
            action = ctx.action("pcie-acs", device=name, pci=address)
            out.append(self.result("fail", reason, label, action=action, gpus=gpus))
        if unread and len(unread) == len(bridges):
            address, got = unread[0]
            return [
                self.result(
                    "skip",
                    f"ACS control sits in the extended configuration space, which only root can read "
                    f"({address}/config gave {got} of {pci_config.EXTENDED_BYTES} bytes): run check as root",
                )
            ]
        if not out:
            also = f"; {len(unread)} not readable ({unread[0][0]})" if unread else ""
            out.append(
                self.result(
                    "pass",
                    f"no ACS redirection on the {len(bridges) - len(unread)} bridges between GPUs "
                    f"and their rail NICs{also}",
                )
            )
        return out


def _peers(path: GpuPath) -> bool:
    """Whether GPU k and its rail NIC are peers under a PCIe bridge they share (PIX or PXB): the only path on
    which an ACS redirect sends their traffic up to the root complex."""
    return bool(path.nic_chain) and pcie.shares_bridge(path.gpu.pci_path, path.nic_chain)


class Iommu(Check):
    """The IOMMU does not translate the DMA of the GPUs and their rail NICs (identity/passthrough, or off)."""

    name = "iommu"

    def applies(self, ctx: Context) -> str | None:
        return _no_gpu(ctx)

    def run(self, ctx: Context) -> list[CheckResult]:
        parts = _dma_parts(ctx)
        domains = {address: iommu.domain(ctx.sysfs, address) for address in parts}
        params = iommu.iommu_parameters(iommu.kernel_cmdline(ctx.live))
        cmdline = f"; kernel command line: {' '.join(params)}" if params else ""
        translated = [address for address, domain in domains.items() if domain.translating]
        out = []
        if translated and len(translated) == len(domains) > 2:
            # One cause, the node's IOMMU mode: said once, for every GPU it slows.
            types = listed(sorted({d.type or "" for d in domains.values()}))
            everyone = {k for _, _, ks in parts.values() for k in ks}
            reason = (
                f"the IOMMU translates the DMA of all {len(domains)} GPUs and rail NICs (IOMMU groups of type "
                f"{types}), which slows or breaks GPUDirect RDMA{cmdline}"
            )
            out.append(self.result("fail", reason, action=ctx.action("iommu"), gpus=everyone))
            translated = []
        for address in translated:
            label, words, gpus = parts[address]
            domain = domains[address]
            reason = (
                f"{words} ({address}) is in IOMMU group {domain.group} of type {domain.type}: its DMA is "
                f"translated, which slows or breaks GPUDirect RDMA{cmdline}"
            )
            out.append(self.result("fail", reason, label, action=ctx.action("iommu"), gpus=gpus))
        out += [self.result("warn", reason, label, gpus=gpus) for reason, label, gpus in _unmanaged(parts, domains)]
        if out:
            return out
        grouped = [d for d in domains.values() if d.group is not None]
        if not grouped:
            where = "no IOMMU under class/iommu" if not iommu.units(ctx.sysfs) else "no GPU or rail NIC in a group"
            return [self.result("pass", f"no IOMMU translates their DMA ({where}){cmdline}")]
        unknown = [d for d in grouped if d.type is None]
        if unknown:
            if any(p in ("iommu=pt", "iommu.passthrough=1") for p in params):
                return [self.result("pass", f"IOMMU in passthrough by the kernel command line ({' '.join(params)})")]
            reason = (
                f"{len(grouped)} devices are in IOMMU groups whose type the kernel does not say (before 5.11)"
                f"{cmdline or '; the kernel command line does not set iommu=pt'}"
            )
            return [self.result("warn", reason, action=ctx.action("iommu"))]
        return [self.result("pass", f"IOMMU in passthrough (identity domains) for all {len(grouped)} devices")]


def _nccl_said_dmabuf(ctx: Context) -> str | None:
    """Which host's NCCL said DMA-BUF is available, on which CUDA devices (from the ``--nccl-log`` files as
    ``bench.nccllogs`` reads them); None when none did."""
    for name, host in nccl_evidence.hosts(ctx.logs).items():
        if host.dmabuf_gpus:
            devices = ", ".join(str(d) for d in host.dmabuf_gpus)
            return f"NCCL on {name or 'the log'} said DMA-BUF is available on GPU device {devices}"
    return None


class GpuPeerMemory(Check):
    """The NIC can reach GPU memory (``nvidia_peermem``, or DMA-BUF); NCCL's own ``GDR 0`` is evidence too, and so
    is its ``DMA-BUF is available on GPU device N``. The kernel's release is ``uname``'s on the live node, the
    kernel log's boot banner (``--kernel-log``) for a copied tree (``bench.fabric.peer_memory``)."""

    name = "gpu-peer-memory"

    def applies(self, ctx: Context) -> str | None:
        if not ctx.profile.uses_ib_verbs:
            return f"profile {ctx.profile.name} uses {ctx.profile.transport}: GPUDirect RDMA runs over IB verbs"
        return _no_gpu(ctx)

    def run(self, ctx: Context) -> list[CheckResult]:
        everyone = tuple(p.k for p in ctx.gpu_paths)
        action = ctx.action("gpu-peer-memory")
        out = []
        for name, host in nccl_evidence.hosts(ctx.logs).items():
            if host.gdr_off is not None:
                fact = host.gdr_off
                reason = (
                    f"NCCL on {name or 'the log'} said GPUDirect RDMA is off: {fact.source}:{fact.line}: {fact.value}"
                )
                out.append(self.result("fail", reason, action=action, gpus=everyone))
        banner = peer_memory.kernel_banner(ctx.kernel_log) if ctx.kernel_log and not ctx.live else None
        found = peer_memory.read(ctx.sysfs, ctx.live, banner)
        if not found.driver_loaded:
            if not out:
                out.append(self.result("skip", "the NVIDIA driver is not loaded (no module/nvidia): nothing to judge"))
            return out
        possible = found.open_module is not False and found.kernel_dmabuf is not False
        nccl_said = _nccl_said_dmabuf(ctx) if possible else None
        if found.peermem is not None:
            out.append(self.result("pass", f"{found.peermem} is loaded: the NIC registers GPU memory directly"))
        elif found.open_module and found.kernel_dmabuf:
            where = f" ({found.kernel_source})" if found.kernel_source != "uname" else ""
            out.append(self.result("pass", f"DMA-BUF: the open GPU kernel module on Linux {found.kernel}{where}"))
        elif nccl_said is not None:
            out.append(self.result("pass", f"DMA-BUF: {nccl_said}"))
        elif found.open_module and found.kernel_dmabuf is None:
            reason = (
                "no nvidia_peermem; the open GPU kernel module allows DMA-BUF, if the kernel is 5.12 or later "
                "(a copied tree does not say which it is: give its kernel log with --kernel-log, or an NCCL log "
                "with --nccl-log)"
            )
            out.append(self.result("warn", reason, action=action, gpus=everyone))
        else:
            module = "the proprietary GPU kernel module" if found.open_module is False else "a GPU kernel module"
            kernel = f" on Linux {found.kernel}" if found.kernel and found.open_module else ""
            reason = (
                f"neither nvidia_peermem nor DMA-BUF ({module}{kernel}): NCCL stages every network transfer "
                "through host memory"
            )
            out.append(self.result("fail", reason, action=action, gpus=everyone))
        return out


class NicPcie(RailsFound):
    """Each rail NIC reads GPU memory with a MaxReadReq of at least the profile's (4096 by default)."""

    name = "nic-pcie"

    def run(self, ctx: Context) -> list[CheckResult]:
        wanted = ctx.profile.gpudirect.max_read_request
        rails = {p.device for p in ctx.rails}
        users: dict[str, set[int]] = {}
        for path in ctx.gpu_paths:
            if path.hca:
                users.setdefault(path.hca, set()).add(path.k)
        out = []
        unread = []
        read = 0
        for device in ctx.devices:
            if device.name not in rails or device.pci_address is None:
                continue
            function = pcie.pci_function(ctx.sysfs, device.pci_address)
            size = function.pcie.max_read_request if function.pcie is not None else None
            if size is None:
                unread.append((device, function.config.readable if function.config else 0))
                continue
            read += 1
            if size < wanted:
                reason = (
                    f"{device.name} ({device.pci_address}): PCIe MaxReadReq {size} bytes, under the profile's "
                    f"{wanted}: each DMA read from GPU memory fetches less, leaving the link idle between them"
                )
                action = ctx.action("nic-pcie", device=device.name, pci=device.pci_address)
                out.append(self.result("fail", reason, device.name, action=action, gpus=users.get(device.name, ())))
        if not read and unread:
            device, got = unread[0]
            return [
                self.result(
                    "skip",
                    f"MaxReadReq sits in the PCIe capability, past the header an unprivileged read gets "
                    f"({device.name}'s config gave {got} bytes): run check as root",
                )
            ]
        if not out and read:
            out.append(self.result("pass", f"all {read} rail HCAs read with MaxReadReq {wanted} bytes or more"))
        return out or [self.result("skip", "no rail HCA with a PCI address under class/infiniband")]


class PortMtu(RailsFound):
    """Each rail port runs an active MTU of at least the profile's (4096 by default)."""

    name = "port-mtu"

    def run(self, ctx: Context) -> list[CheckResult]:
        wanted = ctx.profile.gpudirect.mtu
        ib = [p for p in ctx.rails if p.link_layer == "InfiniBand"]
        mtus, why_not = _active_mtus(ctx, bool(ib))
        users: dict[str, set[int]] = {}
        for path in ctx.gpu_paths:
            if path.nic:
                users.setdefault(path.nic, set()).add(path.k)
        out = []
        for port in ctx.rails:
            mtu = mtus.get(port.name)
            if mtu is not None and mtu < wanted:
                said = f"active MTU {mtu} bytes, under the profile's {wanted}: more packets per byte"
                cause = _mtu_cause(port.link_layer, port.netdev, wanted)
                action = ctx.action("port-mtu", device=port.name)
                gpus = users.get(port.name, ())
                if cause:  # the port and where its MTU is set open the reason: no words of the port's alone
                    reason = f"{port.name}{cause}: {said}"
                    out.append(self.result("fail", reason, port.name, action=action, gpus=gpus))
                else:
                    out.append(self.on_device("fail", port.name, said, action=action, gpus=gpus))
        judged = [p for p in ctx.rails if p.name in mtus]
        if not judged:
            return [self.result("skip", f"no active MTU known for {listed([p.name for p in ctx.rails])}: {why_not}")]
        if not out:
            missing = [p.name for p in ctx.rails if p.name not in mtus]
            also = f"; not known for {listed(missing)} ({why_not})" if missing else ""
            out.append(self.result("pass", f"{len(judged)} rail ports at an active MTU of {wanted} or more{also}"))
        return out


def _mtu_cause(link_layer: str, netdev: str | None, wanted: int) -> str:
    """Where a port's active MTU is set, said beside it: on InfiniBand the subnet manager sets it (PortInfo
    NeighborMTU) to the lower MTU cap of the port and the switch port it is cabled to, so both ends and the SM's
    setting (OpenSM ``partitions.conf`` ``mtu=5`` is 4096) are where it is raised; on RoCE the kernel takes
    the largest MTU that fits in the interface's MTU less 96 bytes of headers (``ip link set <if> mtu``)."""
    if link_layer == "Ethernet":
        return f" (interface {netdev}: its MTU needs {wanted + devinfo.ROCE_OVERHEAD} bytes or more)" if netdev else ""
    return " (InfiniBand: set by the subnet manager from the MTU cap of the port and of its switch port)"


def _dma_parts(ctx: Context) -> dict[str, tuple[str, str, set[int]]]:
    """PCI address -> (label, words, the GPUs whose GPUDirect path it is on): each GPU and each rail NIC."""
    parts: dict[str, tuple[str, str, set[int]]] = {}
    for path in ctx.gpu_paths:
        parts.setdefault(path.address, (path.label, f"GPU {path.k}", set()))[2].add(path.k)
        if path.nic_pci and path.hca:
            parts.setdefault(path.nic_pci, (path.hca, path.hca, set()))[2].add(path.k)
    return parts


def _unmanaged(
    parts: dict[str, tuple[str, str, set[int]]], domains: dict[str, iommu.IommuDomain]
) -> list[tuple[str, str, set[int]]]:
    """(reason, label, gpus) for each part a user-space driver owns (an unmanaged IOMMU group)."""
    out = []
    for address, domain in domains.items():
        if domain.type == "unmanaged":
            label, words, gpus = parts[address]
            reason = f"{words} ({address}) is owned by a user-space driver (IOMMU group {domain.group} unmanaged)"
            out.append((reason, label, gpus))
    return out


def _active_mtus(ctx: Context, has_ib: bool) -> tuple[dict[str, int], str | None]:
    """Rail port -> its active MTU where known (InfiniBand from the live devices, RoCE from its interface's
    MTU), and why the InfiniBand ports' are not known."""
    mtus: dict[str, int] = {}
    why_not = None
    if has_ib and ctx.ibv_devinfo is not None:  # a copied tree's own node, as ibv_devinfo printed it there
        mtus = {p.name: p.active_mtu for p in devinfo.read_file(ctx.ibv_devinfo) if p.active_mtu is not None}
        why_not = f"--ibv-devinfo {ctx.ibv_devinfo} does not list it"
    elif has_ib and ctx.live:
        mtus, why_not = devinfo.read_live()
    elif has_ib:
        why_not = (
            f"an InfiniBand port's active MTU is not in sysfs, and {ctx.sysfs.root} is a copy: give that node's "
            "ibv_devinfo output with --ibv-devinfo"
        )
    for port in ctx.rails:
        if port.link_layer == "Ethernet" and port.netdev:
            interface = ctx.sysfs.read_int("class", "net", port.netdev, "mtu", maximum=1 << 20)
            roce = devinfo.roce_mtu(interface) if interface is not None else None
            if roce is not None:
                mtus[port.name] = roce
    return mtus, why_not
