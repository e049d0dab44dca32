"""Whether torch makes disjoint groups in one split (``bench.runtime.subgroups``), as the plan asks it: read from
torch's own c10d module, never by importing torch on a login node. The split itself needs GPUs:
``tests/test_gpu.py::test_every_node_group_comes_from_one_split_of_the_world``."""

from __future__ import annotations

from pathlib import Path

import torch.distributed as dist

from bench.runtime.subgroups import c10d_defines_split_group, torch_splits_at_once


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
