"""`railbench rails` from the command line: bad input is one line and exit 2; one node is skipped honestly."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support import railbench_inline


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--iters", "0"], "--iters 0 must be at least 1"),
        (["--collectives", "alltoall"], "rail groups run all_reduce and all_gather, not alltoall"),
        (["--pair-bytes", "lots"], "--pair-bytes 'lots' is not a size"),
        (["--profile", "nope"], "unknown profile 'nope'"),
        ([], "no launcher detected and no --np"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str) -> None:
    done = railbench_inline(["rails", *args])
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


@pytest.mark.mpi
def test_one_node_is_skipped_with_the_reason(one_host_rails: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    done, out = one_host_rails  # rails --np 2 on this host (tests/conftest.py)
    assert done.returncode == 0, done.stderr
    assert "# rails: skipped: 1 node" in done.stdout
    doc = json.loads((out / "rails.json").read_text())
    assert doc["skipped"].startswith("1 node") and doc["measurements"] == [] and doc["defects"] == []
    meta = json.loads((out / "run.json").read_text())
    assert meta["command"] == "rails" and meta["status"] == "complete" and meta["exit_status"] == 0
    assert meta["rails_skipped"].startswith("1 node")
