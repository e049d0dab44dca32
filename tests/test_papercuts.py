"""Papercuts a new user met (issue "every hostile input is refused cleanly"): each is exit 2 and one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import railbench_inline


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
    from tests.report_data import ClusterModel, write_run_dir

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
