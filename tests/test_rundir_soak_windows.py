"""windows.jsonl: a soak's windows survive being written, cut by a crash and read back (bench.rundir.soak_windows)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import codec
from bench.rundir.part import Part
from bench.rundir.soak_windows import (
    WINDOWS_FILE,
    CollectiveWindow,
    GpuWindow,
    LinkWindow,
    NamedInWindow,
    SoakWindow,
    append_window,
    read_windows,
)


def _window(index: int) -> SoakWindow:
    return SoakWindow(
        index=index,
        start_s=10.0 * index,
        end_s=10.0 * index + 9.5,
        rounds=(index % 3,),
        links=(LinkWindow("node01", 2, "mlx5_3:1", 371.5, 4, errors={"symbol_error": 3}, flaps=1),),
        collectives=(CollectiveWindow("all_reduce", 1 << 30, 361.0, 380.0),),
        gpus=(GpuWindow("node01", 5, xid=(79,), throttle=("hw_thermal_slowdown",)),),
        named=(NamedInWindow(Part(kind="link", node="node01", rail=2, device="mlx5_3:1"), "slow"),),
    )


def test_windows_read_back_as_written_in_order(tmp_path: Path) -> None:
    for index in range(3):
        append_window(tmp_path, _window(index))
    assert read_windows(tmp_path) == [_window(0), _window(1), _window(2)]


def test_a_line_a_crash_cut_is_left_out_and_no_file_is_no_window(tmp_path: Path) -> None:
    assert read_windows(tmp_path) == []
    append_window(tmp_path, _window(0))
    whole = (tmp_path / WINDOWS_FILE).read_bytes()
    (tmp_path / WINDOWS_FILE).write_bytes(whole + whole[: len(whole) // 2])
    assert read_windows(tmp_path) == [_window(0)]


def test_a_damaged_line_is_refused_with_its_number(tmp_path: Path) -> None:
    append_window(tmp_path, _window(0))
    with (tmp_path / WINDOWS_FILE).open("a") as out:
        out.write('{"index": "first"}\n')
    with pytest.raises(codec.Refused, match="line 2"):
        read_windows(tmp_path)


def test_a_quiet_link_and_gpu_write_only_what_they_measured() -> None:
    """A window holds one record per link and per GPU: the fields at their defaults stay out of the line, and read
    back as their defaults."""
    quiet = LinkWindow("gpu-node-017", 3, "mlx5_4:1", 371.512, 4)
    gpu = GpuWindow("gpu-node-017", 3, sm_clock_MHz=1980.0, temperature_C=61.0)
    assert codec.encode(quiet) == {
        "node": "gpu-node-017",
        "rail": 3,
        "device": "mlx5_4:1",
        "busbw_Gbps": 371.512,
        "cells": 4,
    }
    assert codec.encode(gpu) == {"node": "gpu-node-017", "gpu": 3, "sm_clock_MHz": 1980.0, "temperature_C": 61.0}
    window = SoakWindow(0, 0.0, 9.5, links=(quiet, _window(1).links[0]), gpus=(gpu,))
    assert codec.decode(SoakWindow, codec.encode(window)) == window
