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
