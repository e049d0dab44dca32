"""Property tests (hypothesis) for the readers of issue 12: on any input the nccl-tests importer (text and
JSON) and the NCCL log reader return a result or raise the project's input error (UserError, of which
InputError is one), within a time bound per KiB. Examples that found the issue's bugs are kept with
``@example``."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bench.exits import UserError
from bench.nccllogs import nccl_evidence, nccl_log
from bench.nccltests import parse_log
from bench.nccltests.convert import result_rows
from tests.history_fixtures import json_log, text_log

SECONDS_PER_KIB = 0.05  # generous: the box is a noisy shared 2-core machine
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GOOD_TEXT = text_log("all_reduce", ("gpu-a01", "gpu-a02"), 8, [1 << 20, 1 << 22, 1 << 24])
GOOD_JSON = json_log("all_reduce", ("gpu-a01", "gpu-a02"), 8, [1 << 20, 1 << 22, 1 << 24])

# Pieces of the real grammars, so generated text reaches the parsers' inner branches.
TEXT_PIECES = [
    "# nThread 1 nGpus 8 minBytes 8 maxBytes 1024 step: 2(factor) warmup iters: 5 iters: 20 validation: 1",
    "#  Rank  0 Group  0 Pid 1234 on gpu-a01 device  0 [0000:18:00] NVIDIA H100 80GB HBM3",
    "#       size         count      type   redop    root     time   algbw   busbw #wrong",
    "     1048576        262144     float     sum      -1    61.2   17.13   32.12      0    60.7   17.2   32.3      0",
    "     1048576        262144     float    61.2   17.13   12.85  0e+00",
    "# Out of bounds values : 0 OK",
    "# Avg bus bandwidth    : 17.44",
    "# Collective test starting: all_gather_perf",
    "mpirun -np 2 ./build/all_reduce_perf -b 8 -e 1G -g 4",
    "[1,0]<stdout>:",
    "gpu-a01:12:12 [0] NCCL INFO comm 0x1 rank 0 nRanks 16 nNodes 2",
    "inf",
    "nan",
    "1e999",
    "-3.5",
    "9" * 80,
    "\x1b[31m",
    "\\",
]
NCCL_PIECES = [
    "h1:12:13 [0] NCCL INFO ",
    "[1,0]<stdout>:",
    "0: ",
    "NCCL version 2.4.8+cuda10.1",
    "NET/IB : Using [0]mlx5_0:1/IB [1]mlx5_1:1/RoCE/SHARP [RO]; OOB ib0:10.0.0.1<0>",
    "NET/Socket : Using [0]eth0:10.0.0.1<0>",
    "Using network AWS Libfabric",
    "Channel 00/0 : 0[0] -> 1[0] [send] via NET/IB/1(3)/GDRDMA",
    "Ring 00 : 0 -> 1 [receive] via NET/IB/0",
    "NET/IB : No device found.",
    "transport/net_ib.cc:99 NCCL WARN hca mlx5_2",
    "9" * 80,
    ":",
    "[",
    "]",
]


def _lines(pieces: list[str]) -> st.SearchStrategy[str]:
    line = st.lists(st.sampled_from(pieces) | st.text(max_size=30), max_size=6).map("".join)
    return st.lists(line, max_size=40).map("\n".join)


def _within_bound(text: str, started: float) -> None:
    kib = max(1.0, len(text.encode("utf-8", "replace")) / 1024)
    assert time.perf_counter() - started < 1.0 + SECONDS_PER_KIB * kib


@SETTINGS
@given(_lines(TEXT_PIECES))
@example("x " + "a" * 4000)  # the cubic _PROGRAM regex of issue 12
@example(GOOD_TEXT.replace("step: 2(factor)", "step: " + "9" * 5000 + "(factor)"))
@example("     1048576  262144  float  sum  -1  61.2  17.13  -32.12  0  60.7  17.2  32.3  0")
def test_nccl_tests_text_returns_or_refuses(text: str) -> None:
    started = time.perf_counter()
    try:
        log = parse_log(text, source="gen.log")
    except UserError:
        pass
    else:
        for row in result_rows(log):
            assert 0 <= row["busbw_GBps"] < float("inf") and 0 <= row["time_us"] < float("inf")
    _within_bound(text, started)


@SETTINGS
@given(st.data())
def test_nccl_tests_json_returns_or_refuses(data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(GOOD_JSON)))
    junk = data.draw(st.sampled_from(["", "NaN", "Infinity", "-1", "1e999", "9" * 5000, '"x"', "[[[", "null", "}"]))
    at = data.draw(st.integers(0, cut))
    text = GOOD_JSON[:at] + junk + GOOD_JSON[at:cut]
    started = time.perf_counter()
    try:
        log = parse_log(text, source="gen.json")
    except UserError:
        pass
    else:
        for row in result_rows(log):
            assert 0 <= row["busbw_GBps"] < float("inf")
    _within_bound(text, started)


@SETTINGS
@given(_lines(NCCL_PIECES))
@example("a" * 40_000)  # the quadratic _PREFIX search of issue 12
@example("h:" + "5" * 5000 + ":1 [0] NCCL INFO x")
@example("h:1:1 [0] NCCL INFO NET/IB : Using [" + "7" * 5000 + "]mlx5_0:1/IB")
def test_nccl_log_returns_or_refuses(text: str) -> None:
    started = time.perf_counter()
    try:
        log = nccl_log.parse_text(text, "gen.log")
    except UserError:
        pass
    else:
        nccl_evidence.evidence([log], None)
    _within_bound(text, started)
