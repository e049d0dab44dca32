"""Re-draw the charts, report.md and report.html of a run directory (``railbench report``; the command line
is ``bench.commands.report``). Torch-free: it reads files and draws."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from bench.exits import EXIT_PASS, InfraError, UserError
from bench.report import UnitChoice


@dataclass(frozen=True)
class ReportConfig:
    """What ``railbench report`` does."""

    run_dir: Path
    """The run directory to read (run.json, results.csv, and rails.json/checks.json/trend.csv if present)."""
    out_dir: Path | None = None
    """Where to write the report; default: the run directory itself."""
    unit: UnitChoice = "auto"
    """Bandwidth unit on the charts: auto (GB/s for collectives, Gb/s for rails), GB/s or Gb/s."""
    images: bool = True
    """Write PNG and SVG of every chart."""
    url_prefix: str = "charts/"
    """Prefix of the CSV urls inside the specs, as seen from the docs root."""
    min_efficiency: float | None = None
    """Bars under this fraction of their target are drawn as failures; None: the run's own pass fraction
    (``bench.report.build.ReportOptions``)."""

    def __post_init__(self) -> None:
        if self.unit not in get_args(UnitChoice):
            raise UserError(f"--unit {self.unit!r} is not one of {', '.join(get_args(UnitChoice))}")
        if self.min_efficiency is not None and not 0.0 < self.min_efficiency <= 1.5:
            raise UserError(f"--min-efficiency {self.min_efficiency} must be a fraction such as 0.9")
        if self.url_prefix and not self.url_prefix.endswith("/"):
            raise UserError(f"--url-prefix {self.url_prefix!r} must end with '/', e.g. runs/n42/charts/")


def run(config: ReportConfig) -> int:
    """Write the report; prints where it went. Exit status 0 (drawing a failed run is not a failure)."""
    # pandas and altair load here, not at import, so that --help and bad arguments answer at once.
    from bench.report.build import ReportOptions, write_report

    if config.out_dir is not None and config.out_dir.exists() and not config.out_dir.is_dir():
        raise UserError(f"--out {config.out_dir} is a file: give a directory for the report (it is created)")
    options = ReportOptions(
        unit=config.unit,
        images=config.images,
        url_prefix=config.url_prefix,
        min_efficiency=config.min_efficiency,
    )
    try:
        paths = write_report(config.run_dir, out_dir=config.out_dir, options=options)
    except OSError as exc:  # the folder was checked writable up front: the disk filled, or it changed since
        where = config.out_dir or config.run_dir
        why = exc.strerror or exc
        raise InfraError(f"the report could not be written to {where} ({why}): free space and retry") from None
    print(f"report: {paths.report_html}", file=sys.stdout)
    print(f"        {paths.report_md}", file=sys.stdout)
    print(f"        {paths.out_dir / 'metrics.prom'} (Prometheus textfile)", file=sys.stdout)
    for chart in paths.charts:
        print(f"chart:  {chart.spec}", file=sys.stdout)
    return EXIT_PASS
