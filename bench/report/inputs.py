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

import numpy as np
import pandas as pd

from bench.bounded import MissingInput, capped_lines, open_text
from bench.exits import UserError
from bench.history.soak_runs import SoakSummary, read_soak
from bench.rundir.checksjson import ChecksDoc, read_checks_json
from bench.rundir.railsdoc import RailsDoc, read_rails_doc
from bench.rundir.results_csv import NUMERIC_COLUMNS, RESULT_COLUMNS, SCOPES, read_results_rows
from bench.rundir.runjson import RunDoc, read_run_json

# Columns that must hold a value in every row: without them a row cannot be placed on any chart.
REQUIRED_VALUES = ("collective", "scope", "group", "bytes", "busbw_GBps")
MAX_TREND_ROWS = 1_000_000
"""compare writes one row per baseline run per headline metric: thousands, not millions."""
TREND_COLUMNS = ("run_time", "metric", "busbw_GBps", "baseline_GBps", "band_lo_GBps", "band_hi_GBps", "state")


@dataclass(frozen=True, eq=False)
class RunInputs:
    """Everything a report is drawn from."""

    run_dir: Path
    run: RunDoc
    """run.json as its typed record (``bench.rundir.runjson.read_run_json``)."""
    results: pd.DataFrame
    """results.csv with numeric columns parsed (blank -> NaN)."""
    rails: RailsDoc | None
    """rails.json as its record (``bench.rundir.railsdoc``), or None when the run had no rails step."""
    checks: ChecksDoc | None
    """checks.json, or None."""
    trend: pd.DataFrame | None
    """trend.csv from compare, or None."""
    soak: SoakSummary | None = None
    """A soak's windows summed up (``bench.history.soak_runs``), or None when the run is no soak."""


def load_inputs(run_dir: Path) -> RunInputs:
    """Read and check every input of a report; bad input raises UserError with one line."""
    run = read_run_json(run_dir)
    results = results_frame(read_results_rows(run_dir), run_dir / "results.csv")
    rails = read_rails_doc(run_dir)
    checks = read_checks_json(run_dir)
    soak = read_soak(run_dir, run)
    return RunInputs(run_dir, run, results, rails, checks, read_trend(run_dir / "trend.csv"), soak)


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
        infinite = np.isinf(values.to_numpy(dtype=float))
        if infinite.any():  # 1e999 and inf parse as numbers; nothing railbench writes is infinite
            at = int(np.flatnonzero(infinite)[0])
            raise UserError(
                f"{source} line {at + 2}: {column} is {str(raw.iloc[at])[:20]!r}, not a finite number: the file is "
                "damaged; re-run or re-import the run"
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


def read_trend(path: Path) -> pd.DataFrame | None:
    """trend.csv from compare (TREND_COLUMNS), run_time parsed as UTC; None when absent."""
    fix = "delete it or re-run railbench compare"
    try:
        stream = open_text(path, fix=fix)
    except MissingInput:
        return None
    with stream:
        try:
            reader = csv.DictReader(capped_lines(stream, label=str(path), fix=fix))
            missing = [c for c in TREND_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"{path} lacks columns {', '.join(missing)}: re-run railbench compare")
            records = []
            for record in reader:
                if None in record or None in record.values():  # more fields than the header, or fewer
                    raise UserError(f"{path} line {reader.line_num} does not fit its header: {fix}")
                records.append(record)
                if len(records) > MAX_TREND_ROWS:
                    raise UserError(f"{path} has over {MAX_TREND_ROWS} rows, more than compare writes: {fix}")
            frame = pd.DataFrame.from_records(records, columns=list(reader.fieldnames or []))
        except csv.Error as exc:
            raise UserError(f"{path} cannot be read ({exc}): {fix}") from None
    frame["run_time"] = pd.to_datetime(frame["run_time"], utc=True, errors="coerce", format="ISO8601")
    for column in ("busbw_GBps", "baseline_GBps", "band_lo_GBps", "band_hi_GBps"):
        frame[column] = pd.to_numeric(frame[column].replace("", np.nan), errors="coerce")
    # A metric missing (or failed) tonight has no value by design; it has no point to draw.
    absent = frame["state"].isin(["missing", "failed"])
    if frame["run_time"].isna().any() or (frame["busbw_GBps"].isna() & ~absent).any():
        raise UserError(f"{path} has a run_time or busbw_GBps that does not parse: re-run railbench compare")
    return frame[frame["busbw_GBps"].notna()].reset_index(drop=True)
