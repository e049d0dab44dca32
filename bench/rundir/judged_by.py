"""What a run was judged against, as its profile said when it ran (run.json ``judged_by``).

A report drawn, metrics exported or a certificate printed months later shows the run against these
numbers, never against whatever the profile of the same name says today
(docs/design.md, "Records and schemas").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class JudgedBy:
    """The profile's thresholds and device lists that the run's verdict and evidence used."""

    profile: str
    source: str
    """The file the profile was read from."""
    pass_fraction: float
    judge_min_bytes: int
    compare_min_bytes: int
    idle_devices: tuple[str, ...]
    """Devices that had to carry no benchmark traffic: the excluded HCAs and interfaces, the management one."""
    counter_tolerance_bytes: int

    def to_json(self) -> dict[str, object]:
        doc = asdict(self)
        doc["idle_devices"] = list(self.idle_devices)
        return doc

    @classmethod
    def from_json(cls, doc: object) -> JudgedBy | None:
        """The record in run.json, or None for a run written before it was recorded (or a damaged one)."""
        if not isinstance(doc, Mapping):
            return None
        try:
            idle = doc["idle_devices"]
            if not isinstance(idle, list) or not all(isinstance(d, str) for d in idle):
                return None
            return cls(
                profile=str(doc["profile"]),
                source=str(doc["source"]),
                pass_fraction=float(doc["pass_fraction"]),
                judge_min_bytes=int(doc["judge_min_bytes"]),
                compare_min_bytes=int(doc["compare_min_bytes"]),
                idle_devices=tuple(idle),
                counter_tolerance_bytes=int(doc["counter_tolerance_bytes"]),
            )
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
