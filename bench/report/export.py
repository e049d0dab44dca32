"""A run's headline metrics and verdict for monitoring (``bench.report.openmetrics``). Without ``--out`` the
text goes to stdout; with it the file is replaced atomically (a temporary file in the same folder, then a
rename), so the node exporter's textfile collector never reads half a file. The collector reads the
Prometheus text format: ``--format prometheus --out /var/lib/node_exporter/textfile/railbench.prom``. An
``--out`` that is a symlink, a device node (``/dev/null``) or a FIFO is refused: the rename would replace it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO, get_args

from bench.bounded import check_path_names
from bench.exits import EXIT_PASS, InfraError, UserError
from bench.rundir.files import check_output_folder, check_replaceable

Format = Literal["openmetrics", "prometheus"]


@dataclass(frozen=True)
class ExportConfig:
    """What ``railbench export`` writes."""

    run_dir: Path
    """The run directory (run.json, results.csv; compare.json and rails.json when present)."""
    format: Format = "openmetrics"
    """``openmetrics`` (the OpenMetrics text format) or ``prometheus`` (text format 0.0.4, node exporter)."""
    out: Path | None = None
    """A file to replace atomically; None for stdout."""

    def __post_init__(self) -> None:
        if self.format not in get_args(Format):
            raise UserError(f"--format {self.format!r}: use openmetrics or prometheus")
        if self.out is not None:
            check_path_names(self.out, "--out")
            if self.out.is_dir():
                raise UserError(f"--out {self.out} is a folder: name the file, e.g. {self.out}/railbench.prom")
            # the file is replaced by a rename: never over /dev/null, a FIFO or a symlink (see check_replaceable)
            check_replaceable(self.out, "--out")
            check_output_folder(self.out.parent, f"--out {self.out}")


def run(config: ExportConfig, out: TextIO | None = None) -> int:
    """Render and write the metrics; exit status 0."""
    from bench.report.openmetrics import openmetrics_text, prometheus_text
    from bench.rundir.files import atomic_write_text

    text = (openmetrics_text if config.format == "openmetrics" else prometheus_text)(config.run_dir)
    if config.out is None:
        (out or sys.stdout).write(text)
    else:
        try:
            atomic_write_text(config.out, text)
        except OSError as exc:  # checked writable up front: the disk filled, or the folder changed since
            why = exc.strerror or exc
            raise InfraError(f"{config.out} could not be written ({why}): free space and retry") from None
    return EXIT_PASS
