"""The words localisation names a defect with: its symptom, its severity, and how many samples its evidence lists.

The records themselves are rails.json's (``bench.rundir.rails_records``: the rails layer builds them, the
report reads them back); their kinds are ``bench.rundir.defect_kinds``. A defect's sentence is the one
renderer's (``bench.rundir.finding_words``, docs/design.md "Adding a finding"), said by output code only: the
line each defect carries in rails.json is ``bench.rails.output.described``'s, a transient's line
``bench.rails.output.describe_transient``'s.
"""

from __future__ import annotations

from typing import Literal

Symptom = Literal["slow", "flaky", "dead", "errors", "misrouted"]
Severity = Literal["fail", "warn"]

EVIDENCE_LIMIT = 64
"""Pairs listed in one defect's evidence; a rail fault on 512 nodes has 130,816 slow pairs."""
