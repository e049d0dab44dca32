"""The one verdict word of a run directory, and its named reasons, as the report badge and the metrics say it.

* **FAIL**: the run failed a target or a check (run.json ``verdict`` fail/error), or it did not complete;
* **REGRESSED**: compare ran on this directory and found a regressed, missing or failed metric;
* **PASS**: targets were judged and met (a bandwidth target on some row or rail measurement);
* **MEASURED**: nothing was judged (no target applies, e.g. the ``local`` CPU profile, or an imported log).

run.json is read as written today through ``read_run_facts``-style plain mappings; when it becomes a typed
record only the lookups here change.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bench.errors import UserError
from bench.jsondoc import optional_object

Word = Literal["PASS", "MEASURED", "FAIL", "REGRESSED"]
WORDS: tuple[Word, ...] = ("PASS", "MEASURED", "FAIL", "REGRESSED")
_ACCEPT_GROUPS = (("checks", "check"), ("nodes", "node"), ("rails", "rail"), ("collectives", "collective"))


@dataclass(frozen=True)
class Verdict:
    """The word on the badge and the reasons behind it, one sentence each."""

    word: Word
    reasons: tuple[str, ...] = ()


_COMPARE_FIX = "delete it or re-run railbench compare"


def read_compare(run_dir: Path) -> Mapping[str, Any] | None:
    """compare.json when compare has run on this directory, else None. A damaged one is a UserError (exit 2),
    never taken as absent: that would turn a REGRESSED run into a PASS. Read through ``bench.jsondoc``
    (regular file, size, depth and numbers bounded), then the fields used here and by the report are typed."""
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


def _finite(value: object) -> bool:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return math.isfinite(number) and number > 0


def targets_judged(targets: Iterable[object], rails: Mapping[str, Any] | None = None) -> bool:
    """Whether any result row had a target (``target_Gbps``) or any rail measurement an expected rate."""
    if any(_finite(t) for t in targets):
        return True
    measurements = (rails or {}).get("measurements") or []
    return any(isinstance(m, Mapping) and _finite(m.get("expected_Gbps")) for m in measurements)


def _accept_reasons(accept: Mapping[str, Any]) -> list[str]:
    reasons = []
    for key, label in _ACCEPT_GROUPS:
        entries = accept.get(key)
        if not isinstance(entries, Mapping):
            continue
        for name, entry in entries.items():
            if isinstance(entry, Mapping) and entry.get("verdict") in ("fail", "error"):
                why = str(entry.get("reason") or entry.get("verdict"))
                reasons.append(f"{label} {name}: {why}")
    return reasons


def _compare_reasons(compare: Mapping[str, Any]) -> list[str]:
    reasons = []
    for metric in compare.get("metrics") or []:
        if not isinstance(metric, Mapping) or metric.get("state") not in ("regressed", "missing", "failed"):
            continue
        change = metric.get("change")
        text = f"{metric.get('metric')} {metric.get('state')}"
        if isinstance(change, (int, float)):
            text += f" ({change:+.1%} against the baseline)"
        since = metric.get("changes") or []
        if since:
            text += f"; {', '.join(str(c) for c in since)} since the baseline"
        reasons.append(text)
    return reasons


def run_verdict(
    run: Mapping[str, Any], judged: bool, compare: Mapping[str, Any] | None, named: Sequence[str] = ()
) -> Verdict:
    """The badge word and reasons of a run (see the module docstring).

    ``named`` are failures the caller found in the run's other files (failed checks, named rail defects):
    reasons for a FAIL beside run.json's own.
    """
    verdict = run.get("verdict")
    status = run.get("status")
    if verdict in ("fail", "error") or status in ("failed", "interrupted", "incomplete"):
        reasons = [str(r) for r in run.get("reasons") or []]
        accept = run.get("accept")
        if isinstance(accept, Mapping):
            reasons += _accept_reasons(accept)
        failure = run.get("failure")
        if isinstance(failure, Mapping) and failure.get("message"):
            reasons.append(str(failure["message"]))
        reasons += [str(n) for n in named]
        if not reasons:
            reasons.append(f"the run ended {status}" if status not in (None, "complete") else "a check failed")
        return Verdict("FAIL", tuple(dict.fromkeys(reasons)))
    if compare is not None and compare.get("exit_status") == 1:
        return Verdict("REGRESSED", tuple(_compare_reasons(compare)))
    if verdict == "pass" and judged:
        return Verdict("PASS")
    return Verdict("MEASURED", ("no target applies to this run: it was measured, not judged",))
