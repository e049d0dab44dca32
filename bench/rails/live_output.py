"""rails.json and results.csv kept current while the rails test runs (rank 0).

Rank 0 hears every rail group's result after the concurrent phase, every pair round's times after the round
and every intra-node round's times after that round (``bench.rails.rank.rails_phase``,
``bench.rails.measurement.pairs.PairRunner`` and ``bench.rails.measurement.intranode.intra_node_phase`` gather them to
every rank), and writes them as provisional rows and a ``partial`` rails.json. A stop, a kill or Ctrl-C midway then
leaves every finished measurement on disk, as the failure line promises; the final outputs replace the provisional
ones (the line rates, devices and defects are known only at the end).

Writing costs time between rounds, so it is paced: a write happens when the time since the last one is at
least :data:`PACE` times what the last one took (at most a tenth of the test's time goes to writing, however
large the matrix), and always when the run ends early (the frame calls :meth:`LiveRails.flush`). results.csv
gets only the rows of what arrived since the last write, appended; the final rows replace the provisional
ones once, at the end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from bench.frame.run import Run, write_refused_is_infra
from bench.rails import documents
from bench.rails.diagnosis.gpu_outcome import IntraNodeOutcome
from bench.rails.diagnosis.gpu_pairs import LocalPairTime
from bench.rails.diagnosis.matrix import PairTime
from bench.rails.diagnosis.rails_outcome import RailResult
from bench.rundir.files import atomic_write_json
from bench.rundir.pair_cells import COLUMNS
from bench.rundir.railsdoc import RailsDoc
from bench.rundir.results_csv import Row

PACE = 10.0


class LiveRails:
    """Rank 0's provisional rails outputs: a ``bench.rails.measurement.writer.LiveWriter``, the shape the rank
    side hands it results by."""

    def __init__(self, run: Run, nodes: Sequence[str], rails: int, rate_Gbps: float | None, iters: int) -> None:
        self.run, self.nodes, self.rails, self.iters = run, tuple(nodes), rails, iters
        self.expected: dict[int, float | None] = dict.fromkeys(range(rails), rate_Gbps)
        self.first_row = run.row_count
        self.rail_results: list[RailResult] = []
        self.times: list[PairTime] = []
        self.local: list[LocalPairTime] = []
        self._lock = threading.Lock()
        self._dirty = False
        self._final = False
        self._next = 0.0
        self._written = (0, 0, 0)
        """Rail results, pair times and local pair times whose provisional rows are in results.csv."""
        run.flushers.append(self.flush)

    def add_rails(self, results: Sequence[RailResult]) -> None:
        self._add(rail_results=results)

    def add_pairs(self, times: Sequence[PairTime]) -> None:
        self._add(times=times)

    def add_local(self, times: Sequence[LocalPairTime]) -> None:
        self._add(local=times)

    def _add(
        self,
        *,
        rail_results: Sequence[RailResult] = (),
        times: Sequence[PairTime] = (),
        local: Sequence[LocalPairTime] = (),
    ) -> None:
        with self._lock:
            self.rail_results += rail_results
            self.times += [t for t in times if not t.confirm]
            self.local += local
            self._dirty = True
        if time.monotonic() >= self._next:
            self.flush()

    def flush(self) -> None:
        """Write what is held now (rank 0); also called when the run ends early."""
        with self._lock:
            if not self._dirty or self._final:
                return
            started = time.monotonic()
            # Only what arrived since the last write is appended: a round's times come in one call, both
            # directions of each pair together, so each pair's row is written once, whole.
            rails, times, local = self._written
            new_local = IntraNodeOutcome(self.nodes, self.rails, tuple(self.local[local:]))
            rows = [
                *documents.rail_rows(self.rail_results[rails:], self.expected, "float"),
                *documents.pair_rows(self.times[times:], self.nodes, self.expected, self.iters),
                *(documents.local_pair_rows(new_local, self.iters) if new_local.times else []),
            ]
            self.run.append(*rows)
            self._written = (len(self.rail_results), len(self.times), len(self.local))
            document = self.document().to_json()
            write_refused_is_infra(
                self.run.out_dir,
                "rails.json",
                lambda: atomic_write_json(self.run.out_dir / "rails.json", document, COLUMNS),
            )
            self._dirty = False
            took = time.monotonic() - started
            self._next = time.monotonic() + PACE * took

    def document(self) -> RailsDoc:
        """A rails.json of the measurements so far, marked ``partial`` (no devices, defects or verdict yet)."""
        measured = documents.measurements(self.rail_results, self.expected)
        cells = documents.pair_cells(self.times, self.nodes, self.expected, {})
        return RailsDoc(partial=True, nodes=tuple(self.nodes), measurements=tuple(measured), pair_cells=cells)

    def append(self, *rows: Row) -> None:
        """The final rows, in place of the provisional ones (``bench.rails.output.write_outputs`` calls this);
        nothing provisional is written after them."""
        with self._lock:
            self._final = True
            self.run.replace_rows(self.first_row, rows)
