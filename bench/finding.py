"""A finding: something the evidence (NCCL's log, the byte counters) says is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bench.jsondoc import JSONObject

Severity = Literal["fail", "warn"]


@dataclass(frozen=True)
class Finding:
    """One problem, in one line that names the device (and host, when known)."""

    severity: Severity
    message: str
    device: str | None = None
    host: str | None = None

    def to_json(self) -> JSONObject:
        return {"severity": self.severity, "message": self.message, "device": self.device, "host": self.host}
