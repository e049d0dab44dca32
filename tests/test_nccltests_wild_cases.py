"""nccl-tests text as the field prints it, beyond what the format documents (issue 42): a table whose header
lost its ``#`` named only by its closing ``# Collective test concluded`` line, a device list cut to its last
line, a run whose every size is under 1 GB/s, and an early-2020 all_gather whose busbw equals its algbw.

The tables are written by ``tests.support.history_fixtures.text_log`` (nccl-tests' own ``%7s``/``%6s`` formatting of
src/util.cu); the verbatim cases behind each are in ``tests/data/wild/nccl-tests-text/`` (their URLs in its
``cases.toml``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.exits import UserError
from bench.nccltests import parse_text
from tests.support import railbench_inline
from tests.support.history_fixtures import float_str, sweep, text_log
from tests.support.wild.manifest import WILD

SIZES = [1 << k for k in range(20, 31, 2)]
TEXT = WILD / "nccl-tests-text"


def _without_head(text: str) -> list[str]:
    """The log from its column header on, as a paste that lost the run's first lines keeps it."""
    lines = text.splitlines()
    return lines[next(i for i, line in enumerate(lines) if line.startswith("#  size")) :]


def test_the_closing_line_names_a_table_whose_header_lost_its_hash() -> None:
    """all_gather and alltoall rows look alike; the header here came without its '#' (Markdown) and no
    starting marker, but nccl-tests' last line, ``# Collective test concluded: all_gather_perf``, names it."""
    lines = _without_head(text_log("all_gather", ("gpu-a01", "gpu-a02"), 8, SIZES, info_lines=False))
    lines[0] = lines[0].lstrip("# ")
    text = "\n".join(lines)
    assert text.rstrip().endswith("# Collective test concluded: all_gather_perf")
    (table,) = parse_text(text).tables
    assert (table.collective.value, table.collective.source) == ("all_gather", "marker")
    assert table.nranks.value == 16 and len(table.printed.rows) == len(SIZES)
    without_close = "\n".join(lines[:-1])
    with pytest.raises(UserError, match="cannot tell which collective"):
        parse_text(without_close)


def test_a_device_list_cut_to_its_last_line_is_not_one_rank() -> None:
    """A paste that kept only ``Rank 71`` of a GB200 NVL72 run (coreweave/nccl-tests#43): the list says 72
    ranks or more, and busbw/algbw 1.972 pins all_reduce's 2(n-1)/n at 72."""
    text = text_log("all_reduce", tuple(f"gb200-{i:02d}" for i in range(18)), 4, SIZES, info_lines=False)
    lines = text.splitlines()
    kept = [line for line in lines if not line.startswith("#  Rank") or "Rank 71 " in line]
    kept = [line for line in kept if "Collective test" not in line]  # the paste kept no marker
    (table,) = parse_text("\n".join(kept)).tables
    assert (table.collective.value, table.collective.source) == ("all_reduce", "row shape")
    assert (table.nranks.value, table.nranks.source) == (72, "busbw/algbw")
    assert not table.hosts_complete


def test_rows_under_1_GBps_still_pin_the_rank_count() -> None:
    """A slow all_reduce (a 100 GbE bond, nccl#1184): 0.81 and 0.81 pin busbw/algbw to 0.988-1.012, which is
    all_reduce over 2 ranks and no other count."""
    lines = ["#       size         count      type   redop    root     time   algbw   busbw #wrong"]
    for p in sweep("all_reduce", 2, [1 << 18, 1 << 19], peak_GBps=0.9):
        half = f"  {float_str(p.time_us, 7)}  {float_str(p.algbw, 6)}  {float_str(p.busbw, 6)}       0"
        lines.append(f"{p.size:12d}  {p.count:12d}     float     sum      -1" + half + half)
    (table,) = parse_text("\n".join(lines), collective="all_reduce").tables
    assert max(r.measurements[0].algbw_GBps.value for r in table.printed.rows) < 1.0
    assert (table.nranks.value, table.nranks.source) == (2, "busbw/algbw")


def test_the_command_line_names_an_all_gather_whose_busbw_is_its_algbw() -> None:
    """nccl-tests of early 2020 printed all_gather's busbw equal to its algbw (nccl-tests#37, V100): the
    command line before the table names the program and the rows have its shape, so it is all_gather over
    the 8 GPUs of ``-g 8``, its busbw read as printed and the mismatch noted."""
    text = "\n".join(
        [
            "all_gather_perf -g 8 -b 4294967296 -e 4294967296 -n 100",
            "       size         count    type     time   algbw   busbw  error     time   algbw   busbw  error",
            "        (B)    (elements)             (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)",
            "  4294967296     134217728   float    29122  129.05  129.05  0e+00    29169  128.84  128.84  0e+00",
            " Out of bounds values : 0 OK",
            " Avg bus bandwidth    : 128.942",
        ]
    )
    (table,) = parse_text(text).tables
    assert (table.collective.value, table.collective.source) == ("all_gather", "command")
    assert (table.nranks.value, table.printed.out_of_bounds, table.printed.avg_busbw_GBps) == (8, 0, 128.942)
    assert any("not all_gather's factor" in note for note in table.notes)


def _import(log: Path, out: Path) -> tuple[int, list[str], dict[str, Any]]:
    """``railbench import nccl-tests LOG`` as a user runs it: exit status, stderr lines and the run.json."""
    done = railbench_inline(["import", "nccl-tests", str(log), "--out-root", str(out), "--no-history"])
    found = sorted(out.glob("*/run.json"))
    return done.returncode, done.stderr.splitlines(), json.loads(found[0].read_text()) if found else {}


def test_import_of_a_gb200_table_cut_to_rank_71(tmp_path: Path) -> None:
    """coreweave/nccl-tests#43, verbatim: 72 ranks (busbw/algbw), and 18 trays of 4 GPUs (``device 3`` of the
    one host listed), not 72 nodes of one GPU; measured, no target on import."""
    rc, _, run_json = _import(TEXT / "gb200-nvl72-rank71-only.txt", tmp_path / "runs")
    assert rc == 0
    assert (run_json["nranks"], run_json["nnodes"], run_json["verdict"]) == (72, 18, "measured")
    assert run_json["sweep"]["collectives"] == ["all_reduce"]


def test_import_of_an_old_all_gather_whose_header_lost_its_hash(tmp_path: Path) -> None:
    """nccl-tests#37, verbatim: all_gather over 8 GPUs from its command line, its error column 1e+00 (and 2
    out-of-bounds values) a failed run."""
    rc, _, run_json = _import(TEXT / "v100-8gpu-header-lost-hash-oob-failed.txt", tmp_path / "runs")
    assert rc == 0
    assert (run_json["nranks"], run_json["verdict"]) == (8, "fail")
    assert run_json["sweep"]["collectives"] == ["all_gather"]


def test_import_of_a_table_two_collectives_fit_is_refused_in_one_line(tmp_path: Path) -> None:
    """nccl#1184, verbatim: sum, root -1, busbw = algbw is all_reduce or sendrecv over 2 ranks, and the cut
    names neither: exit 2, one line that asks for --collective, no run directory."""
    rc, err, run_json = _import(TEXT / "dgx-h100-proto-simple-wrong-counts.txt", tmp_path / "runs")
    assert (rc, len(err), run_json) == (2, 1, {})
    assert "all_reduce or sendrecv" in err[0] and "--collective" in err[0]


def test_rank_labels_inside_rows_are_not_part_of_them() -> None:
    """MPICH and Intel MPI label each write with ``[N]`` (``-l``, ``-prepend-rank``), and nccl-tests prints a
    row in several writes: ``[0]   1048576 ... sum      -1[0]    1626.5 ...      0[0]    2302.3 ...``
    (NVIDIA/nccl#1453). The labels go, the rows stay, and an NCCL INFO line keeps its own ``[0]``."""
    plain = text_log("all_reduce", ("gpu-a01", "gpu-a02"), 8, SIZES)
    labelled = []
    for line in plain.splitlines():
        if line.lstrip()[:1].isdigit():  # a row: a label glued after its root field
            line = line.replace("      -1  ", "      -1[0]  ")
        labelled.append(f"[0] {line}")
    assert sum("-1[0]  " in line for line in labelled) == len(SIZES)
    (table,) = parse_text("\n".join(labelled)).tables
    (expected,) = parse_text(plain).tables
    assert [r.measurements for r in table.printed.rows] == [r.measurements for r in expected.printed.rows]
    assert (table.collective.value, table.nranks.value, table.hosts) == ("all_reduce", 16, ("gpu-a01", "gpu-a02"))
