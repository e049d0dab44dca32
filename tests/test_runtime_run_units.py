"""Pure pieces of `railbench run`: the sweep, node layout, targets, verdict, the table, the hang report."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.exits import UserError
from bench.frame.decide import decide
from bench.measure.table import row_line, write_summary
from bench.measure.targets import ONE_RANK, world_target_gbps
from bench.runtime import spec
from bench.runtime.launch import check_local_np, elastic_command
from bench.runtime.rendezvous import node_layout
from bench.runtime.watchdog import Hang, find_missing
from bench.sweep.config import RunConfig, message_sizes
from bench.sweep.items import collective_items
from tests.support import railbench


def test_sweep_matches_nccl_tests() -> None:
    assert message_sizes(1024, 16 << 20, 4, None) == [
        1 << 10,
        1 << 12,
        1 << 14,
        1 << 16,
        1 << 18,
        1 << 20,
        1 << 22,
        1 << 24,
    ]
    assert message_sizes(8, 8, 2, None) == [8]
    assert message_sizes(100, 400, 2, 100) == [100, 200, 300, 400]
    assert message_sizes(0, 4, 2, None) == [0, 1, 2, 4]


def test_rank_argv_round_trips_the_sweep() -> None:
    cfg = RunConfig(min_bytes=1024, max_bytes=1 << 24, step_factor=4, iters=5, warmup=2, check=True)
    argv = cfg.rank_argv(None)
    assert argv[:1] == ["run"] and "--np" not in argv
    ranks = spec.decode(RunConfig, argv[argv.index(spec.SPEC_FLAG) + 1])
    assert (ranks.min_bytes, ranks.step_factor, ranks.check, ranks.launch.np) == (1024, 4, True, None)


def test_node_layout_from_hostnames() -> None:
    hosts = ["a", "a", "b", "b", "c"]
    assert node_layout(hosts, 0) == (0, 2, 0, 3)
    assert node_layout(hosts, 3) == (1, 2, 1, 3)
    assert node_layout(hosts, 4) == (0, 1, 2, 3)
    # round-robin placement (mpirun --map-by node) still gives the right local ranks
    assert node_layout(["a", "b", "a", "b"], 2) == (1, 2, 0, 2)


def test_targets_follow_design() -> None:
    one_cc = SimpleNamespace(node_target_gbps=3200.0, rail_rate_gbps=400.0, nvlink_target_gbps=3840.0)
    assert world_target_gbps(one_cc, "all_reduce", 2) == 3200.0
    assert world_target_gbps(one_cc, "sendrecv", 4) == 400.0  # one GPU through one NIC
    assert world_target_gbps(one_cc, "all_reduce", 1) == 3840.0
    assert world_target_gbps(SimpleNamespace(), "all_reduce", 2) is None
    # One rank moves nothing between GPUs (its busbw is a copy or no work): nothing to judge, never a FAIL at 0 Gb/s.
    assert world_target_gbps(one_cc, "all_reduce", 1, nranks=1) is None
    assert world_target_gbps(one_cc, "all_reduce", 1, nranks=8) == 3840.0


def _row(coll: str, nbytes: int, eff: float | None, wrong: int | None = 0) -> dict:
    return {
        "collective": coll,
        "bytes": nbytes,
        "efficiency": eff,
        "wrong": wrong,
        "busbw_Gbps": 3200 * (eff or 0),
        "target_Gbps": 3200.0 if eff is not None else None,
    }


def verdict(rows: list[dict], min_bytes: int, pass_fraction: float) -> tuple[str, tuple[str, ...]]:
    found = decide(collective_items(rows, min_bytes, pass_fraction, "p"))
    return found.word, found.reasons


def test_verdict_judges_large_sizes_only() -> None:
    rows = [_row("all_reduce", 1 << 20, 0.1), _row("all_reduce", 1 << 30, 0.95)]
    assert verdict(rows, 256 << 20, 0.9) == ("pass", ())
    result, reasons = verdict([*rows, _row("all_gather", 1 << 30, 0.5)], 256 << 20, 0.9)
    assert result == "fail" and "all_gather at 1G" in reasons[0]
    assert "busbw 200 GB/s is 50% of its 400 GB/s target (3200 Gb/s; needs 90%)" in reasons[0]


def test_a_target_below_the_judged_sizes_is_not_a_pass() -> None:
    """Issue 21: a row with a target at 64M (under the judged 256M) was enough for PASS."""
    assert verdict([_row("all_reduce", 64 << 20, 0.05)], 256 << 20, 0.9)[0] == "measured"


def test_verdict_fails_on_wrong_elements() -> None:
    result, reasons = verdict([_row("sendrecv", 1024, None, wrong=3)], 256 << 20, 0.9)
    assert result == "fail" and "3 wrong elements" in reasons[0]


def test_table_row_is_nccl_tests_layout() -> None:
    row = {
        "bytes": 1048576,
        "count": 262144,
        "dtype": "float",
        "redop": "sum",
        "root": -1,
        "time_us": 123.456,
        "algbw_GBps": 8.49,
        "busbw_GBps": 12.74,
        "wrong": 0,
    }
    line = row_line(row)
    assert line.split() == ["1048576", "262144", "float", "sum", "-1", "123.46", "8.49", "12.74", "0"]
    assert row_line({**row, "wrong": None}).split()[-1] == "N/A"


def test_summary_names_headline_at_largest_size() -> None:
    rows = [
        {
            "collective": "all_reduce",
            "bytes": b,
            "busbw_GBps": g,
            "busbw_Gbps": 8 * g,
            "wrong": 0,
            "efficiency": None,
            "target_Gbps": None,
        }
        for b, g in ((1024, 0.1), (1 << 20, 2.0))
    ]
    out = io.StringIO()
    write_summary(out, rows, "reports/runs/x")
    text = out.getvalue()
    assert "# Out of bounds values : 0 OK" in text
    assert "# railbench all_reduce: busbw 2.00 GB/s (16.0 Gb/s) at 1048576 B" in text


def test_hang_report_names_ranks_and_hosts() -> None:
    assert find_missing([3, 2, None, 3], 3) == (1, 2)
    hang = Hang(3, "all_reduce at 1M", 300, (1,), ("node02",), (1,))
    assert hang.describe() == "all_reduce at 1M did not finish within 300 s: rank(s) 1 on node02 stopped responding"
    assert "every rank arrived" in Hang(3, "x", 5, (), ()).describe()
    assert "rank 0 (node01) does not answer" in Hang(3, "x", 5, (0,), ("node01",), unreachable=True).describe()


def test_local_np_limits() -> None:
    check_local_np(4, "auto", 1 << 20, cpus=2, gpus=0, mem=1 << 34)
    with pytest.raises(UserError, match="this node has 1 GPU"):
        check_local_np(2, "nccl", 1, cpus=2, gpus=1, mem=None)
    with pytest.raises(UserError, match="use --np 8 or fewer"):
        check_local_np(9, "gloo", 1, cpus=2, gpus=0, mem=None)


def test_elastic_command_is_torchs_own_launcher() -> None:
    cmd = elastic_command(2, 1, 8, "10.10.10.16", 29500, ["run", "-b", "8"])
    assert cmd[1:3] == ["-m", "torch.distributed.run"]
    assert cmd[cmd.index("--node-rank") + 1] == "1" and cmd[cmd.index("--master-addr") + 1] == "10.10.10.16"
    assert cmd[-4:] == ["bench", "run", "-b", "8"]


def test_verdict_is_measured_when_no_row_had_a_target() -> None:
    rows = [{"collective": "all_reduce", "bytes": 1 << 30, "wrong": 0, "efficiency": None, "target_Gbps": None}]
    assert verdict(rows, 256 << 20, 0.9) == ("measured", ("profile p sets no busbw target for these collectives",))
    judged = [{**rows[0], "efficiency": 0.95, "target_Gbps": 3200.0, "busbw_Gbps": 3040.0}]
    assert verdict(judged, 256 << 20, 0.9) == ("pass", ())
    short = [{**judged[0], "efficiency": 0.5, "busbw_Gbps": 1600.0}]
    assert verdict(short, 256 << 20, 0.9)[0] == "fail"


def test_default_sizes_reach_the_judged_size_on_a_profile_with_targets() -> None:
    """Issue 21: a default run on a GPU profile swept to 64M and judged nothing (judged from 256M)."""
    from bench.profile.cluster import load_profile
    from bench.sweep.config import RunConfig, sized

    gpu, local = load_profile("lambda-1cc"), load_profile("local")
    assert sized(RunConfig(), gpu).max_bytes == 8 << 30 >= gpu.judge_min_bytes
    assert sized(RunConfig(), gpu).sizes[-1] == 8 << 30
    assert sized(RunConfig(), local).max_bytes == 64 << 20  # no target: nothing to reach
    assert sized(RunConfig(max_bytes=4 << 20), gpu).max_bytes == 4 << 20  # -e as given
    with pytest.raises(ValueError, match="resolve it first"):
        _ = RunConfig().sizes


@pytest.mark.slow
def test_one_rank_on_a_gpu_profile_is_measured_not_failed(tmp_path: Path) -> None:
    """``--np 1`` with a GPU profile judged the 0 Gb/s busbw of a one-rank communicator and failed."""
    profile = tmp_path / "gpu.toml"
    profile.write_text(
        'name = "gpu"\ntransport = "ib"\nnvlink_target_gbps = 3600\njudge_min_bytes = "1M"\npass_fraction = 0.9\n'
    )
    out = tmp_path / "run"
    args = ["run", "--np", "1", "--profile", str(profile), "-b", "1M", "-e", "1M", "--collectives", "all_reduce"]
    done = railbench([*args, "--no-history", "--out", str(out)], cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# not judged: one rank moves nothing between GPUs" in done.stdout
    meta = json.loads((out / "run.json").read_text())
    assert meta["verdict"] == "measured", meta
    assert meta["reasons"] == [ONE_RANK]
