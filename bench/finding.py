"""A finding: something the evidence (NCCL's log, the byte counters) says is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bench.codec import Written

Severity = Literal["fail", "warn"]


@dataclass(frozen=True)
class Finding(Written):
    """One problem, in one line that names the device (and host, when known); run.json's ``findings`` holds it
    as it is (every field, in this order)."""

    severity: Severity
    message: str
    device: str | None = None
    host: str | None = None
