"""The GPU self-test's bounds (``tests/support/models/gpu_bounds.py``) would fail on a real timing bug: checked here on
the CPU, with the figures published for the GPUs they hold (the GPU tests themselves need a GPU)."""

from __future__ import annotations

import pytest

from tests.support.models.gpu_bounds import (
    busbw_ceiling_gbps,
    ceiling_gbps,
    hbm_gbps,
    one_gpu_copy_bounds,
    published_ceiling_gbps,
)

H100 = "NVIDIA H100 80GB HBM3"
NVLINK4_GBPS = 450.0


@pytest.mark.parametrize(
    ("collective", "real_gbps"),
    [("all_reduce", 412.35), ("all_reduce", 473.60), ("all_gather", 350.0), ("reduce_scatter", 360.0)],
)
def test_a_factor_two_timing_error_on_eight_h100_fails_the_ceiling(collective: str, real_gbps: float) -> None:
    # Published 8 x H100 figures (nccl-tests#290, NVIDIA/nccl#1281): the reading passes, twice it fails. The
    # physical ceiling alone (866 GB/s for all_reduce) let a doubled 412 through.
    ceiling = busbw_ceiling_gbps(collective, 8, H100, NVLINK4_GBPS)
    assert real_gbps <= ceiling < 2 * real_gbps
    assert ceiling <= ceiling_gbps(collective, 8, NVLINK4_GBPS)


def test_published_ceilings_only_where_a_saturation_is_published() -> None:
    assert published_ceiling_gbps("all_reduce", 4, H100) is None  # the figures are for 8 GPUs on NVSwitch
    assert published_ceiling_gbps("broadcast", 8, H100) is None  # one suite's 128 MiB peak: physics only
    assert published_ceiling_gbps("all_reduce", 8, "NVIDIA GeForce RTX 4090") is None
    assert published_ceiling_gbps("all_reduce", 8, "NVIDIA B200") == pytest.approx(1.3 * 830)


def test_a_one_gpu_copy_is_held_to_its_memory_bandwidth() -> None:
    floor, ceiling = one_gpu_copy_bounds("all_gather", H100, 256 << 20, 50 << 20) or (0.0, 0.0)
    healthy = 0.85 * 3350 / 2  # a device copy reads and writes every byte
    assert floor <= healthy <= ceiling
    assert healthy / 2 < floor  # a region timing twice the work fails
    assert 2 * healthy > ceiling  # and one timing half of it
    # in place on one rank: nothing is copied
    assert one_gpu_copy_bounds("all_reduce", H100, 256 << 20, 50 << 20) is None
    assert hbm_gbps("NVIDIA H100 PCIe") == 2000.0 and hbm_gbps("NVIDIA A100-SXM4-80GB") == 2039.0
    assert hbm_gbps("NVIDIA GeForce RTX 4090") is None


def test_a_one_rank_sendrecv_is_a_copy_not_a_link() -> None:
    """What one H200 read at 256 MiB (2026-11-26, railbench on NCCL 2.28.9): sendrecv to itself 2,090 GB/s and
    all_gather 2,095 GB/s, both device copies. No link carries 2 TB/s; the copy's bounds hold them."""
    h200 = "NVIDIA H200"
    assert ceiling_gbps("sendrecv", 1, 450.0) < 2090.05
    for collective, algbw in (("sendrecv", 2090.05), ("all_gather", 2095.11)):
        floor, ceiling = one_gpu_copy_bounds(collective, h200, 256 << 20, 60 << 20) or (0.0, 0.0)
        assert floor <= algbw <= ceiling, (collective, floor, ceiling)


def test_a_copy_the_l2_cache_holds_is_not_held_to_the_memory() -> None:
    """What one H200 read (2026-11-26): a one-rank bfloat16 reduce_scatter of 16 MiB at 2,698 GB/s, above half
    its 4.8 TB/s HBM, from its 60 MB L2; no memory bound applies to it, and one applies from 4x the cache up."""
    h200, l2 = "NVIDIA H200", 60 << 20
    assert one_gpu_copy_bounds("reduce_scatter", h200, 16 << 20, l2) is None
    assert one_gpu_copy_bounds("reduce_scatter", h200, 256 << 20, l2) is not None
