"""The physical ceilings the GPU self-test holds every number to, and its per-rail verdict check.

A timed region that ends before the device's work does (the host clock around queued NCCL calls) reads TB/s:
no link carries that. The ceiling is what the fastest link could carry times the in-network factor the design
allows (docs/design.md, "Units and formulas"): NVLS and SHARP reduce in the switch, so an all_reduce's busbw may
reach 2(n-1)/n times the link; nothing else may exceed it. Used by ``tests/test_gpu.py`` on GPUs and by the
namespace testbed's rails tests on CPU, so the checks themselves are exercised where CI runs.
"""

from __future__ import annotations

from typing import Any

NVLINK_GBPS = {"H100": 450.0, "H200": 450.0, "H800": 200.0, "H20": 450.0, "A100": 300.0, "A800": 200.0, "B200": 900.0}
"""One GPU's NVLink bandwidth per direction in GB/s (NVIDIA datasheets: NVLink 4 900 GB/s bidirectional on
H100/H200, NVLink 3 600 on A100, NVLink 5 1.8 TB/s on B200; the China variants' cut links)."""
FASTEST_LINK_GBPS = 900.0
"""The fastest per-GPU link of any GPU railbench knows (NVLink 5): the ceiling for a model not in the table."""
CEILING_MARGIN = 1.1
"""Timing noise above the ceiling that is still physics (a region's edges, a clock's granularity)."""


PUBLISHED_MARGIN = 1.3
"""How far above the published peak of a collective on this GPU a reading may go (the figure the shipped
lambda-1cc profile gives at its largest size, from published nccl-tests runs): enough for a better NCCL or a
lucky run, not for a timing error of 2x (a real 412 GB/s all_reduce read as 824 GB/s fails)."""
PUBLISHED_PEAKS = ("all_reduce", "all_gather", "reduce_scatter")
"""Collectives whose profile figure at its largest size is a measured saturation (NVLS all_reduce's curve up to
4 GiB, all_gather and reduce_scatter "saturated at ~360 GB/s"); broadcast's is one suite's peak at 128 MiB and
alltoall's and sendrecv's are assumed, so those keep the physical ceiling only."""
PUBLISHED_NODE_GPUS = 8
"""The profile's single-node figures are for 8 GPUs on NVSwitch; other counts have no published peak here."""
HBM_GBPS = (
    ("H100 NVL", 3900.0),
    ("H100 PCIE", 2000.0),
    ("H100", 3350.0),
    ("H200", 4800.0),
    ("H20", 4000.0),
    ("A100 80GB PCIE", 1935.0),
    ("A100-SXM4-80GB", 2039.0),
    ("A100", 1555.0),
    ("B200", 8000.0),
)
"""Device memory bandwidth in GB/s by GPU name (the first pattern the name contains wins), from NVIDIA's
datasheets: H100 SXM5 3.35 TB/s, H100 PCIe 2.0, H100 NVL 3.9, H200 4.8, H20 4.0, A100 80GB SXM4 2,039 GB/s,
A100 80GB PCIe 1,935, A100 40GB 1,555, B200 8 TB/s."""
ONE_GPU_COPY_FLOOR = 0.3
"""A one-rank all_gather or reduce_scatter is one device-to-device copy (NCCL copies the input into the output
buffer), which reads and writes every byte: its algbw is at most half the memory bandwidth, and healthy GPUs
reach 80-90% of that. The floor is 30% of the memory bandwidth (60% of the copy's best): a region that times
twice the work reads 25% or less and fails. A one-rank sendrecv is the same copy (the rank sends to itself), and
nccl-tests counts its busbw as its algbw: on an H200 railbench read 2,090 GB/s at 256 MiB, past any link's
ceiling and inside this copy's."""
ONE_GPU_COPIES = ("all_gather", "reduce_scatter", "sendrecv")


def hbm_gbps(gpu_name: str) -> float | None:
    """This GPU's memory bandwidth (GB/s) from :data:`HBM_GBPS`; None for a model not in it."""
    upper = gpu_name.upper()
    return next((rate for pattern, rate in HBM_GBPS if pattern.upper() in upper), None)


L2_MULTIPLE = 4
"""A one-rank copy is held to the memory's bandwidth only when it moves at least this many times the L2 cache:
smaller buffers are read from the cache on the timed iterations after the first. On an H200 (60 MB of L2) a
one-rank bfloat16 reduce_scatter of 16 MiB read 2,698 GB/s, above half the HBM bandwidth (railbench on NCCL
2.28.9, 2026-11-26), while every copy of 256 MiB read 2,040-2,100 GB/s."""


def one_gpu_copy_bounds(collective: str, gpu_name: str, nbytes: int, l2_bytes: int) -> tuple[float, float] | None:
    """(floor, ceiling) in GB/s of the algbw of ``collective`` on one rank moving ``nbytes``, where it is a device
    copy on a GPU whose memory bandwidth is known and the copy is too big for its L2 cache (``l2_bytes``, torch's
    ``L2_cache_size``) to hold; None otherwise."""
    hbm = hbm_gbps(gpu_name)
    if hbm is None or collective not in ONE_GPU_COPIES or nbytes < L2_MULTIPLE * l2_bytes:
        return None
    return ONE_GPU_COPY_FLOOR * hbm, CEILING_MARGIN * hbm / 2


def published_ceiling_gbps(collective: str, nranks: int, gpu_name: str) -> float | None:
    """:data:`PUBLISHED_MARGIN` times the busbw (GB/s) the shipped lambda-1cc profile gives ``collective`` on
    ``nranks`` GPUs named ``gpu_name`` at its largest size (its published peak); None where it gives none."""
    from bench.measure.targets import world_target_gbps
    from bench.profile.cluster import load_profile

    if nranks != PUBLISHED_NODE_GPUS or collective not in PUBLISHED_PEAKS:
        return None
    profile = load_profile("lambda-1cc").for_gpus([gpu_name] * nranks)
    peak = world_target_gbps(profile, collective, 1, nbytes=1 << 50, nranks=nranks)
    return None if peak is None else PUBLISHED_MARGIN * peak / 8


def busbw_ceiling_gbps(collective: str, nranks: int, gpu_name: str, link: float) -> float:
    """The lower of the physical ceiling and the published one (where the profile has one)."""
    published = published_ceiling_gbps(collective, nranks, gpu_name)
    physical = ceiling_gbps(collective, nranks, link)
    return physical if published is None else min(physical, published)


def link_gbps() -> float:
    """This node's per-GPU link bandwidth, GB/s per direction (the table, else the fastest known link)."""
    import torch

    name = torch.cuda.get_device_name(0).upper()
    return next((rate for model, rate in NVLINK_GBPS.items() if model in name), FASTEST_LINK_GBPS)


def ceiling_gbps(collective: str, nranks: int, link: float) -> float:
    """The most busbw ``collective`` over ``nranks`` ranks can show on links of ``link`` GB/s: the link itself,
    or for all_reduce 2(n-1)/n of it, what an in-switch reduction (NVLS, SHARP) allows."""
    factor = 2 * (nranks - 1) / nranks if collective == "all_reduce" and nranks > 1 else 1.0
    return CEILING_MARGIN * link * max(1.0, factor)


def assert_every_rail_judged(doc: dict[str, Any], meta: dict[str, Any], rails: int) -> None:
    """Every rail of the node has a verdict that agrees with its numbers: a defect or a below-target line names
    it, or its rail-group busbw is within the pass fraction of its line rate and never above the link (times
    SHARP's factor for all_reduce); and its counters say which NIC carried it."""
    assert meta["verdict"] in ("pass", "fail") and len(doc["rails"]) == rails, (meta["verdict"], doc["rails"])
    named = {d["rail"] for d in doc["defects"] if d.get("severity") == "fail"} | {
        int(line.split()[1]) for line in doc["below_target"]
    }
    nnodes = len(doc["nodes"])
    for entry in doc["rails"][:rails]:
        k, line = entry["rail"], entry["line_rate_Gbps"]
        cells = [m for m in doc["measurements"] if m["kind"] == "rail" and m["rail"] == k]
        assert cells and all(m.get("wrong") in (None, 0) for m in cells), (k, cells)
        assert all(n["carried"] for n in entry["path"].values()), (k, entry["path"])
        if line:
            for m in cells:
                assert m["busbw_Gbps"] <= ceiling_gbps(m["collective"], nnodes, line / 8) * 8, m
        if k not in named and line:
            fraction = meta["rails_test"]["pass_fraction"]
            assert all(m["busbw_Gbps"] >= fraction * line for m in cells), (k, cells)
        print(f"rail {k}: {'FAIL' if k in named else 'pass'} {[round(m['busbw_Gbps']) for m in cells]} Gb/s")
