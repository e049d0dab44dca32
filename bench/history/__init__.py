"""Nightly history and regression detection.

* ``bench.history.store``: the SQLite history (``add_run``, ``default_history_path``, ``history_for``,
  ``open_store``).
* ``bench.history.records``: what a run directory contributes to it (a run row, key metrics).
* ``bench.history.soak_runs``: a soak summed up from its windows (the certificate, OpenMetrics and the
  history say it) and its tables in the store.
* ``bench.history.runfacts``: what run.json says about comparability (the run's kind) and its environment
  (versions, node set, NCCL_* variables), read in one place.
* ``bench.history.compare``: pure functions that tell a real drop from noise.
* ``bench.profile.compare`` (the ground, beside the profile that holds it): thresholds from ``[compare]``.

``run``, ``rails`` and ``accept`` call ``add_run(history_path, run_dir)`` at their end unless
``--no-history``.
"""

from __future__ import annotations

from bench.history.store import add_run, default_history_path, history_for

__all__ = ["add_run", "default_history_path", "history_for"]
