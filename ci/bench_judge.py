"""Rank 0's whole judgement of one pair-matrix run, timed and weighed at 256 x 8 and 1024 x 8 (issue 45 item 4: "one
judgement at 1024x8 takes <= 10 s and <= 1 GB"), printed, not asserted.

The run comes from the fabric model (``tests/support/models/fabric_model.py``, as ``ci/diagnosis_sim.py`` builds it:
the same settings, schedule and faults), in the regimes ``realistic`` (non-blocking) and ``tapered`` (2:1, the
capacity-aware path: ``round_load``, ``capacity``, ``expected``, ``persistence``). What is timed is what rank 0 runs
once the pair times are gathered, as columns (``PairColumns``): the suspect cells (``judge.suspects_in``, with the
capacity expectations of every matrix round), the confirmation rounds and the quiet pass it schedules
(``bench.rails.plan.remeasure``), the quiet cells that read low (``judge.quiet_lows_in``, measured alone again),
then, with the re-measurements in, the matrix (``pair_matrix``), the judgement
(``judge.judged``: localisation, switches, the re-measurements' expectations) and the actions (``corroborate``).
The model's own measuring between the two steps is not timed.

Each size and regime runs in its own child process, so its memory is its own: the peak resident set over the
judgement (``VmHWM``, reset before each step through ``/proc/self/clear_refs``), beside the resident set the gathered
input and the model already held when it began ("input MB"); and, in a second child that traces allocations
(tracemalloc, which numpy reports its arrays to), the judgement's own peak over what its input held ("own MB"). CPU s
is the first child's user + system time over the judgement.

    python ci/bench_judge.py                         # realistic and tapered, 256 x 8 and 1024 x 8
    python ci/bench_judge.py --sizes 256x8 --regimes tapered --profile   # and cProfile's top functions
    python ci/bench_judge.py --tiny                  # 8 and 16 x 2, tapered: the same code in seconds (CI)
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import json
import os
import pstats
import resource
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "ci"))  # diagnosis_sim's settings and faults, one copy

from diagnosis_sim import (  # noqa: E402
    again_rounds,
    faults_for,
    measure_again,
    named,
    schedule_for,
    settings_for,
    units_for,
)

from bench.rails.diagnosis import judge  # noqa: E402
from bench.rails.diagnosis.corroborate import corroborate  # noqa: E402
from bench.rails.diagnosis.matrix import pair_matrix  # noqa: E402
from bench.rails.plan.layout import RailLayout  # noqa: E402
from bench.rails.plan.remeasure import (  # noqa: E402
    REPEAT_STAGES,
    quiet_repeat_rounds,
    repeat_confirm,
)
from tests.support.models.fabric_model import Model, Shape  # noqa: E402
from tests.support.models.fabric_regimes import REGIMES  # noqa: E402

FAULTS = "two"
"""Two faults of the regime's kinds at once, on other rails and nodes (``diagnosis_sim.faults_for``)."""
SEED = 1_000_000


@dataclass
class Step:
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_mb: float = 0.0
    own_mb: float = 0.0
    """The judgement's own allocations at their peak (tracemalloc: numpy reports its arrays to it), where traced:
    each step's peak over what was allocated when it began, plus what the earlier steps kept."""
    kept_bytes: int = 0
    """What the steps so far kept allocated when they ended (the judge's caches, the suspects)."""


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    """Linux: writing 5 to clear_refs sets the peak resident set (VmHWM) to the current one."""
    gc.collect()
    with contextlib.suppress(OSError):  # then VmHWM is the process's whole peak: an upper bound
        Path("/proc/self/clear_refs").write_text("5")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Timed:
    """Wall, CPU and peak resident set over a ``with`` block, added to ``step``."""

    def __init__(self, step: Step) -> None:
        self.step = step

    def __enter__(self) -> None:
        _reset_peak()
        if tracemalloc.is_tracing():
            tracemalloc.reset_peak()
            self.start = tracemalloc.get_traced_memory()[0]
        self.wall, self.cpu = time.perf_counter(), _cpu_s()

    def __exit__(self, *exc: object) -> None:
        self.step.wall_s += time.perf_counter() - self.wall
        self.step.cpu_s += _cpu_s() - self.cpu
        self.step.peak_mb = max(self.step.peak_mb, _status_kb("VmHWM") / 1e3)
        if tracemalloc.is_tracing():
            now, peak = tracemalloc.get_traced_memory()
            self.step.own_mb = max(self.step.own_mb, (peak - self.start + self.step.kept_bytes) / 1e6)
            self.step.kept_bytes += now - self.start


def child(
    size: str, regime_name: str, unit: int, profile: bool, trace: bool = False, full_matrix: bool = False
) -> dict[str, object]:
    """One judgement in this process: the numbers as a dictionary (``trace``: its own memory, by tracemalloc)."""
    nodes, rails = (int(x) for x in size.lower().split("x"))
    regime = REGIMES[regime_name]
    shape = Shape(nodes, rails, min(unit, nodes), regime.oversubscription)
    settings = settings_for(shape, full_matrix)
    rng = np.random.default_rng(SEED)
    faults = faults_for(FAULTS, shape, rng, regime)
    test = settings.test
    model = Model(shape, faults, rng, test.pair_bytes, test.rail_bytes, test.iters, test.warmup, regime)
    names = tuple(shape.node_name(a) for a in range(nodes))
    layout = RailLayout(names, tuple(tuple(a * rails + k for k in range(rails)) for a in range(nodes)))
    gathered = model.gathered(test.collectives)
    rounds = schedule_for(shape, full_matrix)  # what accept runs: the unit schedule from the cabling
    cols = model.measure_rounds(rounds)
    input_mb = _status_kb("VmRSS") / 1e3
    step = Step()
    if trace:
        tracemalloc.start()
    profiler = cProfile.Profile() if profile else None
    with _Timed(step):
        if profiler:
            profiler.enable()
        suspect, again = again_rounds(settings, layout, gathered, cols, rounds, units_for(shape, full_matrix))
        if profiler:
            profiler.disable()
    cols = measure_again(model, cols, again, test.confirm)
    for stage in range(REPEAT_STAGES):  # as bench.rails.measurement.steps.confirm_suspects runs them
        with _Timed(step):
            if profiler:
                profiler.enable()
            low = judge.quiet_lows_in(settings, layout, gathered, cols)
            repeats = quiet_repeat_rounds(low, repeat_confirm(test.confirm, stage), units_for(shape, full_matrix))
            if profiler:
                profiler.disable()
        if not repeats:
            break
        cols = cols + model.measure_rounds(list(repeats))
    with _Timed(step):
        if profiler:
            profiler.enable()
        outcome = judge.judged(settings, layout, gathered, [], pair_matrix(cols, names, rails, test.confirm + 1))
        outcome = corroborate(outcome, settings.profile.errors, settings.profile.actions)
        if profiler:
            profiler.disable()
    if profiler:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    return {
        "size": size,
        "regime": regime_name,
        "cells": len(cols),
        "suspects": len(suspect),
        "wall_s": step.wall_s,
        "cpu_s": step.cpu_s,
        "peak_mb": step.peak_mb,
        "input_mb": input_mb,
        "own_mb": step.own_mb,
        "named": sorted(map(str, named(outcome))),
    }


def _run_child(size: str, regime: str, unit: int, *flags: str) -> dict[str, object]:
    argv = [sys.executable, __file__, "--child", size, regime, "--unit", str(unit), *flags]
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_judge: the {size} {regime} judgement exited {done.returncode}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256x8,1024x8", help="NODESxRAILS, comma-separated")
    parser.add_argument("--regimes", default="realistic,tapered", help=f"of {', '.join(REGIMES)}")
    parser.add_argument("--unit", type=int, default=32, help="nodes per scalable unit")
    parser.add_argument("--profile", action="store_true", help="cProfile's top 30 functions per run, on stderr")
    parser.add_argument("--tiny", action="store_true", help="8 and 16 x 2, tapered: the same code in seconds (CI)")
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "REGIME"), help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--full-matrix", action="store_true", help="every node pair, not the unit schedule accept runs")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.unit, args.profile, args.trace, args.full_matrix)))
        return 0
    if args.tiny:  # the capacity-aware regime runs every step the other does, and more (CI time is scarce)
        args.sizes, args.unit, args.regimes = "8x2,16x2", 8, "tapered"
    unknown = [r for r in args.regimes.split(",") if r not in REGIMES]
    if unknown:
        print(f"bench_judge: no regime {unknown[0]!r}: name one of {', '.join(REGIMES)}", file=sys.stderr)
        return 2
    sizes = args.sizes.split(",")
    print("rank 0's judgement of one pair-matrix run (target at 1024 x 8: <= 10 s and <= 1 GB)")
    print("  peak MB: the process's resident peak, the input's included; own MB: the judgement's own (tracemalloc)")
    print(
        f"{'size':>7} {'regime':<10} {'cells':>9} {'suspects':>8} {'wall s':>7} {'CPU s':>7} {'peak MB':>8} "
        f"{'input MB':>8} {'own MB':>7}  named"
    )
    for regime in args.regimes.split(","):
        done = []
        for size in sizes:
            which = ("--full-matrix",) if args.full_matrix else ()
            r = _run_child(size, regime, args.unit, *which, *(("--profile",) if args.profile else ()))
            # Its own memory in a run of its own: tracing slows the judgement's Python parts.
            r["own_mb"] = _run_child(size, regime, args.unit, *which, "--trace")["own_mb"]
            done.append(r)
            print(
                f"{size:>7} {regime:<10} {r['cells']:>9} {r['suspects']:>8} {r['wall_s']:>7.2f} {r['cpu_s']:>7.2f} "
                f"{r['peak_mb']:>8.0f} {r['input_mb']:>8.0f} {r['own_mb']:>7.0f}  "
                f"{', '.join(map(str, r['named'])) or 'none'}"
            )
        if len(done) >= 2:
            first, last = done[0], done[-1]
            keys = ("cells", "cpu_s", "peak_mb", "own_mb")
            ratio = {key: float(last[key]) / max(1e-9, float(first[key])) for key in keys}
            print(
                f"        {regime}: {sizes[-1]} over {sizes[0]}: cells x{ratio['cells']:.1f}, CPU s "
                f"x{ratio['cpu_s']:.1f}, peak MB x{ratio['peak_mb']:.1f}, own MB x{ratio['own_mb']:.1f}"
            )
    print(f"# load: {Path('/proc/loadavg').read_text().split()[:3]} (1, 5, 15 min) on {_cpus()} CPUs")
    return 0


def _cpus() -> int:
    return os.cpu_count() or 1


if __name__ == "__main__":
    raise SystemExit(main())
