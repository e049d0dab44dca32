"""The command line: help, versions, dispatch, and that torch-free commands never import torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.cli import COMMANDS
from tests.support import railbench, rank_env


def test_help_lists_every_command() -> None:
    proc = railbench(["--help"], timeout=60)
    assert proc.returncode == 0
    for name in COMMANDS:
        assert f"  {name} " in proc.stdout


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help(name: str) -> None:
    proc = railbench([name, "--help"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"railbench {name}" in proc.stdout


def test_version() -> None:
    proc = railbench(["--version"], timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("railbench ")


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["hca", "--devices", "mlx5_0:1,mlx5_1:1,mlx5_2:1", "--nccl-ib-hca", "^=mlx5_0"],
        ["run", "--help"],
        ["history", "--help"],
        ["compare", "--help"],
        ["report", "--help"],
        ["import", "--help"],
        ["export", "--help"],
    ],
)
def test_torch_free_paths_do_not_import_torch(argv: list[str]) -> None:
    code = (
        "import sys\nfrom bench.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print('TORCH-IMPORTED' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=rank_env(), capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().endswith("NO-TORCH"), proc.stdout + proc.stderr


def test_select_hcas_import_is_torch_free() -> None:
    code = "import sys, bench\nprint(bench.select_hcas('^=mlx5_0', ['mlx5_0:1','mlx5_1:1']), 'torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], env=rank_env(), capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "['mlx5_1:1'] False", proc.stderr
