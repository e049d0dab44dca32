"""The world sweep's items say today's sentences (issue 44 items 2 and 4; docs/design.md, "Adding a finding"):
a collective below its target or with wrong elements and the byte counters' findings, as the terminal's
``# FAIL`` lines (the verdict's reasons), run.json's items and junit.xml's messages say them. The sentences are
pinned here from the sweep's own rows (as the sweep holds them, floats, and as results.csv gives them back,
strings) and from the counters' own audit (``bench.fabric.counters.audit``), so that building them from
findings changes no word."""

from __future__ import annotations

from bench.fabric.counters import DeviceBytes, audit
from bench.finding import EvidenceFinding
from bench.frame.decide import Item, decide, item_entries, junit_cases
from bench.measure.collectives import get_collective
from bench.measure.results import RowPlace
from bench.measure.size import SizeResult
from bench.rundir.finding_words import sentence
from bench.rundir.results_csv import RowValue
from bench.sweep.items import collective_items, counter_item, under_target
from bench.sweep.rank import Judge, best_of

TARGET = 3200.0
"""A 1CC node's busbw target in Gb/s (lambda-1cc: 8 rails of 400 Gb/s)."""


def _row(collective: str, nbytes: int, efficiency: float, wrong: int = 0) -> dict[str, RowValue]:
    """A world row as ``bench.sweep.rank`` holds it: busbw and target in Gb/s, the efficiency their ratio."""
    return {
        "collective": collective,
        "scope": "world",
        "bytes": nbytes,
        "busbw_Gbps": TARGET * efficiency,
        "target_Gbps": TARGET,
        "efficiency": efficiency,
        "wrong": wrong,
        "nranks": 2,
    }


ROWS: list[dict[str, RowValue]] = [
    _row("all_reduce", 1 << 20, 0.1),  # below the judged size: not judged, not a failure
    _row("all_reduce", 256 << 20, 0.5),
    _row("all_reduce", 512 << 20, 0.6),
    _row("all_reduce", 1 << 30, 0.7, wrong=2),
    _row("all_reduce", 2 << 30, 0.8),
    _row("sendrecv", 1024, 0.01, wrong=3),  # wrong elements fail at any size
    _row("broadcast", 1 << 30, 0.95),
    # as results.csv gives a row back: every value a string
    {
        "collective": "all_gather",
        "scope": "world",
        "bytes": "268435456",
        "busbw_Gbps": "1234.5",
        "target_Gbps": "3200.0",
        "efficiency": "0.3857",
        "wrong": "0",
        "nranks": "2",
    },
]

ALL_REDUCE = (
    "all_reduce at 1G: 2 wrong elements; "
    "all_reduce at 256M: busbw 200 GB/s is 50% of its 400 GB/s target (3200 Gb/s; needs 90%); "
    "all_reduce at 512M: busbw 240 GB/s is 60% of its 400 GB/s target (3200 Gb/s; needs 90%) and 2 more"
)
SENDRECV = "sendrecv at 1K: 3 wrong elements"
ALL_GATHER = "all_gather at 256M: busbw 154.3 GB/s is 39% of its 400 GB/s target (3200 Gb/s; needs 90%)"
COUNTERS = (
    "node01: excluded device mlx5_0 carried 9MB (tx 9437184, rx 0 bytes), over the 1MB tolerance; "
    "node02: expected rail mlx5_2 carried nothing (0 bytes)"
)


def _counted() -> list[EvidenceFinding]:
    """What the counters' own audit finds on two nodes, host-prefixed as ``bench.frame.evidence`` says it."""
    per_host = {
        "node01": {
            "mlx5_0": DeviceBytes(9 << 20, 0, "ib"),
            "mlx5_1": DeviceBytes(4_000_000_000, 0, "ib", saturated=True),
            "mlx5_2": DeviceBytes(1 << 30, 1 << 30, "ib"),
        },
        "node02": {"mlx5_1": DeviceBytes(1 << 30, 1 << 30, "ib"), "mlx5_2": DeviceBytes(0, 0, "ib")},
    }
    return [
        EvidenceFinding(f.severity, f"{host}: {f.message}", f.device, host)
        for host, deltas in per_host.items()
        for f in audit(deltas, ("mlx5_1", "mlx5_2"), ("mlx5_0",), 1 << 20)
    ]


def _items() -> list[Item]:
    return [
        *collective_items(ROWS, 256 << 20, 0.9, "lambda-1cc"),
        counter_item(_counted(), {"node01": {"mlx5_0": 9_000_000}}),
    ]


def test_the_verdict_says_each_collective_and_the_counters_in_todays_words() -> None:
    verdict = decide(_items())
    assert verdict.word == "fail"
    assert verdict.reasons == (ALL_REDUCE, SENDRECV, ALL_GATHER, COUNTERS)


def test_run_json_items_and_junit_say_the_same_sentences() -> None:
    items = _items()
    entries = item_entries(items)
    assert [(e.name, e.state, e.reason) for e in entries] == [
        ("all_reduce", "fail", ALL_REDUCE),
        ("sendrecv", "fail", SENDRECV),
        ("broadcast", "pass", ""),
        ("all_gather", "fail", ALL_GATHER),
        ("counters", "fail", COUNTERS),
    ]
    cases = junit_cases(items)
    assert [(c.name, c.status, c.message) for c in cases] == [(e.name, e.state, e.reason) for e in entries]
    assert cases[0].details == "\n".join(
        f"{size}: busbw {gbytes} GB/s"
        for size, gbytes in (("1M", 40), ("256M", 200), ("512M", 240), ("1G", 280), ("2G", 320))
    )


def test_counters_that_only_warn_say_their_warnings() -> None:
    saturated = [f for f in _counted() if f.severity == "warn"]
    warned = [*saturated, EvidenceFinding("warn", "the NCCL logs have no network lines")]
    (case,) = junit_cases([counter_item(warned, {})])
    said = "node01: rail mlx5_1: its 32-bit data counter is saturated; the NCCL logs have no network lines"
    assert (case.status, case.message, case.details) == ("pass", "", f"WARN {said}")
    (entry,) = item_entries([counter_item(warned, {})])
    assert (entry.state, entry.reason, entry.decides) == ("warn", said, False)
    assert item_entries([counter_item([], {})])[0].state == "pass"


def test_a_row_measured_again_says_every_measurement_and_is_judged_on_its_best() -> None:
    """A judged size under its target is measured again (``bench.sweep.rank.measured_again``); its row holds the
    best, and its miss says each measurement in the order taken, in GB/s as the row."""
    rows = [_row("all_reduce", 256 << 20, 0.75), _row("all_reduce", 512 << 20, 0.95)]
    measured = {("all_reduce", 256 << 20): [2160.0, 2400.0, 2320.0], ("all_reduce", 512 << 20): [2560.0, 3040.0]}
    (item,) = collective_items(rows, 256 << 20, 0.9, "lambda-1cc", measured=measured)
    assert item.state == "fail"
    (finding,) = item.findings
    assert sentence(finding) == (
        "all_reduce at 256M: busbw 300 GB/s is 75% of its 400 GB/s target (3200 Gb/s; needs 90%), "
        "the best of 3 measurements: 270, 300, 290 GB/s"
    )
    # A size that read low once and at its level again passes: nothing of it is said.
    (passed,) = collective_items(rows[1:], 256 << 20, 0.9, "lambda-1cc", measured=measured)
    assert passed.state == "pass" and not passed.findings


def test_under_target_is_the_rate_miss_the_judge_fails_on() -> None:
    """What the sweep measures again is exactly what would fail on rate: a judged size under its mark; not a size
    below the judged ones, not one at its mark."""
    assert under_target(_row("all_reduce", 256 << 20, 0.89), 256 << 20, 0.9)
    assert not under_target(_row("all_reduce", 256 << 20, 0.9), 256 << 20, 0.9)
    assert not under_target(_row("all_reduce", 1 << 20, 0.1), 256 << 20, 0.9)
    assert not under_target({**_row("all_reduce", 1 << 30, 0.5), "target_Gbps": None}, 256 << 20, 0.9)


def _taken(time_us: float, wrong: int | None = None) -> SizeResult:
    return SizeResult("all_reduce", 256 << 20, 64 << 20, 2, 20, time_us, time_us, time_us, wrong)


def test_the_best_measurement_is_judged_and_wrong_elements_are_never_measured_away() -> None:
    assert best_of([_taken(900.0), _taken(700.0), _taken(800.0)]).time_us == 700.0
    best = best_of([_taken(900.0, wrong=0), _taken(700.0, wrong=0), _taken(800.0, wrong=5)])
    assert (best.time_us, best.wrong) == (700.0, 5)
    # 2 ranks, all_reduce's busbw factor 2 x 1/2 = 1: 256 MiB in 700 us is 3068 Gb/s, over 90% of 3200.
    judge = Judge(get_collective("all_reduce"), RowPlace("float", 2, 2), 3200.0, 256 << 20, 0.9)
    assert not judge.short([_taken(700.0)])
    assert judge.short([_taken(900.0)])  # 2386 Gb/s: 75% of its target
    assert not judge.short([_taken(900.0), _taken(700.0)])  # the best so far is at its level
    assert not judge.short([_taken(900.0, wrong=3)])  # fails on its wrong elements, whatever a second one reads
