"""What ``railbench import`` reads and where its run directories go."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench.bounded import check_path_names
from bench.exits import UserError
from bench.history.store import default_history_path
from bench.nccltests import BUS_FACTOR
from bench.rundir.files import check_cluster_name

DEFAULT_CLUSTER = "imported"
DEFAULT_OUT_ROOT = Path("reports/runs")


@dataclass(frozen=True)
class ImportConfig:
    """What to import and where to put it."""

    kind: Literal["nccl-tests"]
    """The tool whose output the logs are (only nccl-tests so far)."""
    logs: tuple[Path, ...]
    cluster: str = DEFAULT_CLUSTER
    """Cluster name for the run directories and the history (compare only matches runs of one cluster)."""
    out_root: Path = DEFAULT_OUT_ROOT
    history: Path = field(default_factory=default_history_path)
    no_history: bool = False
    collective: str | None = None
    """For tables whose log never names the collective (and whose rows fit several)."""
    nranks: int | None = None
    """For tables whose log never says how many ranks ran."""

    def __post_init__(self) -> None:
        if not self.logs:
            raise UserError("import nccl-tests needs at least one LOG: e.g. railbench import nccl-tests run.log")
        check_cluster_name(self.cluster)
        check_path_names(self.out_root, "--out-root")
        if not self.no_history:
            check_path_names(self.history, "--history")
        if self.collective is not None and self.collective not in BUS_FACTOR:
            raise UserError(f"--collective {self.collective!r} is not one of {', '.join(BUS_FACTOR)}")
        if self.nranks is not None and self.nranks < 1:
            raise UserError(f"--nranks must be at least 1, got {self.nranks}")
