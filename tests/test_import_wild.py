"""Issue 12, the importer against the wild: mpirun --tag-output labels, the rank count from the command
line, the old format under a neutral file name, and the hostile inputs of the fault campaign (each refused
with exit 2 and one line, in well under a second, leaving no run directory and no history row)."""

from __future__ import annotations

import re
import time
from contextlib import closing
from pathlib import Path

import pytest

from bench.bounded import InputError
from bench.commands.importer import ImportConfig, run
from bench.exits import UserError
from bench.history.store import list_runs, open_store
from bench.nccltests import parse_log, parse_text
from bench.nccltests.command import read_command
from bench.rundir.files import read_results_rows
from bench.rundir.runjson import read_run_json
from tests.history_fixtures import text_log
from tests.support import railbench

SIZES = [1 << k for k in range(20, 27, 2)]
HOSTS = ("gpu-a01", "gpu-a02")


def _tagged(text: str, indent: str = "") -> str:
    """Every line as mpirun --tag-output prints it, NCCL INFO lines of rank 1 interleaved."""
    out = []
    for k, line in enumerate(text.splitlines()):
        out.append(f"{indent}[1,0]<stdout>:{line}")
        if k % 3 == 0:
            out.append(f"{indent}[1,1]<stderr>:gpu-a01:777:790 [1] NCCL INFO Channel 00/0 : 1[1] -> 2[0] via P2P/IPC")
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("indent", ["", "    "])
def test_tag_output_labels_import_without_hints(indent: str) -> None:
    plain = text_log("all_gather", HOSTS, 8, SIZES)
    log = parse_text(_tagged(plain, indent), source="eks.out")
    (table,) = log.tables
    expected = parse_text(plain).tables[0]
    assert (table.collective, table.nranks, table.hosts) == ("all_gather", 16, HOSTS)
    assert [r.measurements for r in table.rows] == [r.measurements for r in expected.rows]


# Old nccl-tests: no redop/root columns for all_gather, an "error" column in exponent form.
OLD_ALL_GATHER = """\
./build/all_gather_perf -b 1M -e 8M -f 2 -g 4
# nThread 1 nGpus 4 minBytes 1048576 maxBytes 8388608 step: 2(factor) warmup iters: 5 iters: 20 validation: 1
#
#                                             out-of-place                       in-place
#       size         count    type     time   algbw   busbw  error     time   algbw   busbw  error
#        (B)    (elements)             (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)
     1048576         65536   float    61.20   17.13   12.85  0e+00    60.75   17.26   12.95  0e+00
     2097152        131072   float    95.11   22.05   16.54  0e+00    94.86   22.11   16.58  0e+00
     4194304        262144   float   161.90   25.91   19.43  3e+02   162.40   25.83   19.37  0e+00
     8388608        524288   float   301.30   27.84   20.88  0e+00   300.90   27.88   20.91  0e+00
# Out of bounds values : 0 OK
# Avg bus bandwidth    : 17.44
"""


def test_old_format_collective_from_the_command_line_not_the_file_name() -> None:
    (table,) = parse_text(OLD_ALL_GATHER, source="results-0412.txt").tables
    assert (table.collective, table.collective_source) == ("all_gather", "command")
    assert (table.nranks, table.nranks_source) == (4, "command line")  # one process x -g 4
    assert table.rows[0].root is None and table.rows[0].redop == ""
    assert [m.wrong for m in table.rows[2].measurements] == [300, 0]
    assert table.rows[3].measurements[1].busbw_GBps.value == 20.91


def test_old_format_marker_then_file_name_as_last_resort(tmp_path: Path) -> None:
    body = OLD_ALL_GATHER.split("\n", 1)[1]
    marked = parse_text("# Collective test starting: all_gather_perf\n" + body, source="x.txt")
    assert marked.tables[0].collective_source == "marker"
    log = tmp_path / "nccl_allgather.log"
    log.write_text(body)
    config = ImportConfig("nccl-tests", (log,), out_root=tmp_path / "runs", no_history=True, nranks=4)
    assert run(config) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    meta = read_run_json(run_dir)
    assert meta["source"]["collective_from_file_name"] == [1]
    assert "taken from the file name" in " ".join(meta["source"]["tables"][0]["notes"])


def test_rank_count_from_the_command_line() -> None:
    assert read_command("./build/sendrecv_perf -b 128M -e 1G -f 2 -g 8").nranks == 8  # type: ignore[union-attr]
    cmd = read_command("mpirun -np 4 -x NCCL_DEBUG=INFO /opt/nccl-tests/build/all_reduce_perf -t 2 --ngpus=2 -b 8")
    assert cmd is not None and (cmd.collective, cmd.processes, cmd.nranks) == ("all_reduce", 4, 16)
    assert read_command("srun --mpi=pmix all_reduce_perf -b 8").nranks is None  # type: ignore[union-attr]
    body = text_log("sendrecv", ("gpu-a01",), 8, SIZES)
    body = "\n".join(line for line in body.splitlines() if "Rank" not in line and "_perf" not in line)
    log = parse_text("./build/sendrecv_perf -b 128M -e 1G -f 2 -g 8\n" + body.replace("nGpus 1", "nGpus 8"))
    assert (log.tables[0].nranks, log.tables[0].nranks_source) == (8, "command line")


HOSTILE = {
    "huge step": ("step: 2(factor)", "step: " + "9" * 5000 + "(factor)", "step"),
    "huge pid": ("Pid   4000", "Pid " + "7" * 5000, "Pid"),
    "inf wrong": ("       0\n", "     inf\n", "#wrong"),
    "1e999 time": (None, "1e999", "time"),
    "negative busbw": (None, "-", "busbw"),
    "nan busbw": (None, "nan", "busbw"),
}


def _hostile(kind: str) -> str:
    text = text_log("all_reduce", HOSTS, 8, SIZES)
    old, new, _ = HOSTILE[kind]
    if old is not None:
        return text.replace(old, new, 1)
    lines = text.splitlines()
    row = next(i for i, line in enumerate(lines) if line.strip().startswith(str(SIZES[1])))
    words = lines[row].split()
    if kind == "1e999 time":
        words[5] = "1e999"
    elif kind == "negative busbw":
        words[7] = "-" + words[7]
    else:
        words[7] = "nan"
    lines[row] = "  ".join(words)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_numbers_are_refused_naming_the_field(kind: str) -> None:
    started = time.perf_counter()
    with pytest.raises(InputError, match=re.escape(HOSTILE[kind][2])):
        parse_text(_hostile(kind), source="bad.log")
    assert time.perf_counter() - started < 1.0


def test_json_hostile_numbers() -> None:
    from tests.history_fixtures import json_log

    good = json_log("all_reduce", HOSTS, 8, SIZES)
    for old, new, field in (
        (f'"size":{SIZES[0]}', '"size":' + "1" * 5000, "size"),
        ('"bus_bw":', '"bus_bw":1e999, "x":', "bus_bw"),
        ('"bus_bw":', '"bus_bw":NaN, "x":', "bus_bw"),
        ('"time":', '"time":-1, "x":', "time"),
    ):
        with pytest.raises(InputError, match=field):
            parse_log(good.replace(old, new, 1), source="bad.json")
    with pytest.raises(UserError):
        parse_log("{" + '"a":' * 100_000 + "1" + "}" * 100_000)


@pytest.mark.parametrize("line", ["a" * 4000, "x" * 20000, "1" * 20000 + " 2 float", " " * 10000 + "x"])
def test_long_lines_cost_linear_time(line: str) -> None:
    text = text_log("all_reduce", HOSTS, 8, SIZES)
    started = time.perf_counter()
    log = parse_text(line + "\n" + text + line + "\n")
    assert time.perf_counter() - started < 1.0 and log.tables[0].collective == "all_reduce"


def test_over_long_line_is_skipped_with_a_note() -> None:
    text = text_log("all_reduce", HOSTS, 8, SIZES)
    head, tail = text.split("#\n", 1)
    (table,) = parse_text(head + "#\n" + "z" * 100_000 + "\n" + tail).tables
    assert any("longer than" in note for note in table.notes)


def test_failed_import_leaves_nothing_behind(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite"
    good = tmp_path / "good.log"
    good.write_text(text_log("all_reduce", HOSTS, 8, SIZES))
    assert run(ImportConfig("nccl-tests", (good,), out_root=tmp_path / "runs", history=history)) == 0
    before = sorted(p.name for p in (tmp_path / "runs").iterdir())
    for kind in ("nan busbw", "negative busbw", "1e999 time"):
        bad = tmp_path / f"{kind.replace(' ', '_')}.log"
        bad.write_text(_hostile(kind))
        done = railbench(
            ["import", "nccl-tests", str(bad), "--out-root", str(tmp_path / "runs"), "--history", str(history)],
            timeout=60,
        )
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert str(bad) in done.stderr and done.stderr.count(str(bad)) == 1
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == before  # no run dir, no staging dir
    with closing(open_store(history)) as conn:
        assert len(list_runs(conn, limit=None)) == 1
    fresh = tmp_path / "fresh"
    bad = tmp_path / "nan_busbw.log"
    assert run(ImportConfig("nccl-tests", (bad,), out_root=fresh / "runs", no_history=True)) == 2
    assert not (fresh / "runs").exists()


def test_results_never_hold_nan_inf_or_negative(tmp_path: Path) -> None:
    good = tmp_path / "ok.log"
    good.write_text(_tagged(text_log("all_reduce", HOSTS, 8, SIZES)))
    assert run(ImportConfig("nccl-tests", (good,), out_root=tmp_path / "runs", no_history=True)) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    for row in read_results_rows(run_dir):
        for key in ("time_us", "algbw_GBps", "busbw_GBps", "busbw_Gbps"):
            assert 0 <= float(row[key]) < float("inf")


def test_one_summary_line_per_kind_of_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = text_log("all_reduce", HOSTS, 8, SIZES)
    log = tmp_path / "nights.log"
    log.write_text(one * 30)
    assert run(ImportConfig("nccl-tests", (log,), out_root=tmp_path / "runs", no_history=True)) == 0
    out = capsys.readouterr().out
    assert out.count("all_reduce x16") == 1 and "(30 tables)" in out
    assert len(out.splitlines()) < 10
