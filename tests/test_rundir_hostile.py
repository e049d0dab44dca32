"""Damaged and hostile run directories (issue 24, item 10): every reader of every file in a run directory
answers with one line (UserError, exit 2) and never a traceback, a hang or a memory blow-up.

The readers are the three that read whole run directories: the report's inputs (run.json, results.csv,
rails.json, checks.json, trend.csv), the metrics export (run.json, results.csv, compare.json) and
``history add`` (run.json, results.csv, rails.json, checks.json). Each damage is put into one file of a
complete run directory, and each reader that reads that file meets it. Readers run in a watched thread, so
a regression that blocks (a FIFO) fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.exits import UserError
from bench.history.records import read_run
from bench.history.store import add_run, list_runs, opened
from bench.report.inputs import load_inputs
from bench.report.openmetrics import openmetrics_text
from tests.support import in_thread
from tests.support.report_data import ClusterModel, write_run_dir

Reader = Callable[[Path], object]
READERS: dict[str, tuple[Reader, frozenset[str]]] = {
    "report": (load_inputs, frozenset({"run.json", "results.csv", "rails.json", "checks.json", "trend.csv"})),
    "export": (openmetrics_text, frozenset({"run.json", "results.csv", "compare.json"})),
    "history": (read_run, frozenset({"run.json", "results.csv"})),
}
COMPARE_JSON = {"format_version": 1, "exit_status": 0, "summary": {"regressed": 0}, "metrics": [], "settings": {}}


def _run_dir(tmp_path: Path) -> Path:
    run_dir = write_run_dir(tmp_path / "run", ClusterModel(bad=None))
    (run_dir / "compare.json").write_text(json.dumps(COMPARE_JSON))
    return run_dir


def _one_line(outcome: object, name: str) -> str:
    assert isinstance(outcome, UserError), f"{type(outcome).__name__}: {outcome}"
    message = str(outcome)
    assert "\n" not in message and name in message, message
    return message


def _json_damage(kind: str, doc: dict[str, object]) -> str:
    if kind == "nested":
        return '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    if kind == "digits":
        return json.dumps(doc)[:-1] + ', "extra": ' + "9" * 5000 + "}"
    if kind == "over-64-bits":
        return json.dumps(doc)[:-1] + ', "nranks": ' + str(1 << 70) + "}"
    if kind == "nan":
        return json.dumps(doc)[:-1] + ', "extra": [NaN, 1e999]}'
    raise AssertionError(kind)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["run.json", "rails.json", "checks.json", "compare.json", "trend.csv", "results.csv"])
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_file_that_is_no_regular_file_is_refused_without_blocking(tmp_path: Path, name: str, kind: str) -> None:
    run_dir = _run_dir(tmp_path)
    (run_dir / name).unlink()
    if kind == "fifo":
        os.mkfifo(run_dir / name)
    else:
        (run_dir / name).symlink_to("/dev/zero")
    for reader, reads in READERS.values():
        if name in reads:
            _one_line(in_thread(lambda r=reader: r(run_dir)), name)  # type: ignore[misc]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["run.json", "rails.json", "checks.json", "compare.json"])
@pytest.mark.parametrize("kind", ["nested", "digits", "over-64-bits", "nan"])
def test_json_beyond_the_limits_is_one_line(tmp_path: Path, name: str, kind: str) -> None:
    run_dir = _run_dir(tmp_path)
    doc = json.loads((run_dir / name).read_text())
    (run_dir / name).write_text(_json_damage(kind, doc))
    for reader, reads in READERS.values():
        if name in reads:
            _one_line(in_thread(lambda r=reader: r(run_dir)), name)  # type: ignore[misc]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("measurements", 5, "measurements holds 5, not a list"),
        ("rails", True, "rails holds true, not a list"),
        ("counters", [], "counters holds [], not an object"),
        ("defects", [5], "defects[0] holds 5, not an object"),
        ("rails", [{"rail": "0"}], 'rails[0].rail holds "0", not a whole number'),
        ("counters", {"n1": {"mlx5_1:1": 5}}, "counters.n1.mlx5_1:1 holds 5, not an object"),
        ("error_windows", [{"errors": []}], "error_windows[0].errors holds [], not an object"),
    ],
)
def test_rails_json_fields_of_the_wrong_type_are_one_line(tmp_path: Path, field: str, value: object, said: str) -> None:
    run_dir = _run_dir(tmp_path)
    doc = json.loads((run_dir / "rails.json").read_text())
    doc[field] = value
    (run_dir / "rails.json").write_text(json.dumps(doc))
    assert said in _one_line(in_thread(lambda: load_inputs(run_dir)), "rails.json")
    assert said in _one_line(in_thread(lambda: add_run(tmp_path / "h.sqlite", run_dir)), "rails.json")


@pytest.mark.parametrize(
    ("name", "doc"),
    [
        ("checks.json", {"nodes": [{"node": "n1", "results": 5}]}),
        ("checks.json", {"cross_node": "none"}),
        ("compare.json", {**COMPARE_JSON, "summary": {"regressed": "many"}}),
        ("compare.json", {**COMPARE_JSON, "metrics": 7}),
        ("compare.json", {**COMPARE_JSON, "exit_status": True}),
    ],
)
def test_checks_and_compare_json_of_the_wrong_shape_are_one_line(tmp_path: Path, name: str, doc: object) -> None:
    run_dir = _run_dir(tmp_path)
    (run_dir / name).write_text(json.dumps(doc))
    reader = load_inputs if name == "checks.json" else openmetrics_text
    _one_line(in_thread(lambda: reader(run_dir)), name)


@pytest.mark.parametrize(
    ("wrong", "said"),
    [
        (None, "fields where the header has"),  # the row cut short
        ("nan", "not a finite number"),
        ("1e999", "not a finite number"),
        (str(1 << 70), "above the largest plausible value"),
        ("2.5", "not a whole number"),
    ],
)
def test_a_damaged_results_row_is_one_line_for_the_history(tmp_path: Path, wrong: str | None, said: str) -> None:
    run_dir = _run_dir(tmp_path)
    path = run_dir / "results.csv"
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    if wrong is None:
        lines[2] = ",".join(cells[: len(cells) // 2])
    else:
        cells[lines[0].split(",").index("wrong")] = wrong
        lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    assert said in _one_line(in_thread(lambda: add_run(tmp_path / "h.sqlite", run_dir)), "results.csv")
    report = in_thread(lambda: load_inputs(run_dir))  # draws the run, or refuses it in one line
    if isinstance(report, BaseException):
        _one_line(report, "results.csv")


def test_a_lone_surrogate_in_run_json_is_read_and_stored_printable(tmp_path: Path) -> None:
    """railbench writes ``\\udcff`` itself when a recorded variable held bytes that are not UTF-8."""
    run_dir = _run_dir(tmp_path)
    text = (run_dir / "run.json").read_text()
    (run_dir / "run.json").write_text(text.replace('"lambda-1cc-test"', '"lab\\udcff"', 1))
    add_run(tmp_path / "h.sqlite", run_dir)
    with opened(tmp_path / "h.sqlite") as conn:
        (stored,) = list_runs(conn)
    assert stored.cluster == "lab\ufffd"
    load_inputs(run_dir)
    assert 'cluster="lab\ufffd"' in openmetrics_text(run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("column", ["busbw_GBps", "wrong", "time_us", "bytes"])
@pytest.mark.parametrize("value", ["inf", "1e999", "-1e999"])
def test_an_infinite_number_in_results_csv_is_one_line_for_the_report(tmp_path: Path, column: str, value: str) -> None:
    """pandas reads 1e999 as inf; the report's summary then died on int(inf) (OverflowError)."""
    run_dir = _run_dir(tmp_path)
    path = run_dir / "results.csv"
    lines = path.read_text().splitlines()
    cells = lines[3].split(",")
    cells[lines[0].split(",").index(column)] = value
    lines[3] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    said = _one_line(in_thread(lambda: load_inputs(run_dir)), "results.csv")
    assert f"line 4: {column} is {value!r}, not a finite number" in said
