"""Issue 33, what the wild sends the importer: a table whose ``#`` lines were lost to Markdown, rows that fit no
collective, ``--nranks`` that must count, a run that crashed before its first row, and the old sendrecv table
that says nothing of its ranks. Every log here is our own, written in nccl-tests' formats (src/common.cu and
the per-test print_header of 2021, commit 9dae3d3, for the old one)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from bench.commands.importer import ImportConfig, run
from bench.exits import UserError
from bench.nccltests import parse_log, parse_text
from bench.rundir.runjson import read_run_json
from tests.support.history_fixtures import float_str, json_log, sweep, text_log

HOSTS = ("gpu-b01", "gpu-b02")
SIZES = [1 << k for k in range(20, 31, 2)]


def _without_hashes(text: str) -> str:
    """The log as it reads after a paste into Markdown without a code fence: each ``#`` line is a heading,
    and what is left of it is its text without the ``#`` and the space after it."""
    return "\n".join(re.sub(r"^#+ ?", "", line) for line in text.splitlines()) + "\n"


def test_a_table_whose_hash_lines_were_lost_is_read_as_the_table() -> None:
    text = _without_hashes(text_log("all_reduce", HOSTS, 8, SIZES, info_lines=False))
    assert "\nnThread 1 nGpus 1" in text and "\n Rank 15 Group  0" in text
    for hints in ({}, {"collective": "all_reduce"}, {"nranks": 16}):
        (table,) = parse_text(text, source="pasted.txt", **hints).tables  # type: ignore[arg-type]
        assert (table.collective.value, table.nranks.value, table.nranks.source) == ("all_reduce", 16, "device lines")
        assert (
            table.hosts == HOSTS
            and table.printed.complete
            and table.printed.header is not None
            and table.printed.header.iters == 20
        )
        assert any("lost their '#'" in note for note in table.notes)


def test_two_tables_without_their_hash_lines_stay_two_tables() -> None:
    """Without the ``#`` lines nothing separated one run from the next: the rows of an 8-rank and a 16-rank
    run became one table, whose busbw/algbw fits neither count."""
    one_node = text_log("all_reduce", HOSTS[:1], 8, SIZES, info_lines=False)
    two_nodes = text_log("all_reduce", HOSTS, 8, SIZES, info_lines=False)
    log = parse_text(_without_hashes(one_node + two_nodes), source="night.txt")
    assert [(t.collective.value, t.nranks.value, t.hosts) for t in log.tables] == [
        ("all_reduce", 8, HOSTS[:1]),
        ("all_reduce", 16, HOSTS),
    ]


def _bare_rows(text: str) -> str:
    """Only the rows: no marker, header, device lines, NCCL lines or footer (what a snippet keeps)."""
    return "\n".join(line for line in text.splitlines() if line.strip()[:1].isdigit()) + "\n"


def test_rows_that_fit_no_collective_say_so_and_why() -> None:
    rows = _bare_rows(text_log("all_reduce", HOSTS, 8, SIZES, info_lines=False))
    # busbw 2.5 x algbw: above all_reduce's 2(n-1)/n < 2 at any rank count, and no other collective reduces.
    damaged = "\n".join(
        "  ".join([*w[:7], float_str(float(w[6]) * 2.5, 6), *w[8:11], float_str(float(w[10]) * 2.5, 6), w[12]])
        for w in (line.split() for line in rows.splitlines())
    )
    with pytest.raises(UserError) as caught:
        parse_text(damaged, source="odd.txt")
    message = str(caught.value)
    assert "fit no collective" in message and "busbw/algbw 2.500" in message and "redop sum" in message
    assert "any known collective" not in message


def test_nranks_given_decides_between_collectives_the_rows_fit() -> None:
    """sendrecv's rows (redop sum, root -1, busbw = algbw) also fit all_reduce on 2 ranks; on 16 ranks only
    sendrecv fits, so --nranks 16 settles it (it used to count only after the collective was chosen)."""
    # nccl-tests 2.17 prints sendrecv's redop as "sum" (the default -o), root -1
    rows = _bare_rows(text_log("sendrecv", HOSTS, 8, SIZES, info_lines=False)).replace(" none ", "  sum ")
    with pytest.raises(UserError, match="all_reduce or sendrecv"):
        parse_text(rows, source="p2p.txt")
    (table,) = parse_text(rows, source="p2p.txt", nranks=16).tables
    assert (table.collective.value, table.collective.source, table.nranks.value, table.nranks.source) == (
        "sendrecv",
        "row shape",
        16,
        "given",
    )


def test_nranks_given_beats_what_busbw_over_algbw_suggests() -> None:
    rows = _bare_rows(text_log("all_reduce", HOSTS, 8, SIZES, info_lines=False))
    (guessed,) = parse_text(rows, source="x.txt").tables
    assert (guessed.nranks.value, guessed.nranks.source) == (16, "busbw/algbw")
    # Told a count the numbers contradict, with nothing else to go on: refused, saying what the numbers say.
    with pytest.raises(UserError, match=r"fit no collective nccl-tests runs over 15 ranks \(.*busbw/algbw 1\.875\)"):
        parse_text(rows, source="x.txt", nranks=15)
    (told,) = parse_text(rows, source="x.txt", nranks=15, collective="all_reduce").tables
    assert (told.nranks.value, told.nranks.source) == (15, "given")
    assert any("busbw/algbw says 16" in note for note in told.notes)


def _crashed_alltoall() -> str:
    """alltoall_perf on 16 ranks that hit an illegal address before its first size: nccl-tests' CUDACHECK
    line, then TESTCHECK's trace back up (src/common.h), and no row."""
    return text_log(
        "alltoall",
        HOSTS,
        8,
        SIZES,
        stop_after=0,
        failure=(
            "gpu-b02: Test CUDA failure common.cu:1031 'an illegal memory access was encountered'\n"
            " .. gpu-b02 pid 4013: Test failure common.cu:1188\n"
            " .. gpu-b02 pid 4013: Test failure alltoall.cu:96"
        ),
    )


def test_a_run_that_failed_before_its_first_row_says_so_and_where(tmp_path: Path) -> None:
    text = _crashed_alltoall()
    line = 1 + text.splitlines().index(
        "gpu-b02: Test CUDA failure common.cu:1031 'an illegal memory access was encountered'"
    )
    with pytest.raises(UserError) as caught:
        parse_text(text, source="a2a.log")
    message = str(caught.value)
    assert "the alltoall run failed before its first result row" in message
    assert f"line {line}: gpu-b02: Test CUDA failure common.cu:1031 'an illegal memory access" in message
    assert "*_perf" not in message
    log = tmp_path / "a2a.log"
    log.write_text(text)
    err = io.StringIO()
    assert run(ImportConfig("nccl-tests", (log,), out_root=tmp_path / "runs", no_history=True), err=err) == 2
    assert err.getvalue().count("\n") == 1 and "illegal memory access" in err.getvalue()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_run_that_failed_before_its_first_row_fails_the_log_it_is_part_of(tmp_path: Path) -> None:
    """all_reduce measured, then alltoall crashed before a row: the failure used to vanish with the empty
    table, and the log imported as a clean, complete run."""
    log = tmp_path / "night.log"
    log.write_text(text_log("all_reduce", HOSTS, 8, SIZES) + _crashed_alltoall())
    parsed = parse_text(log.read_text(), source=str(log))
    assert [t.collective.value for t in parsed.tables] == ["all_reduce"]
    assert parsed.failures[0].startswith("gpu-b02: Test CUDA failure")
    assert run(ImportConfig("nccl-tests", (log,), out_root=tmp_path / "runs", no_history=True)) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    record = read_run_json(run_dir)
    assert (record.status, record.verdict) == ("failed", "error")
    decided = record.decided()
    assert decided is not None and "illegal memory access" in decided.reasons[0]


def test_a_json_file_of_a_run_that_failed_before_its_first_row() -> None:
    data = json.loads(json_log("alltoall", HOSTS, 8, SIZES))
    data["results"] = []
    data["errors"] = ["gpu-b02: Test CUDA failure common.cu:1031 'an illegal memory access was encountered'"]
    with pytest.raises(UserError, match=r"the alltoall_perf run failed before its first result \(gpu-b02: Test CUDA"):
        parse_log(json.dumps(data), source="a2a.json")


def _old_sendrecv(*, peak_GBps: float, with_columns: bool = True) -> str:
    """sendrecv_perf of 2021 (nccl-tests 9dae3d3): no redop and no root column, the largest error in
    exponent form, one process driving 8 GPUs and no device list, nor any command line."""
    lines = [
        "# nThread 1 nGpus 8 minBytes 1024 maxBytes 1073741824 step: 4(factor) warmup iters: 5 iters: 20 validation: 1",
        "#",
    ]
    if with_columns:
        lines += [
            "#                                          out-of-place                       in-place",
            "#       size         count    type     time   algbw   busbw  error     time   algbw   busbw  error",
            "#        (B)    (elements)             (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)",
        ]
    for p in sweep("sendrecv", 8, [1 << k for k in range(10, 31, 2)], peak_GBps=peak_GBps):
        half = f"  {float_str(p.time_us, 7)}  {float_str(p.algbw, 6)}  {float_str(p.busbw, 6)}  0e+00"
        lines.append(f"{p.size:12d}  {p.count:12d}  {'float':>8}" + half + half)
    lines += ["# Out of bounds values : 0 OK", "# Avg bus bandwidth    : 12.3456", ""]
    return "\n".join(lines)


@pytest.mark.parametrize("peak_GBps", [180.0, 0.6])
@pytest.mark.parametrize("with_columns", [True, False])
def test_an_old_sendrecv_table_that_never_says_its_rank_count(peak_GBps: float, with_columns: bool) -> None:
    """Only sendrecv prints neither redop nor root with busbw = algbw (broadcast and the other rooted tests
    always print a root; one rank of a ring collective prints busbw 0): it is sendrecv, and its busbw needs no
    rank count. Also when every size is under 1 GB/s, where busbw/algbw pins nothing."""
    (table,) = parse_text(_old_sendrecv(peak_GBps=peak_GBps, with_columns=with_columns), source="results.txt").tables
    assert (table.collective.value, table.collective.source) == ("sendrecv", "row shape")
    assert (table.nranks.value, table.nranks.source) == (None, "unknown")
    assert (
        table.printed.rows[-1].measurements[0].busbw_GBps.value
        == table.printed.rows[-1].measurements[0].algbw_GBps.value
    )
