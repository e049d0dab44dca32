"""Hardware proof around a benchmark: byte counters per node, and NCCL's own log.

One rank per node (local rank 0) reads the node's byte and error counters before and after; the deltas (bytes,
and error counts beside them) travel to rank 0, which records them in run.json and audits them against the
profile: an excluded device (mlx5_0 on a 1CC) that carried more than the tolerance, or an expected rail that
carried nothing, fails the run. After an NCCL run, one rank per node parses that node's ``nccl/*.log`` files and
rank 0 gathers them and records which devices NCCL used on every node (no shared file system needed). Both
gathers end at rank 0 through the run's coordinator (``bench.runtime.coord``: on NCCL the store, never the world
communicator that rides the rails).
"""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Mapping
from pathlib import Path

from bench.fabric import counters
from bench.finding import EvidenceFinding
from bench.jsondoc import JSONObject, JSONValue
from bench.nccllogs import nccl_evidence, nccl_log
from bench.preflight.checks import expected_rails
from bench.profile.cluster import Profile
from bench.runtime.coord import Coord


def node_snapshot(local_rank: int, sysfs_root: Path) -> counters.Snapshot | None:
    """This node's counters, read by one rank per node (``sysfs_root``: the run's, ``DistContext.sysfs_root``)."""
    return counters.snapshot(sysfs_root) if local_rank == 0 else None


def node_deltas(before: counters.Snapshot | None, sysfs_root: Path) -> dict[str, JSONObject] | None:
    """JSON-able bytes and error-counter deltas per device since ``before`` (None on ranks that did not read)."""
    if before is None:
        return None
    after = counters.snapshot(sysfs_root)
    return counters.to_json(counters.delta(before, after), counters.error_delta(before, after))


def gather_node_deltas(
    mine: dict[str, JSONObject] | None, host: str, coord: Coord
) -> dict[str, dict[str, JSONObject]] | None:
    """{host: {device: bytes}} on rank 0 (None on the others), from the ranks that read counters; every rank
    calls it together."""
    everyone = coord.gather((host, mine))
    if everyone is None:
        return None
    return {h: d for h, d in everyone if d is not None}


def audit_counters(
    per_host: Mapping[str, Mapping[str, Mapping[str, JSONValue]]],
    profile: Profile,
    *,
    bound_ifname: str | None = None,
    sysfs_root: Path,
) -> list[EvidenceFinding]:
    """Findings for every node: excluded devices that carried traffic, expected rails that carried none.

    ``bound_ifname`` is the one interface railbench itself bound a gloo world group to (``--oob-ifname``):
    gloo sends a group's traffic through one interface, so on a socket-rail cluster the world sweep rides
    the management network by railbench's own choice. Failing that interface for carrying it, or the rails
    for carrying nothing, would accuse healthy parts; the rails test measures each rail on its own instead.
    """
    expected = () if bound_ifname else expected_rails(profile, sysfs_root)
    excluded = tuple(d for d in profile.excluded_devices if d != bound_ifname)
    findings: list[EvidenceFinding] = []
    if bound_ifname:
        findings.append(
            EvidenceFinding(
                "warn",
                f"the gloo world group is bound to {bound_ifname} (--oob-ifname): it carried the world "
                "sweep, so the rails are proven by the rails test, not by these counters",
                bound_ifname,
            )
        )
    for host, devices in per_host.items():
        deltas = {name: counters.bytes_from_json(d) for name, d in devices.items()}
        for f in counters.audit(deltas, expected, excluded, profile.counter_tolerance_bytes):
            findings.append(EvidenceFinding(f.severity, f"{host}: {f.message}", f.device, host))
    return findings


def node_nccl_logs(out_dir: Path, local_rank: int, host: str) -> list[nccl_log.NcclLog] | None:
    """This node's NCCL logs, parsed on the node by one rank per node (None on the others): the files railbench
    named for this host (``nccl/<host>-<rank>.log``), so a run directory on a shared file system is not read
    twice, and one on each node's own disk is read where it is."""
    if local_rank != 0:
        return None
    paths = sorted((out_dir / "nccl").glob(f"{glob.escape(host)}-*.log"))
    # Each travels to rank 0: its hosts as a plain dict (the parser's read-only view does not pickle).
    return [dataclasses.replace(log, hosts=dict(log.hosts)) for log in map(nccl_log.parse_file, paths)]


def gather_nccl_log_evidence(
    mine: list[nccl_log.NcclLog] | None, profile: Profile, coord: Coord
) -> tuple[JSONObject | None, list[EvidenceFinding]]:
    """What every node's NCCL logs say (``node_nccl_logs`` on each), on rank 0 (nothing on the others): called by
    every rank together (a gather to rank 0), so no node's logs need to be visible to rank 0's file system."""
    everyone = coord.gather(mine)
    logs = [log for part in everyone or [] if part for log in part]
    if not logs:
        return None, []
    return nccl_evidence.evidence(logs, profile), nccl_evidence.findings(logs, profile)
