"""docs/first-day.md: the five checks no model settles, each with a railbench command that runs here. Every
``railbench`` line of the page's ``bash`` blocks is run as the page says, and shows what the page says it shows
on this CPU machine."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from tests.support import REPO, railbench

PAGE = REPO / "docs" / "first-day.md"


def _commands() -> list[list[str]]:
    """The page's ``railbench ...`` lines, in order, from its ``bash`` blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", PAGE.read_text(), flags=re.S)
    lines = [line for block in blocks for line in block.splitlines() if line.startswith("railbench ")]
    return [shlex.split(line)[1:] for line in lines]


def _where(tmp_path: Path) -> Path:
    """A working directory with the page's example files where its commands name them."""
    shutil.copytree(REPO / "docs" / "first-day", tmp_path / "docs" / "first-day")
    return tmp_path


def test_the_page_names_the_five_checks_and_is_in_the_nav() -> None:
    text = PAGE.read_text()
    titles = re.findall(r"^## (\d)\. (.+)$", text, flags=re.M)
    assert [n for n, _ in titles] == ["1", "2", "3", "4", "5"], titles
    for words in ("nvidia-smi topo -m", "256 MiB and 1 GiB", "plan", "NCCL's chosen NICs", "IB retry"):
        assert any(words in title for _, title in titles), words
    assert "first-day.md" in (REPO / "mkdocs.yml").read_text()
    assert len(_commands()) == 6


@pytest.mark.slow
def test_the_commands_that_start_no_rank_run_here_and_show_what_the_page_says(tmp_path: Path) -> None:
    cwd = _where(tmp_path)
    shown = {}
    for args in _commands():
        if args[0] == "rails":
            continue
        done = railbench(args, cwd=cwd, timeout=120)
        assert done.returncode in (0, 1) and "Traceback" not in done.stderr, (args, done.stderr[-2000:])
        shown[" ".join(args)] = done.stdout
    check, plan, nccl_log = shown.values()
    assert re.search(r"SKIP\s+gpu-nic-affinity\s+no GPU", check), check
    phases = [line.strip().split("  ")[0] for line in plan.splitlines() if line.startswith("  ")]
    assert phases.index("check") < phases.index("pair matrix") < phases.index("world sweep"), phases
    assert re.search(r"nccl-log\s+node01: channels went through 1 of 8 rails \(mlx5_1:1\)", nccl_log), nccl_log


@pytest.mark.mpi
@pytest.mark.slow
def test_the_rails_commands_run_here_and_record_the_ib_retry_settings(tmp_path: Path) -> None:
    cwd = _where(tmp_path)
    runs = [args for args in _commands() if args[0] == "rails"]
    assert len(runs) == 3
    for args in runs:
        done = railbench(args, cwd=cwd, env={"NCCL_IB_TIMEOUT": "22"}, timeout=300)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (args, done.stderr[-2000:])
        out = cwd / args[args.index("--out") + 1]
        rails = json.loads((out / "rails.json").read_text())
        assert rails["skipped"].startswith("1 node"), rails["skipped"]  # one machine: no rail to measure
        assert json.loads((out / "run.json").read_text())["env"]["NCCL_IB_TIMEOUT"] == "22"
