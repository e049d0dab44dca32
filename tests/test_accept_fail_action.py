"""The end of an ``accept`` run that failed a check says what to do: its ``# FAIL`` line carries the check's
action, as rails' FAIL lines carry their defect's (issue 43: it said only what was wrong), and the report does
not then repeat that action as an "Other failure" of its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import railbench

ACTION = "load the RDMA driver on {node} (modprobe mlx5_ib) and check that ibstat lists its HCAs"


@pytest.mark.mpi
def test_accepts_fail_line_carries_the_checks_action(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"  # no class/infiniband: ib-devices fails on any machine, with its action
    sysfs.mkdir()
    out = tmp_path / "run"
    args = ["accept", "--profile", "lambda-1cc", "--np", "2", "-b", "1K", "-e", "64K", "-n", "2", "-w", "1"]
    args += ["--no-pairs", "--sysfs-root", str(sysfs), "--out", str(out), "--no-history"]
    done = railbench(args, cwd=tmp_path)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    node = json.loads((out / "checks.json").read_text())["nodes"][0]["node"]
    fails = [line for line in done.stdout.splitlines() if line.startswith("# FAIL ")]
    assert [line for line in fails if " ib-devices: " in line] == [
        f"# FAIL {node} ib-devices: no RDMA device under {sysfs}/class/infiniband: is the driver (mlx5_ib) "
        f"loaded?; action: {ACTION.format(node=node)}"
    ], fails
    items = json.loads((out / "run.json").read_text())["items"]
    (item,) = [i for i in items if i["name"] == "ib-devices"]
    assert item["reason"].endswith(f"; action: {ACTION.format(node=node)}")
    report = (out / "report.md").read_text()
    assert "Other failures" not in report, report
