"""The verdict a run directory carries, as the report's badge and the metrics show it.

The frame decided it once and wrote it in run.json (``bench.rundir.verdict``); ``compare`` turns it into
``regressed`` there (``bench.frame.decide.mark_regressed``). Here it is only read and shown, never worked
out again: the badge, report.md, report.html and metrics.prom say the same word as the terminal, junit.xml
and ``history list``. A run still ``running`` (or one whose ranks died before they could say) has no
verdict: it shows as ERROR with its status.
"""

from __future__ import annotations

from bench.rundir.runjson import RunDoc
from bench.rundir.verdict import WORDS, Verdict

LABELS: tuple[str, ...] = tuple(w.upper() for w in WORDS)
"""Every word as the badge and the metrics' state set show it: PASS, FAIL, MEASURED, REGRESSED, SKIP, ERROR."""


def run_verdict(run: RunDoc) -> Verdict:
    """The verdict record of ``run`` (an ERROR that names the status when it has none)."""
    decided = run.decided()
    if decided is not None:
        return decided
    message = run.failure.message if run.failure else None
    return Verdict.of("error", [message or f"the run is {run.status}: it has no verdict"])
