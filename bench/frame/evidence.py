"""Hardware proof around a benchmark: byte counters per node, and NCCL's own log.

One rank per node (local rank 0) reads the node's byte and error counters before and after; the deltas (bytes,
and error counts beside them) travel to rank 0, which records them in run.json and audits them against the
profile: an excluded device (mlx5_0 on a 1CC) that carried more than the tolerance, or an expected rail that
carried nothing, fails the run. After an NCCL run, rank 0 also reads the ``nccl/*.log`` files it can see and
records which devices NCCL used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.fabric import counters, nccl_evidence, nccl_log
from bench.fabric.checks import expected_rails
from bench.fabric.finding import Finding
from bench.profiles import Profile


def node_snapshot(local_rank: int) -> counters.Snapshot | None:
    """This node's counters, read by one rank per node."""
    return counters.snapshot() if local_rank == 0 else None


def node_deltas(before: counters.Snapshot | None) -> dict[str, dict[str, Any]] | None:
    """JSON-able bytes and error-counter deltas per device since ``before`` (None on ranks that did not read)."""
    if before is None:
        return None
    after = counters.snapshot()
    return counters.to_json(counters.delta(before, after), counters.error_delta(before, after))


def gather_node_deltas(mine: dict[str, dict[str, Any]] | None, host: str) -> dict[str, dict[str, dict[str, Any]]]:
    """{host: {device: bytes}} on every rank, from the ranks that read counters."""
    import torch.distributed as dist

    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, (host, mine))
    return {h: d for h, d in everyone if d is not None}


def audit_counters(
    per_host: dict[str, dict[str, dict[str, Any]]], profile: Profile, *, bound_ifname: str | None = None
) -> list[Finding]:
    """Findings for every node: excluded devices that carried traffic, expected rails that carried none.

    ``bound_ifname`` is the one interface railbench itself bound a gloo world group to (``--oob-ifname``):
    gloo sends a group's traffic through one interface, so on a socket-rail cluster the world sweep rides
    the management network by railbench's own choice. Failing that interface for carrying it, or the rails
    for carrying nothing, would accuse healthy parts; the rails test measures each rail on its own instead.
    """
    expected = () if bound_ifname else expected_rails(profile)
    excluded = tuple(d for d in profile.excluded_devices if d != bound_ifname)
    findings: list[Finding] = []
    if bound_ifname:
        findings.append(
            Finding(
                "warn",
                f"the gloo world group is bound to {bound_ifname} (--oob-ifname): it carried the world "
                "sweep, so the rails are proven by the rails test, not by these counters",
                bound_ifname,
            )
        )
    for host, devices in per_host.items():
        deltas = {
            name: counters.DeviceBytes(
                d["tx_bytes"], d["rx_bytes"], d["kind"], d.get("wrapped", False), d.get("saturated", False)
            )
            for name, d in devices.items()
        }
        for f in counters.audit(deltas, expected, excluded, profile.counter_tolerance_bytes):
            findings.append(Finding(f.severity, f"{host}: {f.message}", f.device, host))
    return findings


def nccl_log_evidence(out_dir: Path, profile: Profile) -> tuple[dict[str, Any] | None, list[Finding]]:
    """What NCCL's own logs in ``out_dir/nccl`` say, and what is wrong with it for ``profile``."""
    paths = sorted((out_dir / "nccl").glob("*.log"))
    if not paths:
        return None, []
    logs = [nccl_log.parse_file(p) for p in paths]
    return nccl_evidence.evidence(logs, profile), nccl_evidence.findings(logs, profile)
