"""Collectives as data: nccl-tests' byte arithmetic and busbw factors, and the expected results."""

from __future__ import annotations

import pytest
import torch

from bench.exits import UserError
from bench.measure.collectives import DTYPES, REGISTRY, data_pattern, get_collective, get_dtype, make_buffers, pattern
from bench.measure.results import RowPlace, Timing, result_row


@pytest.mark.parametrize(
    ("name", "n", "factor"),
    [
        ("all_reduce", 4, 1.5),
        ("all_reduce", 16, 1.875),
        ("all_gather", 4, 0.75),
        ("reduce_scatter", 8, 0.875),
        ("alltoall", 2, 0.5),
        ("broadcast", 8, 1.0),
        ("sendrecv", 8, 1.0),
    ],
)
def test_busbw_factors_are_nccl_tests(name: str, n: int, factor: float) -> None:
    assert REGISTRY[name].busbw_factor(n) == pytest.approx(factor)


def test_all_gather_sizes_round_like_nccl_tests() -> None:
    # nccl-tests prints count per rank for all_gather and rounds S down to a multiple of n x elsize:
    # 80 ranks of doubles at 32 MiB gives 52428 elements per rank and S = 33553920.
    count, nbytes = get_collective("all_gather").sizes(33554432, get_dtype("double"), 80)
    assert (count, nbytes) == (52428, 33553920)
    count, nbytes = get_collective("all_reduce").sizes(33554432, get_dtype("double"), 80)
    assert (count, nbytes) == (4194304, 33554432)


def _simulate(name: str, n: int, count: int) -> list[torch.Tensor]:
    coll = REGISTRY[name]
    pat = data_pattern(coll, DTYPES["float"], n)
    index = torch.arange(coll.buffer_counts(count, n)[0], dtype=torch.int64)
    sends = [pat.values(r, index) for r in range(n)]
    if name == "all_reduce":
        return [sum(sends)] * n  # type: ignore[list-item]
    if name == "all_gather":
        return [torch.cat(sends)] * n
    if name == "reduce_scatter":
        total = sum(sends)
        return [total[r * count : (r + 1) * count] for r in range(n)]  # type: ignore[index]
    if name == "alltoall":
        return [torch.cat([sends[j][r * count : (r + 1) * count] for j in range(n)]) for r in range(n)]
    if name == "broadcast":
        return [sends[0]] * n
    return [sends[(r - 1) % n] for r in range(n)]  # sendrecv ring: receive from r-1


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_expected_matches_the_collectives_definition(name: str, n: int) -> None:
    coll = REGISTRY[name]
    count, _ = coll.sizes(4096, DTYPES["float"], n)
    pat = data_pattern(coll, DTYPES["float"], n)
    for rank, got in enumerate(_simulate(name, n, count)):
        index = torch.arange(got.numel(), dtype=torch.int64)
        assert torch.equal(coll.expected(rank, count, pat, index), got)


def test_data_differs_per_rank_and_index() -> None:
    assert not torch.equal(pattern(0, 16, torch.int32), pattern(1, 16, torch.int32))
    assert len(set(pattern(0, 4, torch.int32).tolist())) == 4


def test_in_place_collectives_share_one_buffer() -> None:
    coll = REGISTRY["all_reduce"]
    buffers = make_buffers(coll, 8, 32, 0, 2, torch.float32, "cpu")
    assert buffers.send is buffers.recv
    gathered = make_buffers(REGISTRY["all_gather"], 8, 64, 0, 2, torch.float32, "cpu")
    assert gathered.recv.numel() == 16


@pytest.mark.parametrize("bad", ["allreduce_typo", "", "nvls"])
def test_unknown_collective_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UserError, match="unknown collective"):
        get_collective(bad)


def test_nccl_tests_binary_names_are_accepted() -> None:
    assert get_collective("all_reduce_perf").name == "all_reduce"


def test_result_row_formula() -> None:
    # 1 GiB all_reduce over 16 ranks in 5 ms: algbw 214.7 GB/s, busbw x 2*15/16.
    row = result_row(
        REGISTRY["all_reduce"],
        Timing(1 << 30, (1 << 30) // 4, 20, 5000.0, 4900.0, 5100.0, 0),
        RowPlace("float", 16, 2),
        3200.0,
    )
    assert row["algbw_GBps"] == pytest.approx(214.748365, rel=1e-6)
    assert row["busbw_GBps"] == pytest.approx(214.748365 * 1.875, rel=1e-6)
    assert row["busbw_Gbps"] == pytest.approx(row["busbw_GBps"] * 8)
    assert row["efficiency"] == pytest.approx(row["busbw_Gbps"] / 3200, rel=1e-5)
