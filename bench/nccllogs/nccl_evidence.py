"""Judge parsed NCCL logs against a profile: which devices NCCL used per host, and what is wrong.

``findings`` fails a log that shows an excluded device in use (mlx5_0 on a 1CC), a socket fallback on an
IB profile, or a link layer the profile does not expect; it warns about fewer rails than expected, NET
channels without GPUDirect RDMA, a net plugin that loaded and then failed, and NCCL WARN lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from bench.finding import EvidenceFinding
from bench.jsondoc import JSONObject
from bench.nccllogs.nccl_hostnet import HostNet, NcclLog
from bench.nccllogs.nccl_lines import Fact

if TYPE_CHECKING:
    from bench.profile.cluster import Profile

_LINK_LAYER = {"InfiniBand": "IB", "Ethernet": "RoCE"}


def device_matches(device: str, patterns: Iterable[str]) -> bool:
    """``mlx5_0:1`` matches ``mlx5_0`` (the whole HCA) and ``mlx5_0:1``; interfaces match by name."""
    name = device.split(":")[0]
    return any(device == p or name == p for p in patterns)


def _merge(a: HostNet, b: HostNet) -> HostNet:
    merged: dict[str, Any] = {}
    for f in fields(HostNet):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, tuple):
            merged[f.name] = tuple(dict.fromkeys((*x, *y)))
        elif f.name == "gdrdma":
            merged[f.name] = None if x is None and y is None else bool(x) or bool(y)
        elif isinstance(x, bool):
            merged[f.name] = x or y
        else:
            merged[f.name] = x if x is not None else y
    return replace(a, **merged)


def hosts(logs: Sequence[NcclLog]) -> dict[str, HostNet]:
    """Per-host evidence merged over several logs (one file per rank, as ``railbench run`` writes them)."""
    out: dict[str, HostNet] = {}
    for log in logs:
        for name, host in log.hosts.items():
            out[name] = _merge(out[name], host) if name in out else host
    return out


def _label(host: str) -> str:
    return host or "(lines without a host prefix)"


def _at(fact: Fact) -> str:
    return f"{fact.source or 'log'}:{fact.line}"


def _where(fact: Fact) -> JSONObject:
    return {"file": fact.source, "line": fact.line}


def host_evidence(host: HostNet) -> JSONObject:
    """Structured, traceable evidence of one host: each value with the file and line that gave it.

    ``listed_devices``: what NCCL's ``NET/<net> : Using`` lists and IB discovery lines named, with link
    layer; ``channel_devices``: the NICs channels went through (resolved from ``via NET/IB/<index>``);
    ``network``: ``Using network`` names and NET plugins NCCL initialised; ``plugins``: external net
    plugins that loaded; ``gdrdma``: whether NET channels used GPUDirect RDMA; ``nccl_version``; and
    ``socket_fallback``: the line that shows a fallback to sockets, if any.
    """
    facts = host.facts
    version = next((f for f in facts if f.kind == "nccl_version"), None)
    return {
        "nccl_version": {"value": version.value, **_where(version)} if version else None,
        "network": [{"name": f.value, **_where(f)} for f in facts if f.kind == "network"],
        "plugins": [{"name": f.value, **_where(f)} for f in facts if f.kind == "plugin"],
        "listed_devices": [
            {"device": f.value, "net": f.net, "link_layer": f.link_layer, **_where(f)}
            for f in facts
            if f.kind == "listed_device"
        ],
        "channel_devices": [
            {"device": f.value, "net": f.net, "gdrdma": f.gdrdma, **_where(f)}
            for f in facts
            if f.kind == "channel_device"
        ],
        "gdrdma": host.gdrdma,
        "transport": host.transport,
        "socket_fallback": {"line_text": host.socket_reason.value, **_where(host.socket_reason)}
        if host.socket_reason
        else None,
    }


def _link_layer_findings(host: HostNet, logs: Sequence[NcclLog], profile: Profile) -> list[EvidenceFinding]:
    """The IB devices NCCL used on ``host`` whose link layer is not the profile's rails' (none where the profile
    names no link layer or does not use IB verbs)."""
    wanted = _LINK_LAYER.get(profile.link_layer or "")
    if not wanted or not profile.uses_ib_verbs:
        return []
    odd = {
        dev.name: dev.link_layer
        for log in logs
        for using in log.usings
        if using.host == host.host and using.net == "IB"
        for dev in using.devices
        if dev.link_layer != wanted and not device_matches(dev.name, profile.excluded_devices)
    }
    if not odd:
        return []
    names = ", ".join(f"{name}/{layer}" for name, layer in odd.items())
    message = f"{_label(host.host)}: NCCL used {names}; the profile's rails are {profile.link_layer}"
    return [EvidenceFinding("fail", message, ",".join(odd), host.host)]


def _host_findings(host: HostNet, logs: Sequence[NcclLog], profile: Profile | None) -> list[EvidenceFinding]:
    out: list[EvidenceFinding] = []
    who = _label(host.host)
    used = (*host.devices, *host.channel_devices, *host.error_hcas, *host.socket_devices)
    if profile is not None:
        for device in dict.fromkeys(used):
            if device_matches(device, profile.excluded_devices):
                out.append(
                    EvidenceFinding("fail", f"{who}: NCCL used {device}, which the profile excludes", device, host.host)
                )
        if profile.uses_ib_verbs and host.transport == "Socket":
            # Quote the line that says so, as the log has it, and where it is.
            reason = host.socket_reason
            why = f"'{reason.value[:120]}' at {_at(reason)}" if reason else "Using network Socket"
            out.append(
                EvidenceFinding(
                    "fail",
                    f"{who}: NCCL fell back to sockets ({why}) on the {profile.name} profile, which expects IB verbs",
                    ",".join(host.socket_devices) or None,
                    host.host,
                )
            )
        out += _link_layer_findings(host, logs, profile)
        rails = [d for d in host.devices if not device_matches(d, profile.excluded_devices)]
        if profile.rail_count and rails and len(rails) < profile.rail_count:
            out.append(
                EvidenceFinding(
                    "warn",
                    f"{who}: NCCL opened {len(rails)} of {profile.rail_count} rails ({', '.join(rails)})",
                    None,
                    host.host,
                )
            )
        if profile.uses_ib_verbs and host.gdrdma is False and host.transport != "Socket":
            out.append(EvidenceFinding("warn", f"{who}: NET channels run without GPUDirect RDMA", None, host.host))
    through = len(host.channel_devices) + len(host.channel_nics)
    if profile is not None and profile.rail_count and 0 < through < profile.rail_count:
        nics = ", ".join((*host.channel_devices, *(f"NET/{n}" for n in host.channel_nics)))
        out.append(
            EvidenceFinding(
                "warn",
                f"{who}: channels went through {through} of {profile.rail_count} rails ({nics})",
                None,
                host.host,
            )
        )
    return out + _failure_findings(host)


def _failure_findings(host: HostNet) -> list[EvidenceFinding]:
    """What went wrong on ``host`` whatever the profile: a net plugin NCCL fell back from, a failed init, or its
    first WARN."""
    who = _label(host.host)
    out: list[EvidenceFinding] = []
    if host.plugin_fallback:
        plugin = next((p for p in host.plugins if not p.startswith("/")), host.plugins[0])
        out.append(
            EvidenceFinding("warn", f"{who}: net plugin {plugin} loaded, then failed; NCCL fell back", None, host.host)
        )
    if host.init_failures:
        out.append(_init_failed(host))
    elif host.warnings:  # an init failure quotes its own WARN
        more = f" (and {len(host.warnings) - 1} more)" if len(host.warnings) > 1 else ""
        out.append(EvidenceFinding("warn", f"{who}: NCCL WARN {host.warnings[0][:160]}{more}", None, host.host))
    return out


def _init_failed(host: HostNet) -> EvidenceFinding:
    """A fail naming the ranks of ``host`` whose communicator init failed, and the first one's reason: no
    collective runs on a communicator that a rank could not join."""
    failed, seen = host.init_failures, len(host.nccl_ranks)
    which = f"every rank the log shows ({len(failed)})" if len(failed) >= seen else f"{len(failed)} of {seen} ranks"
    gpus = sorted({f.device for f in failed if f.device is not None})
    on = f" (GPU {', '.join(map(str, gpus))})" if gpus else ""
    first = failed[0]
    return EvidenceFinding(
        "fail",
        f"{_label(host.host)}: NCCL init failed on {which}{on}: '{first.reason[:160]}' at "
        f"{first.source or 'log'}:{first.line}",
        None,
        host.host,
    )


def findings(logs: Sequence[NcclLog], profile: Profile | None) -> list[EvidenceFinding]:
    """Everything the logs say is wrong for ``profile`` (None: only profile-independent warnings)."""
    merged = hosts(logs)
    out = [
        f
        for h in merged.values()
        if h.has_network_evidence or h.init_failures
        for f in _host_findings(h, logs, profile)
    ]
    out += dead_links(merged)
    if not any(h.has_network_evidence or h.init_failures for h in merged.values()):
        out.append(
            EvidenceFinding(
                "warn", "the NCCL logs have no network lines: run NCCL with NCCL_DEBUG=INFO (subsystems INIT,NET)"
            )
        )
    return out


@dataclass(frozen=True)
class LinkEnd:
    """One end of a link NCCL's completion errors point at: its out-of-band address, and where known its host
    and the HCA its own errors named."""

    address: str
    host: str | None
    hca: str | None

    def words(self) -> str:
        if self.host is None:
            return self.address
        said = ", ".join(filter(None, (self.address, self.hca)))
        return f"{self.host} ({said})" if said else self.host


@dataclass(frozen=True)
class DeadLink:
    """A link that died under NCCL: one end when the hosts' errors converge on it; both ends of a pair when each
    names only the other (two nodes, or a point-to-point pair), which the logs alone cannot tell apart. With
    ``local`` set, the one end is a host whose own HCA failed the work (a local completion status,
    ``bench.nccllogs.ib_completion``), not its link."""

    ends: tuple[LinkEnd, ...]
    by: tuple[str, ...]
    """The hosts whose NCCL got completion errors from it."""
    refused: str | None = None
    """Set when every completion error naming this one end was the peer refusing the work
    (``ib_completion.REFUSED``, e.g. ``status 10 (IBV_WC_REM_ACCESS_ERR)``): its link carried them, its memory
    registration or HCA said no."""
    local: str | None = None
    """The local status its own NCCL reported (``status 4 (IBV_WC_LOC_PROT_ERR)``), or the fault async event its
    HCA raised (``async event 'local access violation work queue error' on mlx5_0:1``)."""

    def finding(self) -> EvidenceFinding:
        if self.local is not None:
            (end,) = self.ends
            message = (
                f"{end.words()}: its own HCA failed NCCL's work ({self.local}, a local error): that host's HCA, "
                "its driver or its GPUDirect RDMA path, not the link to its peers"
            )
            return EvidenceFinding("fail", message, end.hca, end.host or end.address)
        if len(self.ends) == 1 and self.refused is not None:
            (end,) = self.ends
            message = (
                f"{end.words()}: its HCA refused NCCL's RDMA work ({self.refused}, answered by that end, so the "
                f"link carries packets): its GPU memory registration (nvidia_peermem or DMA-BUF, the IOMMU) or its "
                f"HCA, not its cable; NCCL on {', '.join(self.by)} got the errors"
            )
            return EvidenceFinding("fail", message, end.hca, end.host or end.address)
        if len(self.ends) == 1:
            (end,) = self.ends
            message = f"{end.words()}: its link died: NCCL on {', '.join(self.by)} got completion errors from it"
            return EvidenceFinding("fail", message, end.hca, end.host or end.address)
        a, b = self.ends
        message = (
            f"the link between {a.words()} and {b.words()} died: each end's NCCL got completion errors from the "
            "other: one end's cable or the switch path between them, which their ports' link_downed counters tell"
        )
        return EvidenceFinding("fail", message)


def _hca_of(host: HostNet) -> str | None:
    """The HCA a host's own completion errors named (NCCL 2.22+), else the first its WARN lines named."""
    named = [c.hca for c in host.completions if c.hca] or list(host.error_hcas)
    return named[0] if named else None


def local_failures(merged: Mapping[str, HostNet]) -> list[DeadLink]:
    """The hosts whose own completion errors carry a local status, or whose HCA raised a fault async event
    (``bench.nccllogs.ib_completion``): their own HCA is named, never the peer."""
    out = []
    for name, host in sorted(merged.items()):
        local = next((c for c in host.completions if c.points_at == "local"), None)
        event = next((e for e in host.async_events if e.fault), None)
        if local is not None:
            hca, words = local.hca or _hca_of(host), local.words()
        elif event is not None:
            hca, words = event.hca or _hca_of(host), event.words()
        else:
            continue
        end = LinkEnd(host.oob_addresses[0] if host.oob_addresses else "", name, hca)
        out.append(DeadLink((end,), (name,), local=words))
    return out


def _refused(merged: Mapping[str, HostNet], by: set[str], address: str) -> str | None:
    """The refusal status when every completion error the hosts ``by`` got from ``address`` was one
    (``Completion.refused``); None when any says the path failed (a retry ran out: the link)."""
    said = [c for name in by for c in merged[name].completions if c.peer == address and c.points_at == "peer"]
    return said[0].words() if said and all(c.refused for c in said) else None


def dead_link_ends(merged: Mapping[str, HostNet]) -> list[DeadLink]:
    """The links the hosts' completion errors converge on.

    A link that dies mid-measurement makes NCCL on every peer that talks to it log ``Got completion from peer
    <its address>`` (status 12 is IBV_WC_RETRY_EXC_ERR: the transport's retries ran out), and its own NCCL
    log the peers' addresses, one each. The address most hosts name is the dead end; each host's own ``OOB``
    address says whose it is, and that host's own completion errors name its HCA. Where no address is named by
    more than one host and two hosts name each other, the logs cannot tell which end died: the pair is said.
    A host whose own errors are local (``local_failures``) is named for its HCA, first; a link with it as an
    end is that same fault, not another."""
    local = local_failures(merged)
    faulty = {end.host for link in local for end in link.ends}
    owner = {address: name for name, host in merged.items() for address in host.oob_addresses}
    named: dict[str, set[str]] = {}
    for name, host in merged.items():
        for address in host.error_peers:
            named.setdefault(address, set()).add(name)
    if not named:
        return local

    def end(address: str) -> LinkEnd:
        peer = owner.get(address)
        return LinkEnd(address, peer, _hca_of(merged[peer]) if peer is not None and peer in merged else None)

    most = max(len(by) for by in named.values())
    out: list[DeadLink] = []
    paired: set[str] = set()
    for address, by in sorted(named.items()):
        if len(by) < most or address in paired:
            continue
        (namer,) = by if most == 1 else (None,)
        mutual = [a for a in merged[namer].oob_addresses if named.get(a) == {owner.get(address)}] if namer else []
        if mutual:
            paired.update((address, mutual[0]))
            out.append(DeadLink(tuple(sorted((end(address), end(mutual[0])), key=LinkEnd.words)), ()))
        else:
            out.append(DeadLink((end(address),), tuple(sorted(by)), _refused(merged, by, address)))
    return local + [link for link in out if not any(e.host in faulty for e in link.ends)]


def dead_links(merged: Mapping[str, HostNet]) -> list[EvidenceFinding]:
    """:func:`dead_link_ends`, each as a fail."""
    return [d.finding() for d in dead_link_ends(merged)]


def host_summary(host: HostNet) -> JSONObject:
    """JSON-able per-host evidence."""
    return {
        "nccl_version": host.nccl_version,
        "transport": host.transport,
        "networks": list(host.networks),
        "devices": list(host.devices),
        "channel_devices": list(host.channel_devices),
        "unresolved_channel_nics": list(host.channel_nics),
        "socket_devices": list(host.socket_devices),
        "other_devices": list(host.other_devices),
        "gdrdma": host.gdrdma,
        "sharp": host.sharp,
        "nccl_ib_hca": list(host.nccl_ib_hca),
        "plugins": list(host.plugins),
        "plugin_fallback": host.plugin_fallback,
        "ranks": list(host.ranks),
        "error_hcas": list(host.error_hcas),
        "warnings": len(host.warnings),
        "init_failures": [
            {"pid": f.pid, "device": f.device, "reason": f.reason, "file": f.source, "line": f.line}
            for f in host.init_failures
        ],
        "evidence": host_evidence(host),
    }


def evidence(logs: Sequence[NcclLog], profile: Profile | None) -> JSONObject:
    """The ``nccl_evidence`` block of run.json: per-host evidence, findings and a verdict."""
    merged = hosts(logs)
    found = findings(logs, profile)
    verdict = "fail" if any(f.severity == "fail" for f in found) else "warn" if found else "pass"
    return {
        "profile": profile.name if profile is not None else None,
        "logs": [log.source for log in logs],
        "nccl_versions": list(dict.fromkeys(v for log in logs for v in log.versions)),
        "hosts": {
            name: host_summary(h)
            for name, h in merged.items()
            if h.has_network_evidence or h.nccl_version or h.init_failures
        },
        "findings": [f.to_json() for f in found],
        "verdict": verdict,
    }


def describe(host: HostNet) -> str:
    """One line: what NCCL used on this host."""
    devices = host.channel_devices or host.devices or host.socket_devices or host.error_hcas
    shown = ", ".join(devices[:8]) + (f" (+{len(devices) - 8})" if len(devices) > 8 else "")
    if not shown and host.channel_nics:
        shown = ", ".join(f"NET/{n}" for n in host.channel_nics)
    gdr = {True: "GDRDMA yes", False: "GDRDMA no", None: "GDRDMA unknown"}[host.gdrdma]
    version = f"NCCL {host.nccl_version}" if host.nccl_version else "NCCL version not logged"
    transport = host.transport or "transport unknown"
    return f"{_label(host.host)}: {transport} via {shown or 'no device named'}; {gdr}; {version}"
