"""The one place a verdict is decided: from the items a job judged to the run's verdict record.

A job says, per item it looked at (a collective, a rail, a node's check, a GPU pair matrix), one of
``pass``, ``warn`` (judged and passed, with a warning that says what to watch), ``fail``, ``measured``
(looked at, not judged: no target applies or the sizes never reached the judged size) or ``skip`` (not
looked at), each with the findings it is about (``bench.rundir.findings``: none when nothing is wrong) or, for
what no finding says (why it was not judged, a collective below target), its note. The items' sentences are
rendered from their findings here, at the edge, by the one renderer (``bench.rundir.finding_words``).
:func:`decide` turns the items into the run's :class:`~bench.rundir.verdict.Verdict` by one rule
(docs/design.md, "One verdict"):

* any item failed: ``fail``, with every failed item's sentence;
* else any deciding item passed or only warned: ``pass`` (the sentences of items measured but not judged are
  kept as notes; a warning stays with its item in run.json ``items`` and junit.xml);
* else any item was measured: ``measured``, with why nothing was judged;
* else ``skip``: nothing was looked at, which is never a pass.

An item that is evidence rather than a target (the byte counters) or a view over others (a node's line in
accept, which gathers that node's checks and defects) has ``decides`` off: its failure still fails the run,
its pass alone never makes one; a view also ``repeats``, so its sentence is not said twice, and it is no
JUnit testcase: the items it gathers are, so CI counts one failure per defect.

:func:`mark_regressed` is how ``compare`` turns a finished run's verdict into ``regressed`` in every output of
the run (run.json's word, reasons and exit status, junit.xml; the report and metrics.prom are drawn again from
run.json) and in the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from bench.history.store import refresh_run
from bench.rundir.files import atomic_write_bytes
from bench.rundir.finding_words import item_reason
from bench.rundir.findings import Finding
from bench.rundir.junit import Case, Status, restated_junit, write_junit
from bench.rundir.runjson import RunFile
from bench.rundir.sections import BeforeCompare, ItemEntry, ItemFinding
from bench.rundir.verdict import Verdict

State = Literal["pass", "warn", "fail", "measured", "skip"]

# JUnit has no warning state: a warned item passes there, and says so in the case's output.
_JUNIT: dict[State, Status] = {"pass": "pass", "warn": "pass", "fail": "fail", "measured": "skip", "skip": "skip"}


@dataclass(frozen=True)
class Item:
    """One thing a job looked at, and what it found."""

    group: str
    """Where it belongs, dotted (``railbench.run``, ``railbench.check.node03``): the JUnit classname."""
    name: str
    state: State
    reason: str = ""
    """What no finding says, in one sentence: why it was not judged (measured, skip), a collective below its
    target. An item with findings is said by them (:func:`said`)."""
    details: str = ""
    """The evidence under it (measurements, counters), shown as the JUnit case's output."""
    decides: bool = True
    """False for evidence (the byte counters) and for views that repeat others: its fail still fails the
    run, its pass alone never makes one."""
    repeats: bool = False
    """True for a view that gathers other items' failures (a node's line in accept): its sentence is not said
    again in the verdict."""
    time_s: float = 0.0
    """How long looking at it took (JUnit's time)."""
    findings: tuple[Finding, ...] = ()
    """What it found wrong or warns of, as data (a rail's defects, a failed check, a GPU defect)."""
    of_node: str | None = None
    """The node a node's view is of (accept's line per node): its name is the item's, so its checks are said
    without it, and its evidence is its findings, one a line."""


def timed(items: Sequence[Item], seconds: float) -> list[Item]:
    """``items`` with the wall time of the step that judged them, where they carry none of their own (JUnit's
    testcase time: every rail and node is under test through the whole rails step)."""
    return [i if i.time_s else replace(i, time_s=seconds) for i in items]


def decide(items: Sequence[Item]) -> Verdict:
    """The run's verdict from its items (see the module docstring)."""
    failed = [i for i in items if i.state == "fail"]
    if failed:
        # A repeating item's sentence only when nothing else said why (it never should).
        said = [i for i in failed if not i.repeats] or failed
        return Verdict.of("fail", (_sentence(i) for i in said))
    unjudged = [_sentence(i) for i in items if i.state == "measured"]
    if any(i.state in ("pass", "warn") and i.decides for i in items):
        return Verdict.of("pass", unjudged)
    if unjudged:
        return Verdict.of("measured", unjudged)
    skipped = [_sentence(i) for i in items if i.state == "skip"]
    return Verdict.of("skip", skipped or ["nothing was measured or checked"])


def item_entries(items: Sequence[Item]) -> tuple[ItemEntry, ...]:
    """run.json's ``items``: what the verdict was decided from, so every reader shows the same states, with the
    step and part of each finding an item carries (the certificate picks its "Other failures" by them)."""
    return tuple(
        ItemEntry(
            group=i.group,
            name=i.name,
            state=i.state,
            reason=said(i),
            decides=i.decides,
            repeats=i.repeats,
            findings=tuple(ItemFinding(step=f.step, part=f.part.kind) for f in i.findings),
        )
        for i in items
    )


def said(item: Item) -> str:
    """The item's sentence: its findings' (``bench.rundir.finding_words.item_reason``), else its note."""
    return item_reason(item.findings, item.of_node) if item.findings else item.reason


def _details(item: Item) -> str:
    """The evidence under the item: a node's view says its findings one a line; any other item its own."""
    if item.of_node is None:
        return item.details
    return "\n".join(item_reason((f,), item.of_node) for f in item.findings)


def _sentence(item: Item) -> str:
    return said(item) or f"{item.group.removeprefix('railbench.')} {item.name}: {item.state}"


def junit_case(item: Item) -> Case:
    """The item as a JUnit testcase: ``measured`` is a skipped case whose message says it was not judged; a
    warning passes, and its output opens with ``WARN`` and the reason (CI shows a passed case's output)."""
    reason, details = said(item), _details(item)
    if item.state in ("pass", "warn"):
        warned = f"WARN {reason}" if item.state == "warn" else ""
        return Case(item.group, item.name, "pass", "", "\n".join(filter(None, (warned, details))), item.time_s)
    message = reason if item.state != "measured" else f"measured, not judged: {reason}"
    return Case(item.group, item.name, _JUNIT[item.state], message, details, item.time_s)


def junit_cases(items: Sequence[Item]) -> list[Case]:
    """junit.xml's testcases: one per item that judges or is evidence; a view that repeats others (a node's
    line in accept) is left out, since the items it gathers are cases of their own and CI counts one failure
    per defect."""
    return [junit_case(i) for i in items if not i.repeats]


def write_junit_items(
    path: Path, suite: str, items: Sequence[Item], verdict: Verdict, *, hostname: str = "", time_s: float | None = None
) -> None:
    """junit.xml with one testcase per item, and the run's verdict record as the suite's properties
    (``railbench.verdict``, ``railbench.reasons``): JUnit has no word for measured or skip, so CI reads it there."""
    write_junit(
        path, suite, junit_cases(items), hostname=hostname, properties=_verdict_properties(verdict), time_s=time_s
    )


COMPARE_GROUP = "railbench.compare"
"""The JUnit classname of compare's case in the run's own junit.xml."""


def _verdict_properties(verdict: Verdict) -> dict[str, str]:
    return {"railbench.verdict": verdict.word, "railbench.reasons": "\n".join(verdict.reasons)}


def _compare_case(verdict: Verdict) -> Case:
    shown = "; ".join(verdict.reasons[:3]) + (
        f" and {len(verdict.reasons) - 3} more" if len(verdict.reasons) > 3 else ""
    )
    return Case(COMPARE_GROUP, "baseline", "fail", shown, "\n".join(verdict.reasons))


def _restate(run_dir: Path, run_file: RunFile, verdict: Verdict, exit_status: int | None, **sections: object) -> None:
    """Say ``verdict`` in every output of the run: junit.xml (its properties, and compare's own failing case
    while the run is regressed), run.json (the word, the reasons and the exit status). junit.xml is read and
    checked first, so a damaged one is refused before run.json changes."""
    cases = [_compare_case(verdict)] if verdict.word == "regressed" else []
    junit = run_dir / "junit.xml"
    document = restated_junit(junit, _verdict_properties(verdict), COMPARE_GROUP, cases)
    run_file.update(verdict=verdict.word, reasons=list(verdict.reasons), exit_status=exit_status, **sections)
    if document is not None:
        atomic_write_bytes(junit, document)


def mark_regressed(run_dir: Path, reasons: Sequence[str], history: Path | None = None) -> Verdict:
    """Record in every output of ``run_dir`` (run.json's verdict and exit status, junit.xml) and in ``history``
    when it holds the run, that ``compare`` found it regressed, for the reasons given; returns the verdict the
    run now has. A run that failed or broke keeps that verdict (it is the worse news); the run's own verdict
    and exit status are kept under ``before_compare`` so :func:`clear_regressed` can restore them."""
    run_file = RunFile.load(run_dir)
    record = run_file.record
    own = record.decided()
    if own is None or own.word in ("fail", "error") or record.status != "complete":
        return own or Verdict.of("error", ["the run did not finish"])
    before = record.before_compare or BeforeCompare(
        verdict=own.word, reasons=tuple(own.reasons), exit_status=record.exit_status
    )
    verdict = Verdict.of("regressed", reasons or ["compare found a regression"])
    _restate(run_dir, run_file, verdict, verdict.exit_status, before_compare=before)
    if history is not None:
        refresh_run(history, run_dir)
    return verdict


def clear_regressed(run_dir: Path, history: Path | None = None) -> Verdict | None:
    """Undo :func:`mark_regressed` when a later compare finds nothing regressed (run.json, junit.xml, the
    history); returns the run's verdict."""
    run_file = RunFile.load(run_dir)
    record = run_file.record
    before = record.before_compare
    if record.verdict != "regressed" or not before:
        return record.decided()
    own = Verdict.of(before.verdict, before.reasons)
    _restate(run_dir, run_file, own, own.exit_status if before.exit_status is None else before.exit_status)
    if history is not None:
        refresh_run(history, run_dir)
    return own
