"""What the evidence (NCCL's log, the byte counters) says is wrong: run.json's ``findings`` (the judged findings of
the rails test, the checks and the intra-node matrix are ``bench.rundir.findings``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bench.codec import Written

Severity = Literal["fail", "warn"]


@dataclass(frozen=True)
class EvidenceFinding(Written):
    """One problem, in one line that names the device (and host, when known); run.json's ``findings`` holds it
    as it is (every field, in this order)."""

    severity: Severity
    message: str
    device: str | None = None
    host: str | None = None
