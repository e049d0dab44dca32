"""Two ranks never share a GPU, and --graph refuses torch's blocking wait: exit 2 with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.exits import UserError
from bench.runtime.placement import (
    blocking_wait_conflict,
    cuda_device_index,
    placement_post,
    placement_verdict,
    shared_gpus,
)
from tests.support import railbench_inline


@pytest.mark.parametrize(
    ("local_rank", "local_size", "visible", "index"),
    [(3, 8, 8, 3), (0, 1, 8, 0), (5, 8, 1, 0), (1, 4, 8, 1), (7, 8, 8, 7)],
)
def test_each_rank_gets_its_own_gpu(local_rank: int, local_size: int, visible: int, index: int) -> None:
    assert cuda_device_index(local_rank, local_size, visible) == index


def test_more_ranks_than_gpus_is_a_usage_error_not_a_modulo() -> None:
    # local_rank % device_count would put local ranks 1 and 9 on GPU 1; NCCL then fails as an infra fault.
    with pytest.raises(UserError, match=r"16 ranks on this node but only 8 GPUs visible.*at most 8 ranks per node"):
        cuda_device_index(9, 16, 8)
    with pytest.raises(UserError, match="sees no CUDA GPU"):
        cuda_device_index(0, 1, 0)


def test_ranks_that_each_see_one_gpu_are_checked_by_bus_id() -> None:
    distinct = [(r, "n1", f"0000:{b:02x}:00.0") for r, b in enumerate((0x18, 0x2A, 0x3A, 0x5D))]
    assert shared_gpus([*distinct, (4, "n2", "0000:18:00.0")]) is None
    same = [(8, "n2", "0000:18:00.0"), (9, "n2", "0000:2a:00.0"), (10, "n2", "0000:18:00.0")]
    message = shared_gpus([*distinct, *same])
    assert message is not None and message.startswith("ranks 8 and 10 on n2 both drive GPU 0000:18:00.0")


def test_rank_zero_decides_for_everyone_from_the_posts() -> None:
    # What every rank posts through the store before the first NCCL call, and rank 0's one line for all.
    node = [placement_post("n1", 0, bus, 0) for bus in (0x18, 0x2A)]
    assert node == ["n1 0000:18:00.0", "n1 0000:2a:00.0"] and placement_verdict(node) is None
    doubled = [*node, placement_post("n2", 0, 0x18, 0), placement_post("n2", 0, 0x18, 0)]
    assert (placement_verdict(doubled) or "").startswith("ranks 2 and 3 on n2 both drive GPU 0000:18:00.0")
    with pytest.raises(UserError) as info:
        cuda_device_index(9, 16, 8)
    too_many = str(info.value)
    refused = [*node, placement_post("n3", refusal=too_many)]
    assert placement_verdict(refused) == f"n3: {too_many}"


@pytest.mark.parametrize("name", ["TORCH_NCCL_BLOCKING_WAIT", "NCCL_BLOCKING_WAIT"])
@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_blocking_wait_with_graph_is_refused(name: str, value: str) -> None:
    message = blocking_wait_conflict({name: value}, graph=True)
    assert message is not None and f"unset {name}" in message and "--graph" in message
    assert blocking_wait_conflict({name: value}, graph=False) is None


@pytest.mark.parametrize("env", [{}, {"TORCH_NCCL_BLOCKING_WAIT": "0"}, {"TORCH_NCCL_BLOCKING_WAIT": ""}])
def test_graph_without_blocking_wait_is_fine(env: dict[str, str]) -> None:
    assert blocking_wait_conflict(env, graph=True) is None


def test_cli_refuses_graph_under_blocking_wait_before_any_rank_starts(tmp_path: Path) -> None:
    proc = railbench_inline(["run", "--np", "2", "--graph"], cwd=tmp_path, env={"TORCH_NCCL_BLOCKING_WAIT": "1"})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "TORCH_NCCL_BLOCKING_WAIT=1" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "reports").exists()
