"""Read a run directory for a report: every input checked, bad input a one-line UserError.

Inputs: ``run.json`` and ``results.csv`` (through ``bench.rundir.files``, which checks the format version and the
columns), and the optional ``rails.json`` (the rails command's measurements and defects), ``checks.json``
and ``trend.csv`` (compare's nightly series). An optional file only adds charts when it is present.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.exits import UserError
from bench.rundir.files import RESULT_COLUMNS, SCOPES, read_json_object, read_results_rows
from bench.rundir.railsjson import check_rails_json
from bench.rundir.runjson import read_run_json

NUMERIC_COLUMNS = (
    "nranks",
    "nnodes",
    "bytes",
    "count",
    "iters",
    "time_us",
    "time_us_min",
    "time_us_max",
    "algbw_GBps",
    "busbw_GBps",
    "busbw_Gbps",
    "target_Gbps",
    "efficiency",
    "wrong",
)
# Columns that must hold a value in every row: without them a row cannot be placed on any chart.
REQUIRED_VALUES = ("collective", "scope", "group", "bytes", "busbw_GBps")
TREND_COLUMNS = ("run_time", "metric", "busbw_GBps", "baseline_GBps", "band_lo_GBps", "band_hi_GBps", "state")


@dataclass(frozen=True, eq=False)
class RunInputs:
    """Everything a report is drawn from."""

    run_dir: Path
    run: Mapping[str, Any]
    """run.json as read by ``bench.rundir.read_run_json``."""
    results: pd.DataFrame
    """results.csv with numeric columns parsed (blank -> NaN)."""
    rails: Mapping[str, Any] | None
    """rails.json: ``{"measurements": [...], "defects": [...]}``, or None when the run had no rails step."""
    checks: Mapping[str, Any] | None
    """checks.json: ``{"checks": [...], "verdict": ...}``, or None."""
    trend: pd.DataFrame | None
    """trend.csv from compare, or None."""


def load_inputs(run_dir: Path) -> RunInputs:
    """Read and check every input of a report; bad input raises UserError with one line."""
    run = read_run_json(run_dir)
    results = results_frame(read_results_rows(run_dir), run_dir / "results.csv")
    rails = _read_json_object(run_dir / "rails.json")
    if rails is not None:
        check_rails_json(rails, run_dir / "rails.json")
    checks = _read_json_object(run_dir / "checks.json")
    if checks is not None and not isinstance(checks.get("checks", []), list):
        raise UserError(f"{run_dir / 'checks.json'} has no list under 'checks': re-run railbench check")
    return RunInputs(run_dir, run, results, rails, checks, read_trend(run_dir / "trend.csv"))


def results_frame(rows: Sequence[Mapping[str, str]], source: Path) -> pd.DataFrame:
    """results.csv rows (strings) as a typed frame; a value that is not a number names its line."""
    frame = pd.DataFrame.from_records(list(rows)) if rows else pd.DataFrame(columns=list(RESULT_COLUMNS))
    for column in NUMERIC_COLUMNS:
        raw = frame[column] if column in frame else pd.Series([""] * len(frame), dtype=object)
        values = pd.to_numeric(raw, errors="coerce")
        missing = values.isna()
        if missing.any():
            # only the cells that did not parse need a look: blank is allowed, anything else is damage
            text = raw[missing].fillna("").astype(str).str.strip()
            bad = text[text != ""]
            if len(bad):
                line = int(frame.index.get_loc(bad.index[0])) + 2  # +1 header, +1 one-based
                raise UserError(
                    f"{source} line {line}: {column} is {bad.iloc[0]!r}, not a number: the file is damaged; "
                    "re-run or re-import the run"
                )
        frame[column] = values.astype(float)
    for column in REQUIRED_VALUES:
        blank = frame[column].isna() if column in NUMERIC_COLUMNS else frame[column].fillna("").eq("")
        if blank.any():
            line = int(np.flatnonzero(blank.to_numpy())[0]) + 2
            raise UserError(f"{source} line {line}: {column} is empty: the file is damaged; re-run the benchmark")
    unknown = sorted(set(frame["scope"]) - set(SCOPES)) if len(frame) else []
    if unknown:
        raise UserError(
            f"{source} has scope {unknown[0]!r}; this railbench knows {', '.join(SCOPES)}: upgrade railbench"
        )
    return frame


def _read_json_object(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    return read_json_object(path, "delete it or re-run the step that wrote it")


def read_trend(path: Path) -> pd.DataFrame | None:
    """trend.csv from compare (TREND_COLUMNS), run_time parsed as UTC; None when absent."""
    if not path.exists():
        return None
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in TREND_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"{path} lacks columns {', '.join(missing)}: re-run railbench compare")
            frame = pd.DataFrame.from_records(list(reader), columns=list(reader.fieldnames or []))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path} cannot be read ({exc}): delete it or re-run railbench compare") from None
    frame["run_time"] = pd.to_datetime(frame["run_time"], utc=True, errors="coerce", format="ISO8601")
    for column in ("busbw_GBps", "baseline_GBps", "band_lo_GBps", "band_hi_GBps"):
        frame[column] = pd.to_numeric(frame[column].replace("", np.nan), errors="coerce")
    # A metric missing (or failed) tonight has no value by design; it has no point to draw.
    absent = frame["state"].isin(["missing", "failed"])
    if frame["run_time"].isna().any() or (frame["busbw_GBps"].isna() & ~absent).any():
        raise UserError(f"{path} has a run_time or busbw_GBps that does not parse: re-run railbench compare")
    return frame[frame["busbw_GBps"].notna()].reset_index(drop=True)
