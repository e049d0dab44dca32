"""What the rails test leaves behind: rails.json, its rows in results.csv, and the table on stdout (the
verdict line is the frame's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from bench.rails import gpu_pairs, records
from bench.rails.config import RailsSettings
from bench.rails.railsjson import rails_doc
from bench.rails.records import RailsOutcome
from bench.rundir.files import atomic_write_json


class Rows(Protocol):
    """Where results.csv rows go (the frame's ``Run``)."""

    def append(self, *rows: dict[str, Any]) -> None: ...


def write_outputs(outcome: RailsOutcome, out_dir: Path, writer: Rows | None, iters: int) -> dict[str, Any]:
    """rails.json and the results.csv rows; returns the rails.json document."""
    doc = rails_doc(outcome)
    atomic_write_json(out_dir / "rails.json", doc)
    if writer is not None:
        writer.append(
            *records.rail_rows(outcome.rail_results, outcome.expected, "float"),
            *records.pair_rows(outcome.pair_times, outcome.nodes, outcome.expected, iters),
            *(gpu_pairs.rows(outcome.intra_node, iters) if outcome.intra_node is not None else []),
        )
    return doc


def print_outcome(outcome: RailsOutcome, settings: RailsSettings) -> None:
    if outcome.skipped:
        print(f"# rails: skipped: {outcome.skipped}", flush=True)
        if outcome.intra_node is not None:
            print(gpu_pairs.table(outcome.intra_node), flush=True)
        return
    samples = [s for s in records.pair_samples(outcome.pair_times, outcome.nodes) if not s.confirm]
    print(
        f"# rails: {len(outcome.nodes)} nodes x {outcome.rails} rails; pairs "
        f"{'off' if not settings.pairs else f'{settings.repeats} repeat(s)'}",
        flush=True,
    )
    print(
        records.table(
            outcome.rail_results,
            samples,
            outcome.devices,
            outcome.defects,
            outcome.expected,
            outcome.findings,
            outcome.transients,
            outcome.too_noisy,
        ),
        flush=True,
    )
    if outcome.intra_node is not None:
        print(gpu_pairs.table(outcome.intra_node), flush=True)
    # The verdict (each failure a "# FAIL" line, then the word) is the frame's to say (bench.frame.job).
