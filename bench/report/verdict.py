"""The verdict a run directory carries, as the report's badge and the metrics show it.

The frame decided it once and wrote it in run.json (``bench.rundir.verdict``); ``compare`` turns it into
``regressed`` there (``bench.frame.verdict.mark_regressed``). Here it is only read and shown, never worked
out again: the badge, report.md, report.html and metrics.prom say the same word as the terminal, junit.xml
and ``history list``. A run still ``running`` (or one whose ranks died before they could say) has no
verdict: it shows as ERROR with its status.
"""

from __future__ import annotations

from pathlib import Path

from bench.exits import UserError
from bench.jsondoc import Parsed, optional_object
from bench.rundir.runjson import RunDoc
from bench.rundir.verdict import WORDS, Verdict

LABELS: tuple[str, ...] = tuple(w.upper() for w in WORDS)
"""Every word as the badge and the metrics' state set show it: PASS, FAIL, MEASURED, REGRESSED, SKIP, ERROR."""


_COMPARE_FIX = "delete it or re-run railbench compare"


def read_compare(run_dir: Path) -> Parsed | None:
    """compare.json when compare has run on this directory, else None. A damaged one is a UserError (exit 2),
    as every damaged file of a run directory is, never quietly taken as absent. Read through
    ``bench.jsondoc`` (regular file, size, depth and numbers bounded), then the fields the report and the
    metrics use are typed (a summary count of "many" was a ValueError in metrics.prom)."""
    path = run_dir / "compare.json"
    doc = optional_object(path, fix=_COMPARE_FIX)
    if doc is None:
        return None
    status = doc.get("exit_status")
    summary = doc.get("summary", {})
    ok = (
        (status is None or (isinstance(status, int) and not isinstance(status, bool)))
        and isinstance(summary, dict)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in summary.values())
        and isinstance(doc.get("metrics", []), list)
        and all(isinstance(m, dict) for m in doc.get("metrics", []))
        and isinstance(doc.get("settings", {}), dict)
    )
    if not ok:
        raise UserError(
            f"{path}: exit_status, summary, metrics or settings is not of the type compare writes: {_COMPARE_FIX}"
        )
    return doc


def run_verdict(run: RunDoc) -> Verdict:
    """The verdict record of ``run`` (an ERROR that names the status when it has none)."""
    decided = run.decided()
    if decided is not None:
        return decided
    message = run.failure.message if run.failure else None
    return Verdict.of("error", [message or f"the run is {run.status}: it has no verdict"])
