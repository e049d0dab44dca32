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
    gpu_models: tuple[str, ...] = ()
    """The GPU names the ranks reported, most ranks first (none on CPU ranks)."""
    gpu_generation: str | None = None
    """The profile's GPU generation whose figures were the targets (``bench.gpu_targets``), if it has any."""
    targets_source: str | None = None
    """Where that generation's figures come from."""
    targets_note: str = ""
    """Why no generation's figures judged the run (no GPU, an unknown one, two generations)."""

    def to_json(self) -> dict[str, object]:
        doc = asdict(self)
        doc["idle_devices"] = list(self.idle_devices)
        doc["gpu_models"] = list(self.gpu_models)
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
            # the GPU fields came later: a run written before them reads with none
            models = doc.get("gpu_models", [])
            generation, source, note = (doc.get(k) for k in ("gpu_generation", "targets_source", "targets_note"))
            if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
                return None
            return cls(
                profile=str(doc["profile"]),
                source=str(doc["source"]),
                pass_fraction=float(doc["pass_fraction"]),
                judge_min_bytes=int(doc["judge_min_bytes"]),
                compare_min_bytes=int(doc["compare_min_bytes"]),
                idle_devices=tuple(idle),
                counter_tolerance_bytes=int(doc["counter_tolerance_bytes"]),
                gpu_models=tuple(models),
                gpu_generation=generation if isinstance(generation, str) else None,
                targets_source=source if isinstance(source, str) else None,
                targets_note=note if isinstance(note, str) else "",
            )
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
