"""Whether torch makes disjoint groups in one split (``bench.runtime.subgroups``), as the plan asks it: read from
torch's own c10d module, never by importing torch on a login node. The split itself needs GPUs:
``tests/test_gpu.py::test_every_node_group_comes_from_one_split_of_the_world``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from bench.runtime.subgroups import c10d_defines_split_group, torch_splits_at_once
from tests.support import rank_env


def test_the_plan_sees_split_group_where_torch_has_it() -> None:
    assert torch_splits_at_once() == hasattr(dist, "split_group")


def test_a_c10d_module_without_split_group_is_read_as_one_new_group_per_group(tmp_path: Path) -> None:
    older = tmp_path / "distributed_c10d.py"
    older.write_text("def new_group(ranks=None):\n    pass\n\n# split_group comes later\ndef _split_group_x():\n")
    assert not c10d_defines_split_group(older)
    assert not c10d_defines_split_group(tmp_path / "missing.py")
    newer = tmp_path / "newer.py"
    newer.write_text("def new_group(ranks=None):\n    pass\n\n\ndef split_group(\n    parent_pg=None,\n):\n")
    assert c10d_defines_split_group(newer)


GLOO_WORLD = """
from datetime import timedelta
import torch
import torch.distributed as dist
from bench.runtime.subgroups import disjoint_groups, splits_at_once

dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
groups = disjoint_groups([[0], []], timedelta(seconds=30))
ones = torch.ones(1)
dist.all_reduce(ones, group=groups[0])
print(splits_at_once(), len(groups), ones.item())
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_a_gloo_world_makes_its_groups_one_new_group_at_a_time() -> None:
    """gloo cannot be bound to a device (``init_process_group`` refuses a CPU ``device_id``), so its groups are
    ``new_group`` calls in turn, each usable at once; a real one-rank gloo world in a process of its own."""
    proc = subprocess.run(
        [sys.executable, "-c", GLOO_WORLD], capture_output=True, text=True, timeout=120, env=rank_env()
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "2", "1.0"]
