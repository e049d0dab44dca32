"""Papercuts a new user met (issue "every hostile input is refused cleanly"): each is exit 2 and one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import railbench, railbench_inline


def _one_line_exit_2(args: list[str], cwd: Path, *expected: str) -> str:
    done = railbench_inline(args, cwd=cwd)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("command", ["run", "accept"])
def test_step_bytes_and_step_factor_together_are_refused(tmp_path: Path, command: str) -> None:
    profile = ["--profile", "local"] if command == "accept" else []
    _one_line_exit_2(
        [
            command,
            *profile,
            "--np",
            "2",
            "-b",
            "1K",
            "-e",
            "4K",
            "-i",
            "1K",
            "-f",
            "4",
            "--no-history",
            "--out",
            str(tmp_path / "out"),
        ],
        tmp_path,
        "-i/--step-bytes",
        "-f/--step-factor",
    )
    assert not (tmp_path / "out").exists()  # refused before any rank started


def test_step_bytes_alone_still_works_with_the_default_factor() -> None:
    import argparse

    from bench.commands import run as run_cmd

    parser = argparse.ArgumentParser()
    run_cmd.add_arguments(parser)
    config = run_cmd.config_from_args(parser.parse_args(["-b", "1K", "-e", "4K", "-i", "1K"]))
    assert config.sizes == [1024, 2048, 3072, 4096]


def test_zero_byte_start_is_refused(tmp_path: Path) -> None:
    _one_line_exit_2(
        ["run", "--np", "2", "-b", "0", "-e", "16", "--no-history", "--out", str(tmp_path / "out")],
        tmp_path,
        "-b 0",
        "-b 8",
    )


def test_hca_with_a_missing_sysfs_root_says_so(tmp_path: Path) -> None:
    _one_line_exit_2(["hca", "--sysfs-root", str(tmp_path / "nowhere")], tmp_path, "does not exist")


def test_hca_unset_is_said_once(tmp_path: Path) -> None:
    done = railbench_inline(["hca", "--nccl-ib-hca", "--devices", "mlx5_0,mlx5_1"], cwd=tmp_path)
    first = done.stdout.splitlines()[0]
    assert first == "NCCL_IB_HCA is unset: NCCL uses every active port", first


def test_report_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    from tests.support.report_data import ClusterModel, write_run_dir

    run_dir = write_run_dir(tmp_path / "run", ClusterModel(hosts=("a-01", "a-02")))
    afile = tmp_path / "afile"
    afile.write_text("")
    _one_line_exit_2(["report", str(run_dir), "--out", str(afile)], tmp_path, "is a file")


def test_import_error_names_the_log_once(tmp_path: Path) -> None:
    log = tmp_path / "nothing.log"
    log.write_text("no table here\n")
    done = railbench_inline(
        ["import", "nccl-tests", str(log), "--no-history", "--out-root", str(tmp_path / "runs")], cwd=tmp_path
    )
    assert done.returncode == 2 and done.stderr.count(str(log)) == 1, done.stderr


# ---------------------------------------------------------------------------------------------------------
# Issue 24, item 10: outputs that must not be replaced, names no file system takes, closed pipes, hidden JSON.


def _run_dir(tmp_path: Path) -> Path:
    from tests.support.history_fixtures import make_run_dir

    return make_run_dir(
        tmp_path / "run", started_utc="2026-11-20T02:00:00Z", busbw={("all_reduce", "world", "world", 1 << 20): 300.0}
    )


def test_export_never_replaces_a_device_node_a_fifo_or_a_symlink(tmp_path: Path) -> None:
    """The atomic write renames a new file over the path: as root that turned /dev/null into a regular file."""
    import os
    import stat

    run_dir = _run_dir(tmp_path)
    target = tmp_path / "metrics.prom"
    target.write_text("old\n")
    (tmp_path / "link.prom").symlink_to(target)
    os.mkfifo(tmp_path / "fifo.prom")
    outs = {"link.prom": "is a symlink", "fifo.prom": "is a FIFO"}
    if os.geteuid() == 0:  # a device node of our own, as /dev/null is one (major 1, minor 3)
        os.mknod(tmp_path / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        outs["null"] = "is a character device"
    for name, said in outs.items():
        _one_line_exit_2(["export", "openmetrics", str(run_dir), "--out", str(tmp_path / name)], tmp_path, said)
    assert (tmp_path / "link.prom").is_symlink() and target.read_text() == "old\n"
    assert stat.S_ISFIFO((tmp_path / "fifo.prom").lstat().st_mode)
    if "null" in outs:
        assert stat.S_ISCHR((tmp_path / "null").lstat().st_mode)
    done = railbench(["export", "openmetrics", str(run_dir), "--out", str(target)], cwd=tmp_path)
    assert done.returncode == 0 and target.read_text().endswith("# EOF\n")


def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path) -> None:
    """``| head`` closes the pipe: exit 141 (128 + SIGPIPE) and nothing on stderr, never a BrokenPipeError."""
    import subprocess
    import sys

    from tests.support import rank_env

    run_dir = _run_dir(tmp_path)
    for args in (
        ["export", "openmetrics", str(run_dir)],
        ["hca", "--devices", ",".join(f"mlx5_{k}" for k in range(64))],
    ):
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench", *args],
            cwd=tmp_path,
            env=rank_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before the first byte
        with proc.stderr:
            err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 141 and err == "", err


def test_compare_of_a_run_below_min_bytes_is_one_line(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path)
    profile = tmp_path / "p.toml"
    profile.write_text('transport = "loopback"\n[compare]\nmin_bytes = "64M"\n')
    _one_line_exit_2(
        ["compare", str(run_dir), "--history", str(tmp_path / "h.sqlite"), "--init", "--profile", str(profile)],
        tmp_path,
        "no metrics to compare",
        "min_bytes",
    )


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--cluster", "c" * 100_000, "a cluster name has at most 64"),
        ("--out", "x" * 300, "is 300 bytes long"),
        ("--history", "h" * 300 + ".sqlite", "is 307 bytes long"),
        ("--spec", "[" * 100_000, "nests objects and arrays more than 64 deep"),
        ("--spec", "9" * 5000, "an integer of 5000 digits"),
    ],
)
def test_hostile_values_are_refused_before_any_rank(tmp_path: Path, flag: str, value: str, said: str) -> None:
    args = ["run", "--np", "2", flag, value]
    if flag != "--out":
        args += ["--out", str(tmp_path / "out")]
    _one_line_exit_2(args, tmp_path, said)
    assert not (tmp_path / "out").exists() and not (tmp_path / "reports").exists()
