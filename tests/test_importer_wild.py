"""Issue 12, the importer against the wild: mpirun --tag-output labels, the rank count from the command
line, the old format under a neutral file name, and the hostile inputs of the fault campaign (each refused
with exit 2 and one line, in well under a second, leaving no run directory and no history row)."""

from __future__ import annotations

import os
import re
import stat
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
from bench.rundir.results_csv import read_results_rows
from bench.rundir.runjson import read_run_json
from tests.support import railbench
from tests.support.history_fixtures import text_log

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
    assert (table.collective.value, table.nranks.value, table.hosts) == ("all_gather", 16, HOSTS)
    assert [r.measurements for r in table.printed.rows] == [r.measurements for r in expected.printed.rows]


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
    assert (table.collective.value, table.collective.source) == ("all_gather", "command")
    assert (table.nranks.value, table.nranks.source) == (4, "command line")  # one process x -g 4
    assert table.printed.rows[0].root is None and table.printed.rows[0].redop == ""
    assert [m.wrong for m in table.printed.rows[2].measurements] == [300, 0]
    assert table.printed.rows[3].measurements[1].busbw_GBps.value == 20.91


def test_old_format_marker_then_file_name_as_last_resort(tmp_path: Path) -> None:
    body = OLD_ALL_GATHER.split("\n", 1)[1]
    marked = parse_text("# Collective test starting: all_gather_perf\n" + body, source="x.txt")
    assert marked.tables[0].collective.source == "marker"
    log = tmp_path / "nccl_allgather.log"
    log.write_text(body)
    config = ImportConfig("nccl-tests", (log,), out_root=tmp_path / "runs", no_history=True, nranks=4)
    assert run(config) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    meta = read_run_json(run_dir).to_json()
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
    assert (log.tables[0].nranks.value, log.tables[0].nranks.source) == (8, "command line")


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
    from tests.support.history_fixtures import json_log

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
    assert time.perf_counter() - started < 1.0 and log.tables[0].collective.value == "all_reduce"


def test_over_long_line_is_skipped_with_a_note() -> None:
    text = text_log("all_reduce", HOSTS, 8, SIZES)
    head, tail = text.split("#\n", 1)
    (table,) = parse_text(head + "#\n" + "z" * 100_000 + "\n" + tail).tables
    assert any("longer than" in note for note in table.notes)


@pytest.mark.slow
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


# nccl-tests built with MPI=1 and NAME_SUFFIX=_mpi, as container images ship it: the program, the marker and
# the footer all carry the suffix.
def _mpi_build_log() -> str:
    body = text_log("all_reduce", HOSTS, 8, SIZES).replace("all_reduce_perf", "all_reduce_perf_mpi")
    command = "mpirun -np 16 -H gpu-a01:8,gpu-a02:8 -x NCCL_DEBUG=WARN /opt/nccl-tests/build/all_reduce_perf_mpi "
    return command + "-b 1M -e 64M -f 4 -g 1\n" + body


def test_an_mpi_build_with_a_name_suffix_imports_with_no_hints(tmp_path: Path) -> None:
    text = _mpi_build_log()
    assert "# Collective test starting: all_reduce_perf_mpi" in text
    (table,) = parse_text(text, source="nccl.out").tables
    assert (table.collective.value, table.collective.source, table.nranks.value) == ("all_reduce", "marker", 16)
    assert read_command("srun ./build/sendrecv_perf_mpi -b 8 -e 1G -g 1").collective == "sendrecv"  # type: ignore[union-attr]
    log = tmp_path / "nccl.out"
    log.write_text(text)
    assert run(ImportConfig("nccl-tests", (log,), out_root=tmp_path / "runs", no_history=True)) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert {r["collective"] for r in read_results_rows(run_dir)} == {"all_reduce"}


# An old-format sendrecv table (the "error" column, no device list) from a launcher line that gives no rank
# count: nothing says how many ranks ran, and nothing needs to, since sendrecv's busbw is its algbw.
OLD_SENDRECV = """\
srun --mpi=pmix ./build/sendrecv_perf -b 8M -e 64M -f 2 -g 1
# nThread 1 nGpus 1 minBytes 8388608 maxBytes 67108864 step: 2(factor) warmup iters: 5 iters: 20 validation: 1
#
#                                                     out-of-place                       in-place
#       size         count    type   redop     time   algbw   busbw  error     time   algbw   busbw  error
#        (B)    (elements)                     (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)
     8388608       2097152   float     sum   419.43   20.00   20.00  0e+00   418.90   20.03   20.03  0e+00
    16777216       4194304   float     sum   699.05   24.00   24.00  0e+00   700.10   23.96   23.96  0e+00
    33554432       8388608   float     sum  1290.55   26.00   26.00  0e+00  1291.00   25.99   25.99  0e+00
    67108864      16777216   float     sum  2396.75   28.00   28.00  0e+00  2395.20   28.02   28.02  0e+00
# Out of bounds values : 0 OK
# Avg bus bandwidth    : 24.5
"""


def test_a_rankless_sendrecv_table_imports_with_no_hints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (table,) = parse_text(OLD_SENDRECV, source="sendrecv.txt").tables
    assert (table.collective.value, table.nranks.value, table.nranks.source) == ("sendrecv", None, "unknown")
    assert "busbw is algbw at any rank count" in table.notes[-1]
    log = tmp_path / "sendrecv.txt"
    log.write_text(OLD_SENDRECV)
    history = tmp_path / "h.sqlite"
    assert run(ImportConfig("nccl-tests", (log,), out_root=tmp_path / "runs", history=history)) == 0
    assert "sendrecv x? (4 sizes)" in capsys.readouterr().out
    (run_dir,) = (tmp_path / "runs").iterdir()
    rows = read_results_rows(run_dir)
    assert [r["busbw_GBps"] for r in rows[::2]] == ["20.0", "24.0", "26.0", "28.0"] and rows[0]["nranks"] == ""
    assert read_run_json(run_dir).nranks is None
    with closing(open_store(history)) as conn:
        assert len(list_runs(conn, limit=None)) == 1
    # a collective whose busbw depends on the count still asks for it (too slow here for busbw/algbw to tell)
    small = (
        "\n".join(OLD_SENDRECV.splitlines()[:6])
        + "\n        1024           256   float     sum    2048.0"
        + ("    0.50    0.88  0e+00    2048.0    0.50    0.88  0e+00\n")
    )
    with pytest.raises(UserError, match=r"\(all_reduce\) does not say how many ranks ran: pass --nranks N"):
        parse_text(small.replace("sendrecv_perf", "all_reduce_perf"), source="x")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
def test_a_log_that_is_no_regular_file_is_refused_before_it_is_read(tmp_path: Path, kind: str) -> None:
    """It used to be hashed first: a FIFO blocked for good and /dev/zero was hashed forever."""
    log = tmp_path / "nccl.log"
    if kind == "fifo":
        os.mkfifo(log)
    elif kind == "dev-zero":
        log.symlink_to("/dev/zero")
    else:
        log.mkdir()
    done = railbench(
        ["import", "nccl-tests", str(log), "--out-root", str(tmp_path / "runs"), "--no-history"], timeout=60
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "not a regular file" in done.stderr, done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.slow
def test_imported_run_directories_have_the_mode_the_umask_gives(tmp_path: Path) -> None:
    """mkdtemp made the staging folder 0700, and the rename kept it: teammates and the web server could not
    read imported runs while run and accept made theirs 0755. Every folder and file now follows the umask."""
    log = tmp_path / "nccl.out"
    log.write_text(text_log("all_reduce", HOSTS, 8, SIZES))
    for mask in (0o022, 0o002, 0o027):
        before = os.umask(mask)
        try:
            root = tmp_path / f"runs-{mask:03o}"
            assert run(ImportConfig("nccl-tests", (log,), out_root=root, no_history=True)) == 0
        finally:
            os.umask(before)
        (run_dir,) = root.iterdir()
        for path in (run_dir, *run_dir.rglob("*")):
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o777 if path.is_dir() else 0o666) & ~mask, f"{path}: {mode:o} under umask {mask:03o}"


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--cluster", "--out-root", "--history"])
def test_names_too_long_for_a_file_system_are_one_line(tmp_path: Path, flag: str) -> None:
    log = tmp_path / "nccl.out"
    log.write_text(text_log("all_reduce", HOSTS, 8, SIZES))
    value = "c" * 100_000 if flag == "--cluster" else str(tmp_path / ("x" * 300) / "y")
    started = time.perf_counter()
    args = ["import", "nccl-tests", str(log), flag, value]
    args += ["--out-root", str(tmp_path / "r")] if flag != "--out-root" else []
    args += ["--no-history"] if flag != "--history" else []
    done = railbench(args, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert flag in done.stderr and time.perf_counter() - started < 30
