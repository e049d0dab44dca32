"""The human line for what localisation names: a defect (a broken part and the samples that convict it)
and a transient (a suspect that did not reproduce when measured again).

The records themselves are rails.json's (``bench.rundir.rails_records``: the rails layer builds them, the
report reads them back); their kinds are ``bench.rundir.defect_kinds``. A defect's words are the one renderer's
(``bench.rundir.finding_words``, docs/design.md "Adding a finding"), used here under the names the rails layer
has always called them; the line each defect carries in rails.json is ``bench.rails.output.described``'s.
"""

from __future__ import annotations

from typing import Literal

from bench.rundir.finding_words import cause_clause as cause_clause
from bench.rundir.finding_words import describe as describe
from bench.rundir.finding_words import errors_clause as errors_clause
from bench.rundir.finding_words import gbps as gbps
from bench.rundir.rails_records import Transient

Symptom = Literal["slow", "flaky", "dead", "errors", "misrouted"]
Severity = Literal["fail", "warn"]

EVIDENCE_LIMIT = 64
"""Pairs listed in one defect's evidence; a rail fault on 512 nodes has 130,816 slow pairs."""


def describe_transient(t: Transient) -> str:
    """``node02-node05 rail 1: slow at 1.2 Gb/s, normal when re-measured (9.8, 10.1 Gb/s) → transient``."""
    return transient_line(f"{t.node}-{t.peer} rail {t.rail}", t)


def transient_line(where: str, t: Transient) -> str:
    """A transient said at ``where`` (a pair on a rail, or two GPUs of a node): its slowest sample and its
    re-measurements."""
    low = min(t.samples_Gbps) if t.samples_Gbps else 0.0
    again = ", ".join(gbps(v) for v in t.confirm_Gbps)
    return f"{where}: slow at {gbps(low)} Gb/s, normal when re-measured ({again} Gb/s) → transient"
