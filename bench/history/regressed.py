"""A run that ``compare`` judges regressed says so in its run.json and in the history, not only in compare.json.

One function, called at the end of ``railbench compare``: with a regressed, missing or failed metric (compare's
exit status 1) the run's verdict becomes ``regressed`` (its own word kept in run.json's ``compare``
section as ``verdict_before``); a later compare that finds nothing gives the run its own word back. A run
that failed its own targets or checks (``fail``, ``error``) keeps that word: a failure outranks a regression,
as the report's badge has it. The history's row for the run (if the run is in it) gets the same word, so
``railbench history list`` says what run.json says.
"""

from __future__ import annotations

from pathlib import Path

from bench.history.store import opened, set_verdict
from bench.rundir.runjson import RunFile

OUTRANKS_REGRESSED = frozenset({"fail", "error"})


def record_compare_verdict(run_dir: Path, history: Path | None, run_key: str, regressed: bool) -> str | None:
    """Write compare's judgement into run.json and the history; returns the run's verdict after it."""
    record = RunFile.load(run_dir)
    current = record.get("verdict")
    section = record.get("compare")
    own = section.get("verdict_before") if current == "regressed" and isinstance(section, dict) else current
    verdict = current if current in OUTRANKS_REGRESSED else "regressed" if regressed else own
    if verdict != current or section is None:
        record.update(verdict=verdict, compare={"verdict_before": own})
    if history is not None and history.exists():
        with opened(history, write=True) as conn:
            set_verdict(conn, run_key, verdict)
    return verdict
