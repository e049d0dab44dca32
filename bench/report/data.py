"""Read a run directory and aggregate it into the small tables the charts draw.

Vega-Lite slows down above a few thousand rows and a 512-node run has hundreds of thousands of results, so
every table here is aggregated in pandas first: one row per (collective, size) for the sweep, one bar per
rail or node (the slowest ``max_bars`` when there are more), node blocks for the pair matrix, and the last
``max_points`` nights per trend metric.

Inputs (each optional file only adds charts when present): ``run.json``, ``results.csv`` (RESULT_COLUMNS),
``rails.json`` (the rails command's measurements and defects), ``checks.json`` and ``trend.csv``.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import UserError
from bench.rundir import RESULT_COLUMNS, SCOPES, read_results_rows, read_run_json
from bench.units import format_size

NUMERIC_COLUMNS = (
    "nranks", "nnodes", "bytes", "count", "iters", "time_us", "time_us_min", "time_us_max",
    "algbw_GBps", "busbw_GBps", "busbw_Gbps", "target_Gbps", "efficiency", "wrong",
)  # fmt: skip
# Columns that must hold a value in every row: without them a row cannot be placed on any chart.
REQUIRED_VALUES = ("collective", "scope", "group", "bytes", "busbw_GBps")
TREND_COLUMNS = ("run_time", "metric", "busbw_GBps", "baseline_GBps", "band_lo_GBps", "band_hi_GBps", "state")
STATUSES = ("pass", "fail", "no target")


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


@dataclass(frozen=True, eq=False)
class Table:
    """One chart's data: the aggregated frame and a note for the title when rows were left out."""

    frame: pd.DataFrame
    note: str = ""


def load_inputs(run_dir: Path) -> RunInputs:
    """Read and check every input of a report; bad input raises UserError with one line."""
    run = read_run_json(run_dir)
    results = results_frame(read_results_rows(run_dir), run_dir / "results.csv")
    rails = _read_json_object(run_dir / "rails.json")
    if rails is not None:
        _check_rails(rails, run_dir / "rails.json")
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
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}): delete it or re-run the step that wrote it") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} does not hold a JSON object: delete it or re-run the step that wrote it")
    return data


def _check_rails(rails: Mapping[str, Any], path: Path) -> None:
    measurements = rails.get("measurements", [])
    if not isinstance(measurements, list) or not isinstance(rails.get("defects", []), list):
        raise UserError(f"{path} needs lists under 'measurements' and 'defects': re-run railbench rails")
    for index, item in enumerate(measurements):
        ok = (
            isinstance(item, dict)
            and item.get("kind") in ("rail", "pair")
            and isinstance(item.get("rail"), int)
            and isinstance(item.get("node"), str)
            and isinstance(item.get("busbw_Gbps"), int | float)
            and (item.get("kind") == "rail" or isinstance(item.get("peer"), str))
        )
        if not ok:
            raise UserError(f"{path} measurement {index} lacks kind/rail/node/peer/busbw_Gbps: re-run railbench rails")


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
    if frame["run_time"].isna().any() or frame["busbw_GBps"].isna().any():
        raise UserError(f"{path} has a run_time or busbw_GBps that does not parse: re-run railbench compare")
    return frame


# ---------------------------------------------------------------------------------------------- tables


def status(busbw_Gbps: pd.Series, target_Gbps: pd.Series, min_efficiency: float) -> pd.Series:
    """pass / fail / no target for each value against ``min_efficiency`` x target."""
    below = busbw_Gbps < target_Gbps * min_efficiency
    out = np.where(target_Gbps.isna() | (target_Gbps <= 0), "no target", np.where(below, "fail", "pass"))
    return pd.Series(out, index=busbw_Gbps.index, dtype=object)


def _with_units(frame: pd.DataFrame) -> pd.DataFrame:
    """Both units side by side so a chart can show either: GB/s = Gb/s / 8."""
    frame["busbw_GBps"] = frame["busbw_Gbps"] / 8.0
    frame["target_GBps"] = frame["target_Gbps"] / 8.0
    frame["efficiency"] = np.where(frame["target_Gbps"] > 0, frame["busbw_Gbps"] / frame["target_Gbps"], np.nan)
    return frame


def _preferred_placement(rows: pd.DataFrame) -> pd.DataFrame:
    # nccl-tests measures out-of-place and in-place; averaging them would blur both, so chart one.
    out_of_place = rows[rows["placement"] == "out-of-place"]
    return out_of_place if len(out_of_place) else rows


def sweep_table(results: pd.DataFrame) -> Table:
    """World collectives: one row per (collective, message size), the mean of repeated measurements."""
    rows = _preferred_placement(results[results["scope"] == "world"])
    if rows.empty:
        return Table(pd.DataFrame())
    numeric = ["time_us", "algbw_GBps", "busbw_GBps", "busbw_Gbps", "target_Gbps"]
    frame = rows.groupby(["collective", "bytes"], as_index=False, sort=True)[numeric].mean()
    frame["busbw_Gbps"] = frame["busbw_GBps"] * 8.0  # recomputed so both units agree after averaging
    frame = _with_units(frame)
    frame["size"] = [format_size(b) for b in frame["bytes"]]
    frame["bytes"] = frame["bytes"].astype("int64")
    return Table(frame)


def _limit_bars(frame: pd.DataFrame, max_bars: int, what: str) -> Table:
    if len(frame) <= max_bars:
        return Table(frame.reset_index(drop=True))
    # The chart exists to find the slow ones: keep the slowest, say how many were left out.
    kept = frame.nsmallest(max_bars, "busbw_Gbps").reset_index(drop=True)
    return Table(kept, f"the {max_bars} slowest of {len(frame)} {what}")


def group_bars_table(
    results: pd.DataFrame, scope: str, collective: str, min_efficiency: float, max_bars: int = 64
) -> Table:
    """One bar per communicator group of ``scope`` (rail groups, single nodes) at its largest message size."""
    rows = _preferred_placement(results[(results["scope"] == scope) & (results["collective"] == collective)])
    if rows.empty:
        return Table(pd.DataFrame())
    largest = rows.groupby("group")["bytes"].transform("max")
    rows = rows[rows["bytes"] == largest]
    frame = rows.groupby("group", as_index=False, sort=False).agg(
        busbw_GBps=("busbw_GBps", "mean"), target_Gbps=("target_Gbps", "max"), bytes=("bytes", "max")
    )
    frame["busbw_Gbps"] = frame["busbw_GBps"] * 8.0
    frame = _with_units(frame)
    frame["label"] = frame["group"].astype(str)
    frame["detail"] = [f"{collective} at {format_size(b)}" for b in frame["bytes"]]
    frame["status"] = status(frame["busbw_Gbps"], frame["target_Gbps"], min_efficiency)
    columns = ["label", "busbw_GBps", "busbw_Gbps", "target_GBps", "target_Gbps", "efficiency", "status", "detail"]
    return _limit_bars(frame[columns], max_bars, f"{scope} groups")


def _defect_keys(rails: Mapping[str, Any]) -> tuple[set[tuple[str, int]], set[int], set[str]]:
    """(node, rail) pairs, rails and nodes that the rails command named as defective."""
    keys, rails_hit, nodes_hit = set(), set(), set()
    for defect in rails.get("defects", []):
        node, rail = defect.get("node"), defect.get("rail")
        if isinstance(node, str) and isinstance(rail, int):
            keys.add((node, rail))
        if isinstance(rail, int):
            rails_hit.add(rail)
        if isinstance(node, str):
            nodes_hit.add(node)
    return keys, rails_hit, nodes_hit


def _rail_measurements(rails: Mapping[str, Any], kind: str) -> pd.DataFrame:
    rows = [m for m in rails.get("measurements", []) if m.get("kind") == kind]
    columns = ["rail", "node", "peer", "device", "busbw_Gbps", "expected_Gbps"]
    frame = pd.DataFrame.from_records(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    frame["busbw_Gbps"] = pd.to_numeric(frame["busbw_Gbps"], errors="coerce").astype(float)
    frame["expected_Gbps"] = pd.to_numeric(frame["expected_Gbps"], errors="coerce").astype(float)
    frame["device"] = frame["device"].fillna("")
    return frame


def _mark_defects(frame: pd.DataFrame, named: pd.Series, min_efficiency: float) -> pd.DataFrame:
    frame["status"] = status(frame["busbw_Gbps"], frame["target_Gbps"], min_efficiency)
    # A defect the rails command proved (pair evidence) fails the bar even if this aggregate looks fine.
    frame.loc[named.to_numpy(), "status"] = "fail"
    return frame


def rail_bars_table(rails: Mapping[str, Any], min_efficiency: float) -> Table:
    """One bar per rail: its weakest node's busbw, from rails.json."""
    measured = _rail_measurements(rails, "rail")
    if measured.empty:
        return Table(pd.DataFrame())
    _, rails_hit, _ = _defect_keys(rails)
    weakest = measured.loc[measured.groupby("rail")["busbw_Gbps"].idxmin()].sort_values("rail")
    frame = pd.DataFrame(
        {
            "label": [
                f"rail {r}" + (f" ({d})" if d else "") for r, d in zip(weakest["rail"], weakest["device"], strict=True)
            ],
            "busbw_Gbps": weakest["busbw_Gbps"].to_numpy(),
            "target_Gbps": weakest["expected_Gbps"].to_numpy(),
            "detail": [f"weakest node {n}" for n in weakest["node"]],
        }
    )
    frame = _mark_defects(_with_units(frame), weakest["rail"].isin(rails_hit), min_efficiency)
    return Table(frame[_BAR_COLUMNS])


def node_bars_table(rails: Mapping[str, Any], min_efficiency: float, max_bars: int = 64) -> Table:
    """One bar per node: its weakest rail's busbw, from rails.json."""
    measured = _rail_measurements(rails, "rail")
    if measured.empty:
        return Table(pd.DataFrame())
    keys, _, _ = _defect_keys(rails)
    weakest = measured.loc[measured.groupby("node", sort=False)["busbw_Gbps"].idxmin()]
    frame = pd.DataFrame(
        {
            "label": weakest["node"].to_numpy(),
            "busbw_Gbps": weakest["busbw_Gbps"].to_numpy(),
            "target_Gbps": weakest["expected_Gbps"].to_numpy(),
            "detail": [
                f"weakest rail {r}" + (f" ({d})" if d else "")
                for r, d in zip(weakest["rail"], weakest["device"], strict=True)
            ],
        }
    )
    named = pd.Series([(n, r) in keys for n, r in zip(weakest["node"], weakest["rail"], strict=True)])
    frame = _mark_defects(_with_units(frame), named, min_efficiency)
    return _limit_bars(frame[_BAR_COLUMNS], max_bars, "nodes")


_BAR_COLUMNS = ["label", "busbw_GBps", "busbw_Gbps", "target_GBps", "target_Gbps", "efficiency", "status", "detail"]
_RAIL_GROUP = re.compile(r"^(?P<pair>.+)/rail(?P<rail>\d+)$")


def split_pair_group(group: str, hosts: Iterable[str]) -> tuple[str, str, int] | None:
    """``"node02-node05/rail3"`` -> ("node02", "node05", 3); hostnames may hold '-', so use the host list."""
    match = _RAIL_GROUP.match(group)
    if not match:
        return None
    pair, rail = match.group("pair"), int(match.group("rail"))
    known = set(hosts)
    splits = [(pair[:i], pair[i + 1 :]) for i, c in enumerate(pair) if c == "-"]
    resolved = [(a, b) for a, b in splits if a in known and b in known]
    if len(resolved) == 1:
        return resolved[0][0], resolved[0][1], rail
    if not known and len(splits) == 1:
        return splits[0][0], splits[0][1], rail
    return None


def pair_measurements(inputs: RunInputs) -> tuple[pd.DataFrame, int]:
    """Node-pair busbw per rail (rails.json when present, else results.csv pair rows) and unparsed groups."""
    if inputs.rails is not None:
        frame = _rail_measurements(inputs.rails, "pair")
        if not frame.empty:
            return frame, 0
    rows = _preferred_placement(inputs.results[inputs.results["scope"] == "pair"])
    if rows.empty:
        return pd.DataFrame(), 0
    rows = rows[rows["bytes"] == rows.groupby("group")["bytes"].transform("max")]
    per_group = rows.groupby("group", as_index=False).agg(
        busbw_GBps=("busbw_GBps", "mean"), expected_Gbps=("target_Gbps", "max")
    )
    hosts = [str(h) for h in inputs.run.get("hosts") or []]
    # 8 rails share each node pair: resolve every distinct "a-b" once, not once per rail
    parts = per_group["group"].astype(str).str.extract(_RAIL_GROUP.pattern)
    resolved = {pair: split_pair_group(f"{pair}/rail0", hosts) for pair in parts["pair"].dropna().unique()}
    nodes = parts["pair"].map(lambda p: resolved.get(p) if isinstance(p, str) else None)
    ok = nodes.notna().to_numpy()
    frame = pd.DataFrame(
        {
            "rail": parts.loc[ok, "rail"].astype(int).to_numpy(),
            "node": [n[0] for n in nodes[ok]],
            "peer": [n[1] for n in nodes[ok]],
            "device": "",
            "busbw_Gbps": per_group.loc[ok, "busbw_GBps"].to_numpy() * 8.0,
            "expected_Gbps": per_group.loc[ok, "expected_Gbps"].to_numpy(),
        }
    )
    return frame, int((~ok).sum())


def node_order(names: Iterable[str], hosts: Sequence[str]) -> list[str]:
    """Nodes in run.json's host order (launch order), unknown ones after it, sorted."""
    seen = set(names)
    ordered = [h for h in hosts if h in seen]
    return ordered + sorted(seen - set(ordered))


def heatmap_table(pairs: pd.DataFrame, hosts: Sequence[str], min_efficiency: float, max_nodes: int = 32) -> Table:
    """Symmetric node x node matrix per rail; above ``max_nodes`` nodes, blocks of nodes show their worst pair.

    Columns: rail, node/peer (labels) with node_index/peer_index (their order), busbw in both units,
    efficiency, status, the worst pair in the cell, its HCA and how many pairs the cell holds.
    """
    if pairs.empty:
        return Table(pd.DataFrame())
    both = pd.concat([pairs, pairs.rename(columns={"node": "peer", "peer": "node"})], ignore_index=True)
    order = node_order(set(both["node"]) | set(both["peer"]), hosts)
    block = max(1, math.ceil(len(order) / max_nodes))
    index = {name: i // block for i, name in enumerate(order)}
    labels = {}
    for i in range(0, len(order), block):
        members = order[i : i + block]
        labels[i // block] = members[0] if len(members) == 1 else f"{members[0]} +{len(members) - 1}"
    both["node_index"] = both["node"].map(index)
    both["peer_index"] = both["peer"].map(index)
    keys = ["rail", "node_index", "peer_index"]
    # The worst pair in each cell is the one worth showing: a bad HCA shows up as its node's row and column.
    worst = both.loc[both.groupby(keys)["busbw_Gbps"].idxmin()]
    counts = both.groupby(keys).size().to_numpy()
    frame = pd.DataFrame(
        {
            "rail": worst["rail"].astype(int).to_numpy(),
            "node": worst["node_index"].map(labels).to_numpy(),
            "node_index": worst["node_index"].to_numpy(),
            "peer": worst["peer_index"].map(labels).to_numpy(),
            "peer_index": worst["peer_index"].to_numpy(),
            "busbw_Gbps": worst["busbw_Gbps"].to_numpy(),
            "target_Gbps": worst["expected_Gbps"].to_numpy(),
            "worst_pair": (worst["node"] + " ↔ " + worst["peer"]).to_numpy() if block > 1 else "",
            "device": worst["device"].to_numpy(),
            "pairs": counts,
        }
    )
    frame = _with_units(frame)
    frame["status"] = status(frame["busbw_Gbps"], frame["target_Gbps"], min_efficiency)
    # targets live on in efficiency; dropping them keeps a 512-node matrix well under a megabyte
    frame = frame.drop(columns=["target_Gbps", "target_GBps"])
    note = f"blocks of {block} nodes, worst pair per block" if block > 1 else ""
    return Table(frame.sort_values(keys).reset_index(drop=True), note)


def trend_table(trend: pd.DataFrame, max_points: int = 120) -> Table:
    """The last ``max_points`` nights of each metric, oldest first."""
    if trend.empty:
        return Table(pd.DataFrame())
    ordered = trend.sort_values("run_time")
    kept = ordered.groupby("metric", sort=False).tail(max_points).copy()
    note = "" if len(kept) == len(trend) else f"the last {max_points} nights per metric"
    kept["run_time"] = kept["run_time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    kept["state"] = kept["state"].fillna("").replace("", "unknown")
    return Table(kept[list(TREND_COLUMNS)].reset_index(drop=True), note)


def results_summary(results: pd.DataFrame, min_efficiency: float) -> pd.DataFrame:
    """One line per (scope, collective): the largest size, worst and median busbw, target, verdict."""
    columns = [
        "scope", "collective", "groups", "size", "worst_group", "worst_GBps", "median_GBps", "target_Gbps",
        "worst_efficiency", "wrong", "verdict",
    ]  # fmt: skip
    lines = []
    for (scope, collective), every in results.groupby(["scope", "collective"], sort=False):
        # wrong results at any size or placement fail the line; bandwidth is judged at the largest size
        wrong = int(every["wrong"].fillna(0).sum())
        rows = _preferred_placement(every)
        rows = rows[rows["bytes"] == rows.groupby("group")["bytes"].transform("max")]
        per_group = rows.groupby("group").agg(
            busbw_GBps=("busbw_GBps", "mean"), target_Gbps=("target_Gbps", "max"), bytes=("bytes", "max")
        )
        worst = per_group["busbw_GBps"].idxmin()
        target = per_group["target_Gbps"].max()
        efficiency = (per_group["busbw_GBps"] * 8.0 / per_group["target_Gbps"]).min()
        if wrong:
            verdict = "fail (wrong results)"
        elif not (target > 0):
            verdict = "measured"
        elif efficiency < min_efficiency:
            verdict = "fail"
        else:
            # tree, NVLS and SHARP may beat the wire rate legitimately: say so rather than hide it
            verdict = "pass (above wire)" if efficiency > 1.0 else "pass"
        lines.append(
            [scope, collective, len(per_group), format_size(per_group["bytes"].max()), worst,
             per_group.loc[worst, "busbw_GBps"], per_group["busbw_GBps"].median(), target, efficiency, wrong, verdict]
        )  # fmt: skip
    order = {s: i for i, s in enumerate(SCOPES)}
    frame = pd.DataFrame(lines, columns=columns)
    return frame.sort_values("scope", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
