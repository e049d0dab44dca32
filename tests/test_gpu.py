"""The GPU self-test: the NCCL/CUDA path on every local GPU, with numbers asserted. Skips cleanly without CUDA.

Run it on a new node with ``python -m pytest -m gpu tests/test_gpu.py`` (docs/development.md, "Testing a new GPU node").
Every case starts one rank per local GPU, so on an 8-GPU node the communicators have 8 ranks and the ring
collectives move real data over NVLink (or PCIe); on a 1-GPU machine they still run, as device copies (or no
work) held to the GPU's memory bandwidth.
Each case is a railbench command line and what its run directory must show: every row checked with 0 wrong,
busbw between a floor and a physical ceiling at the largest size when there are peers, and each rank's NCCL log
written and parsed. The ceiling is what the fastest link could carry, times the in-network factor the design
allows (docs/design.md, "Units and formulas": NVLS and SHARP reduce in the switch, so an all_reduce's busbw may
reach 2(n-1)/n times the link; nothing else may exceed the link): a timed region that ends before the device's
work does (host clock around queued NCCL calls) reads TB/s and fails here, as a region that times too much
fails the floor.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from bench import sysroot
from bench.fabric.rail_nics import node_rail_nics
from bench.fabric.sysfs import Sysfs, nvidia_gpus
from bench.nccllogs.nccl_log import parse_file
from tests.support import mpirun_command, railbench, rank_env
from tests.support.models.gpu_bounds import (
    assert_every_rail_judged,
    busbw_ceiling_gbps,
    ceiling_gbps,
    link_gbps,
    one_gpu_copy_bounds,
)

GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(GPUS == 0, reason="needs a CUDA GPU (run on a GPU node)")]
HOSTFILE = os.environ.get("RAILBENCH_GPU_HOSTFILE")
"""Two GPU nodes for the per-rail verdict on hardware (docs/first-day.md): an Open MPI hostfile, this node first."""

ALL = "all_reduce,all_gather,reduce_scatter,alltoall,broadcast,sendrecv"
BUSBW_FLOOR_GBPS = 5.0
"""busbw every GPU interconnect beats at 256 MiB (PCIe Gen3 x16 peer-to-peer included); a copy through the
host, a rank timing only its kernel launches or a one-rank communicator do not look like this."""
ALGBW_FLOOR_GBPS = 1.0
"""algbw any device reaches at the largest size, one rank included (NCCL copies on the device)."""


@dataclass(frozen=True)
class GpuCase:
    name: str
    args: tuple[str, ...]
    collectives: tuple[str, ...]
    graph: bool = True
    """On NCCL railbench captures CUDA graphs unless told --no-graph."""


CASES = [
    GpuCase(
        "world-sweep-all-collectives-check",
        (
            "run",
            "--np",
            str(GPUS),
            "--backend",
            "nccl",
            "-c",
            "-b",
            "1K",
            "-e",
            "256M",
            "-f",
            "16",
            "--collectives",
            ALL,
        ),
        tuple(ALL.split(",")),
    ),
    GpuCase(
        "eager-check",
        (
            "run",
            "--np",
            str(GPUS),
            "--backend",
            "nccl",
            "-c",
            "--no-graph",
            "-b",
            "1M",
            "-e",
            "256M",
            "-f",
            "16",
            "--collectives",
            "all_reduce,sendrecv",
        ),
        ("all_reduce", "sendrecv"),
        False,
    ),
    GpuCase(
        "graph-check",
        (
            "run",
            "--np",
            str(GPUS),
            "--backend",
            "nccl",
            "-c",
            "--graph",
            "-b",
            "1M",
            "-e",
            "256M",
            "-f",
            "16",
            "--collectives",
            "all_reduce,all_gather,sendrecv",
        ),
        ("all_reduce", "all_gather", "sendrecv"),
        True,
    ),
    GpuCase(
        "auto-picks-nccl",
        ("run", "--np", str(GPUS), "-c", "-b", "256M", "-e", "256M", "--collectives", "all_reduce"),
        ("all_reduce",),
    ),
    GpuCase(
        "bfloat16-exact-sums",
        (
            "run",
            "--np",
            str(GPUS),
            "--backend",
            "nccl",
            "-c",
            "-d",
            "bfloat16",
            "-b",
            "4K",
            "-e",
            "256M",
            "-f",
            "64",
            "--collectives",
            "all_reduce,reduce_scatter",
        ),
        ("all_reduce", "reduce_scatter"),
    ),
]


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as fh:
        return list(csv.DictReader(fh))


def assert_one_verdict(proc: subprocess.CompletedProcess[str], out: Path) -> dict[str, Any]:
    """The exit status is the one the run recorded, and it is a verdict: 0 for PASS or MEASURED, 1 for a FAIL
    that run.json judged (a missed target on this node is a finding, not a crash); returns run.json."""
    meta: dict[str, Any] = json.loads((out / "run.json").read_text())
    assert proc.returncode == meta["exit_status"], (proc.returncode, meta.get("exit_status"), proc.stderr[-2000:])
    want = {"pass": 0, "measured": 0, "skip": 0, "fail": 1}  # skip: nothing judged (rails on one node), exit 0
    assert meta["status"] == "complete" and want.get(meta["verdict"]) == proc.returncode, (meta, proc.stderr[-2000:])
    return meta


def assert_nccl_run(out: Path, collectives: tuple[str, ...], *, graph: bool = True) -> list[dict[str, str]]:
    """What every NCCL run directory must show; returns its rows."""
    meta = json.loads((out / "run.json").read_text())
    assert meta["backend"] == "nccl" and meta["status"] == "complete", meta
    assert meta["nranks"] == GPUS and meta["versions"]["nccl"], "NCCL version recorded"
    if "sweep" in meta:
        assert meta["sweep"]["graph"] is graph
    logs = sorted((out / "nccl").glob("*.log"))
    assert len(logs) == GPUS, f"one NCCL_DEBUG_FILE per rank, found {[p.name for p in logs]}"
    for log in logs:
        parsed = parse_file(log)
        assert parsed.nccl_lines > 0 and parsed.versions, f"{log.name}: no NCCL INFO lines parsed"
        assert meta["versions"]["nccl"] in parsed.versions[0], (meta["versions"]["nccl"], parsed.versions)
    rows = _rows(out)
    assert {r["collective"] for r in rows} == set(collectives)
    assert all(r["wrong"] == "0" for r in rows), [r for r in rows if r["wrong"] != "0"]
    largest = max(int(r["bytes"]) for r in rows)
    name = torch.cuda.get_device_name(0)
    for row in rows if GPUS > 1 else ():  # no size, however small, may read above what the links carry or
        # published runs reached. One rank crosses no link: its rows are device copies (held below) or no work at all
        assert float(row["busbw_GBps"]) <= busbw_ceiling_gbps(row["collective"], GPUS, name, link_gbps()), row
    for row in (r for r in rows if int(r["bytes"]) == largest):
        assert float(row["algbw_GBps"]) >= ALGBW_FLOOR_GBPS, row
        if GPUS > 1:
            assert float(row["busbw_GBps"]) >= BUSBW_FLOOR_GBPS, row
        l2 = torch.cuda.get_device_properties(0).L2_cache_size
        copy = one_gpu_copy_bounds(row["collective"], name, largest, l2) if GPUS == 1 else None
        if copy is not None:  # one rank: a device copy, held to the GPU's memory bandwidth
            assert copy[0] <= float(row["algbw_GBps"]) <= copy[1], (row, copy)
        print(f"{row['collective']:>15} {largest >> 20} MiB x {GPUS} GPUs: busbw {float(row['busbw_GBps']):.1f} GB/s")
    return rows


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_world_sweep(case: GpuCase, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = railbench([*case.args, "--out", str(out), "--no-history"], cwd=tmp_path, timeout=600)
    assert_one_verdict(proc, out)  # 1 only for a target missed; the numbers below hold either way
    assert_nccl_run(out, case.collectives, graph=case.graph)


def test_rails_over_the_local_ranks(tmp_path: Path) -> None:
    out = tmp_path / "rails"
    proc = railbench(
        [
            "rails",
            "--np",
            str(GPUS),
            "--backend",
            "nccl",
            "-c",
            "--rail-bytes",
            "64M",
            "--pair-bytes",
            "64M",
            "--out",
            str(out),
            "--no-history",
        ],
        cwd=tmp_path,
        timeout=600,
    )
    assert_one_verdict(proc, out)
    doc = json.loads((out / "rails.json").read_text())
    meta = json.loads((out / "run.json").read_text())
    if doc.get("skipped"):
        # Rails need two nodes; one node says so rather than inventing numbers, and judges nothing.
        assert doc["skipped"].startswith("1 node") and doc["measurements"] == []
        assert meta["verdict"] in (None, "measured", "skip"), meta["verdict"]
        # What the rails would use here: every local GPU's nearest NIC (printed with -s).
        found = node_rail_nics(Sysfs(sysroot.LIVE), os.environ.get("NCCL_IB_HCA"))
        for gpu, nic in sorted(found.items()):
            print(f"GPU {gpu}: rail NIC {nic.nic} ({nic.distance}, {nic.state}{', shared' if nic.shared else ''})")
        assert len(found) >= GPUS
        pytest.skip("one node: the per-rail verdict needs two (RAILBENCH_GPU_HOSTFILE, docs/first-day.md)")
    assert_every_rail_judged(doc, meta, GPUS)


@pytest.mark.skipif(not HOSTFILE, reason="needs two GPU nodes: RAILBENCH_GPU_HOSTFILE=hosts (docs/first-day.md)")
def test_every_rail_of_two_nodes_is_judged(tmp_path: Path) -> None:
    """The per-rail verdict on hardware: ``rails`` over the hostfile's first two nodes, one rank per GPU, every
    rail judged by its own numbers (``assert_every_rail_judged``). Rank 0 runs on this node and writes here."""
    out = tmp_path / "rails2"
    options = ["-N", str(GPUS), "--hostfile", str(HOSTFILE)]
    options += [f"-x{name}" for name in ("NCCL_IB_HCA", "NCCL_SOCKET_IFNAME") if name in os.environ]
    argv = [sys.executable, "-m", "bench", "rails", "--profile", str(_node_profile(tmp_path)), "--backend", "nccl"]
    argv += ["-c", "--rail-bytes", "256M", "--pair-bytes", "64M", "--out", str(out), "--no-history"]
    cmd = mpirun_command(2 * GPUS, argv, options=options)
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False)
    meta = assert_one_verdict(proc, out)
    doc = json.loads((out / "rails.json").read_text())
    assert len(doc["nodes"]) == 2, doc["nodes"]
    assert_every_rail_judged(doc, meta, GPUS)


def test_intra_node_pairs_over_nvlink(tmp_path: Path) -> None:
    """Every pair of local GPUs, one node group, bus ids named; with one GPU there is no pair to measure."""
    out = tmp_path / "intra"
    proc = railbench(
        [
            "rails",
            "--np",
            str(GPUS),
            "--backend",
            "nccl",
            "--intra-node",
            "--pair-bytes",
            "256M",
            "--rail-bytes",
            "64M",
            "--out",
            str(out),
            "--no-history",
        ],
        cwd=tmp_path,
        timeout=600,
    )
    assert_one_verdict(proc, out)
    intra = json.loads((out / "rails.json").read_text())["intra_node"]
    if GPUS < 2:
        assert intra["skipped"].startswith("1 local rank")
        pytest.skip("one GPU: no pair of local GPUs to measure")
    assert intra["process_groups"] == 1 and all(intra["bus_ids"][intra["nodes"][0]])
    assert len(intra["measurements"]) == GPUS * (GPUS - 1)
    for cell in intra["measurements"]:
        assert 8 * BUSBW_FLOOR_GBPS <= cell["busbw_Gbps"] <= 8 * ceiling_gbps("sendrecv", 2, link_gbps()), cell
    print(f"intra-node level {intra['level_Gbps']:.0f} Gb/s over {GPUS} GPUs; defects {intra['defects']}")


def _node_profile(tmp_path: Path) -> Path:
    """A profile for this node: the GPU count the PCI bus shows and the model torch names."""
    on_bus = len(nvidia_gpus(Sysfs(sysroot.LIVE)))
    path = tmp_path / "this-node.toml"
    model = torch.cuda.get_device_name(0).replace('"', "")
    path.write_text(
        f'name = "this-node"\ntransport = "ib"\ngpus_per_node = {on_bus}\ngpu_model = "{model}"\n'
        "pass_fraction = 0.9\n[rails]\n"
    )
    return path


def test_check_counts_the_gpus_on_the_pci_bus(tmp_path: Path) -> None:
    on_bus = len(nvidia_gpus(Sysfs(sysroot.LIVE)))
    assert on_bus >= GPUS, "sysfs shows at least the GPUs this process sees"
    proc = railbench(["check", "--profile", str(_node_profile(tmp_path)), "--json"], cwd=tmp_path, timeout=300)
    doc = json.loads(proc.stdout)
    # 1 only when a check failed on this node (no IB here is a finding): the status is the verdict's.
    assert proc.returncode == (1 if doc["verdict"] == "fail" else 0), (doc["verdict"], proc.stderr[-2000:])
    results = {r["check"]: r for r in doc["nodes"][0]["results"]}
    gpu_count = results["gpu-count"]
    assert gpu_count["status"] == "pass" and gpu_count["reason"].startswith(f"{on_bus} GPUs"), gpu_count
    assert torch.cuda.get_device_name(0) in gpu_count["reason"], "torch names the GPUs"


def test_accept_on_this_node(tmp_path: Path) -> None:
    out = tmp_path / "accept"
    proc = railbench(
        [
            "accept",
            "--profile",
            str(_node_profile(tmp_path)),
            "--np",
            str(GPUS),
            "--backend",
            "nccl",
            "-b",
            "1M",
            "-e",
            "256M",
            "-f",
            "16",
            "--collectives",
            "all_reduce,all_gather,sendrecv",
            "--out",
            str(out),
            "--no-history",
        ],
        cwd=tmp_path,
        timeout=600,
    )
    meta = assert_one_verdict(proc, out)
    assert meta["command"] == "accept"
    for name in ("junit.xml", "run.json", "results.csv", "checks.json"):
        assert (out / name).is_file(), name
    assert_nccl_run(out, ("all_reduce", "all_gather", "sendrecv"))
    checks = json.loads((out / "checks.json").read_text())
    assert "gpu-count" in json.dumps(checks)


SPLIT_PROBE = """
import os
from datetime import timedelta
import torch
import torch.distributed as dist
from bench.runtime.subgroups import disjoint_groups, splits_at_once

rank, size = int(os.environ["OMPI_COMM_WORLD_RANK"]), int(os.environ["OMPI_COMM_WORLD_SIZE"])
device = torch.device("cuda", rank % torch.cuda.device_count())
torch.cuda.set_device(device)
dist.init_process_group("nccl", init_method="tcp://127.0.0.1:29517", rank=rank, world_size=size, device_id=device)
assert splits_at_once()
members = [list(range(i, min(i + 2, size))) for i in range(0, size, 2)]
groups = disjoint_groups(members, timedelta(seconds=120))
mine = next(g for g, ranks in zip(groups, members) if rank in ranks)
ones = torch.ones(1, device=device)
dist.all_reduce(ones, group=mine)
print(f"rank {rank}: {ones.item():g} {len([r for r in members if rank in r][0])}", flush=True)
dist.destroy_process_group()
"""


def test_every_node_group_comes_from_one_split_of_the_world() -> None:
    """On a world bound to its GPUs, disjoint groups (the intra-node phase's one per node, the rails' one per rail)
    come from one ``split_group`` (``bench.runtime.subgroups``): each rank's group all-reduces over its own
    members only. Groups of two local GPUs here (of one, on a one-GPU machine)."""
    proc = subprocess.run(
        mpirun_command(GPUS, [sys.executable, "-c", SPLIT_PROBE]),
        capture_output=True,
        text=True,
        timeout=300,
        env=rank_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = [line.split(": ", 1)[1].split() for line in proc.stdout.splitlines() if line.startswith("rank ")]
    assert len(said) == GPUS and all(total == members for total, members in said), proc.stdout
