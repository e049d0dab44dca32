"""Charts and reports from a run directory (``railbench report``).

* ``bench.report.inputs``: read and check the run directory (run.json, results.csv, rails.json, ...);
* ``bench.report.data``: aggregate it into small chart tables (pandas); ``bench.report.matrices``: the node x
  node pair matrix of every rail and the GPU x GPU matrix of every node;
* ``bench.report.charts``: pure ``DataFrame -> altair chart`` functions, one per chart;
* ``bench.report.theme``: the one registered Altair theme, and spec dicts (Vega-Lite v5, Altair 5);
* ``bench.report.page``: the certificate as plain data (``summary``: the one-screen top; ``certificate`` and
  ``traffic``: the evidence), laid out by ``markdown`` (mkdocs-charts-plugin) and ``htmlpage`` (self-contained);
* ``bench.report.soak``, ``soak_charts``, ``soak_metrics``: a soak's section, its timelines and its gauges;
* ``bench.report.build``: ``write_report(run_dir)`` writes all of it, atomically.

Import ``write_report`` from ``bench.report.build``; this package's import stays cheap (no pandas, no
altair), so ``railbench report --help`` starts fast.
"""

from typing import Literal

UnitChoice = Literal["auto", "GB/s", "Gb/s"]
"""Bandwidth unit on the charts: auto (GB/s for collectives, Gb/s for rails), GB/s or Gb/s."""
