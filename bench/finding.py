"""What the evidence (NCCL's log, the byte counters) says is wrong: run.json's ``findings``, the record its judge
writes. It is a finding's evidence (``bench.rundir.findings.evidence_finding``: on the device it names of its host)
and said by the one renderer, ``bench.rundir.finding_words`` (docs/design.md, "Adding a finding")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bench.codec import Written

Severity = Literal["fail", "warn"]


@dataclass(frozen=True)
class EvidenceFinding(Written):
    """One problem, in the words of the judge that read the log or the counters (naming the device, and the host
    when known, and quoting the log's lines where they say it); run.json's ``findings`` holds it as it is (every
    field, in this order)."""

    severity: Severity
    message: str
    device: str | None = None
    host: str | None = None
