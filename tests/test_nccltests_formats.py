"""The nccl-tests parser on our own fixtures: -J JSON (versions 1 and 3, whole and cut off), truncated and
failed text logs, srun labels, timestamps, NCCL INFO lines, wrong values, and inputs it must refuse."""

from __future__ import annotations

import pytest

from bench.exits import UserError
from bench.nccltests import Number, parse_json, parse_log, parse_row, parse_text
from bench.nccltests.convert import table_nnodes
from tests.support.history_fixtures import json_log, sweep, text_log

SIZES = [1 << k for k in range(10, 31, 4)]  # 1K .. 1G, 6 sizes
HOSTS = ("gpu-a01", "gpu-a02")


def test_json_v3_rows_devices_and_versions() -> None:
    log = parse_json(json_log("all_reduce", HOSTS, 8, SIZES), source="nightly.json")
    (table,) = log.tables
    assert log.format == "json" and not log.truncated
    assert (table.collective.value, table.collective.source) == ("all_reduce", "json args")
    assert (table.nranks.value, table.nranks.source) == (16, "json devices")
    assert table.hosts == HOSTS and table.printed.gpus == ("NVIDIA H100 80GB HBM3",)
    assert table.printed.quoted.nccl_version == "2.29.2"
    assert [r.bytes for r in table.printed.rows] == SIZES
    expected = sweep("all_reduce", 16, SIZES)
    assert [round(r.measurements[0].busbw_GBps.value, 6) for r in table.printed.rows] == [
        round(p.busbw, 6) for p in expected
    ]
    assert [m.placement for m in table.printed.rows[0].measurements] == ["out-of-place", "in-place"]
    assert table.printed.rows[0].root == -1 and table.printed.rows[0].measurements[0].wrong == 0
    assert log.env["NCCL_IB_HCA"] == "^=mlx5_0" and log.start_time == "2026-11-20 22:43:10"
    assert table.printed.avg_busbw_GBps == pytest.approx(sum(p.busbw for p in expected) / len(expected))


def test_json_lists_one_device_per_process() -> None:
    """With -g 8 each process drives 8 GPUs but -J records only its first: nranks = processes x nGpus."""
    text = json_log("all_gather", HOSTS, 8, SIZES, ngpus_per_process=8)
    (table,) = parse_json(text).tables
    assert len(table.printed.devices) == 2 and table.nranks.value == 16
    assert table.hosts == HOSTS and table.hosts_complete and table_nnodes(table) == 2


def test_json_with_a_damaged_record_is_refused() -> None:
    text = json_log("all_reduce", HOSTS, 8, SIZES).replace(f'"size":{SIZES[2]},', '"size":"lots",')
    with pytest.raises(UserError, match=r"bad.json: results\[2\]: size is .lots., not a whole number"):
        parse_json(text, source="bad.json")


def test_json_v1_misspelled_average_key() -> None:
    (table,) = parse_json(json_log("sendrecv", HOSTS, 1, SIZES, version=1)).tables
    assert table.printed.avg_busbw_GBps is not None and table.printed.avg_busbw_GBps > 0


def test_json_cut_off_mid_write_keeps_complete_results() -> None:
    whole = json_log("all_reduce", HOSTS, 8, SIZES)
    cut = whole[: whole.index(f'{{"size":{SIZES[4]}') + 30]  # inside the fifth result
    log = parse_log(cut, source="killed.json")
    (table,) = log.tables
    assert log.truncated and not table.printed.complete
    assert [r.bytes for r in table.printed.rows] == SIZES[:4]
    assert table.nranks.value == 16


def test_json_errors_are_failures() -> None:
    log = parse_json(json_log("all_reduce", HOSTS, 8, SIZES, errors=["remote process exited"]))
    assert log.failures == ("remote process exited",)


def test_json_without_results_is_refused() -> None:
    with pytest.raises(UserError, match="holds no results"):
        parse_json('{"version":3,"args":["all_reduce_perf"],"config":{"nthreads":1,"ngpus":1')


def test_text_with_srun_labels_info_lines_and_timestamps() -> None:
    text = text_log("reduce_scatter", HOSTS, 4, SIZES, label_ranks=True, timestamps=True)
    (table,) = parse_text(text).tables
    assert (table.collective.value, table.nranks.value, table.printed.complete) == ("reduce_scatter", 8, True)
    assert len(table.printed.rows) == len(SIZES) and table.printed.quoted.nccl_version == "2.27.3"
    assert table.printed.rows[-1].measurements[1].busbw_GBps.value == pytest.approx(
        sweep("reduce_scatter", 8, SIZES)[-1].busbw, abs=0.005
    )


def test_truncated_text_keeps_rows_and_says_so() -> None:
    text = text_log("all_gather", HOSTS, 8, SIZES, stop_after=3, cut_last_row=True)
    log = parse_text(text)
    (table,) = log.tables
    assert log.truncated and not table.printed.complete and not log.failures
    assert [r.bytes for r in table.printed.rows] == SIZES[:3]
    assert any("damaged row" in n for n in table.notes) and any("truncated" in n for n in table.notes)


def test_failed_text_run_names_the_failure() -> None:
    failure = "gpu-a02: Test NCCL failure common.cu:1083 'remote process exited or there was a network error'"
    log = parse_text(text_log("all_reduce", HOSTS, 8, SIZES, stop_after=2, failure=failure))
    (table,) = log.tables
    assert table.printed.failures == (failure,) and log.failures == (failure,)
    assert len(table.printed.rows) == 2 and not table.printed.complete


def test_wrong_values_and_out_of_bounds() -> None:
    (table,) = parse_text(text_log("all_reduce", HOSTS, 8, SIZES, wrong={SIZES[2]: 12})).tables
    assert table.printed.out_of_bounds == 1
    assert [m.wrong for m in table.printed.rows[2].measurements] == [12, 12]


def test_row_layouts() -> None:
    new = parse_row(
        "     1048576        262144     float     sum      -1    74.78   14.02   24.54    N/A"
        "    76.17   13.77   24.09    N/A"
    )
    assert (new.bytes, new.count, new.redop, new.root) == (1048576, 262144, "sum", -1)
    assert [m.wrong for m in new.measurements] == [None, None]
    old = parse_row(
        "  8589934592    2147483648   float     sum    63896  134.44  235.26    N/A    63959  134.30  235.03    N/A"
    )
    assert old.root is None and old.measurements[0].time_us == Number(63896.0, 0.5)
    per_iter = parse_row(
        "    33554432       8388608     float     sum      -1   410.2   81.80  153.38      0   401.0   420.5   419.9"
        "    1.20   409.8   81.88  153.53      0   400.2   421.1   420.0    1.31"
    )
    assert [m.busbw_GBps.value for m in per_iter.measurements] == [153.38, 153.53]
    with pytest.raises(ValueError, match="not a whole"):
        parse_row("  2147483648     536870912     float     sum      -1    20218  106.22")


def test_ambiguous_collective_needs_a_name() -> None:
    """all_gather and alltoall rows look the same: without a name in the log, ask for --collective."""
    lines = text_log("alltoall", HOSTS, 8, SIZES).splitlines()[2:]  # drop the version/marker lines
    text = "\n".join(line for line in lines if "Collective test concluded" not in line)  # and the closing one
    with pytest.raises(UserError, match="--collective"):
        parse_text(text)
    assert parse_text(text, collective="alltoall").tables[0].collective.source == "given"
    assert parse_text(text, source="/logs/alltoall_n16.log").tables[0].collective.source == "file name"


def test_unknown_collective_and_empty_logs_are_refused() -> None:
    text = text_log("all_reduce", HOSTS, 8, SIZES).replace("all_reduce_perf", "hypercube_perf")
    with pytest.raises(UserError, match="hypercube"):
        parse_text(text)
    with pytest.raises(UserError, match="no nccl-tests result rows"):
        parse_log("NCCL INFO Bootstrap : Using eth0\nsegfault\n", source="empty.log")
