"""What ``railbench compare`` compares, against what, and how strictly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.history.baseline import parse_baseline_spec


@dataclass(frozen=True)
class CompareConfig:
    """What ``railbench compare`` compares, against what, and how strictly."""

    run_dir: Path
    """Tonight's run directory."""
    baseline: str = "last:10"
    """``last:N`` (the last N comparable runs in the history) or a run directory."""
    history: Path | None = None
    """The SQLite history (used by ``last:N``); None: the one the run directory belongs to
    (``bench.history.store.history_for``: ``reports/history.sqlite`` beside ``reports/runs/``)."""
    init: bool = False
    """Start an empty history when there is none at ``history`` (else a missing history is bad input)."""
    profile: str | None = None
    """Profile name or path whose ``[compare]`` table sets thresholds; None: the run's own profile (run.json),
    else the defaults."""
    show_all: bool = False
    """Print every metric, not only those that are not ``unchanged``."""
    same_environment: bool = False
    """Baseline only from runs on the same node set and NCCL version (other versions shown beside it)."""

    def __post_init__(self) -> None:
        parse_baseline_spec(self.baseline)  # raises UserError on a bad last:N
