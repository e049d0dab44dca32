"""How long does the rails finish step take at 1024 nodes x 8 rails, and the report drawn over it?

Builds the outcome rank 0 holds at the end of a 1024-node x 8-rail acceptance (units of 32 nodes; two slow HCAs
named as link faults and one transient pair), then times, each in a process of its own so that its peak memory is
its own:

1. the finish step's writing: ``bench.rails.output.write_outputs`` (rails.json and the results.csv rows);
2. ``railbench report`` on the run directory (the charts, report.md and report.html: the certificate).

It prints the wall seconds and peak RSS of each, the size of rails.json and results.csv, and every spec's size
(each charts/*.vl.json, each ```vegalite fence of report.md and each data-inlined spec of report.html). Targets
(issue 45, item 4): the report in <= 60 s, every spec under 2 MB.

``--schedule units`` (the default) measures the full matrix inside each unit plus ``--cross-rounds`` rounds of
cross-unit pairs (a perfect matching of nodes in other units per round), the shape of a sub-quadratic schedule;
``--schedule full`` measures every pair of the matrix, today's schedule (8.4 million directions at 1024 x 8).

    python ci/bench_report_scale.py [--nodes 1024] [--schedule units|full] [--keep DIR] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import codec  # noqa: E402
from bench.rails.diagnosis.matrix import PairTime  # noqa: E402
from bench.rails.diagnosis.rails_outcome import RailDevices, RailResult, RailsOutcome  # noqa: E402
from bench.rails.output import write_outputs  # noqa: E402
from bench.rundir.railsdoc import RailDefect, RailsDoc, Transient  # noqa: E402
from bench.rundir.results_csv import ResultsWriter  # noqa: E402
from ci.bench_report import print_spec_sizes  # noqa: E402
from tests.support import rank_env  # noqa: E402
from tests.support.report_data import ClusterModel, device, results_rows, write_run_dir  # noqa: E402

TIME_LIMIT_S = 60.0
SPEC_LIMIT_BYTES = 2 * 1024 * 1024
LINE_GBPS = 400.0
HEALTHY_GBPS = 384.0
"""A healthy NDR rail's sendrecv busbw (tests/support/report_data.py)."""
PAIR_BYTES = 1 << 26
ITERS = 20
PASS_FRACTION = 0.9


def hosts_of(nodes: int) -> tuple[str, ...]:
    return tuple(f"gpu-node-{i:04d}" for i in range(1, nodes + 1))


def faults(hosts: tuple[str, ...]) -> list[tuple[int, int]]:
    """(node index, rail) of each slow HCA: one in an early unit, one in a late one."""
    return [(len(hosts) // 10, 3), ((len(hosts) * 7) // 10, 5)]


def schedule(nodes: int, unit: int, kind: str, cross_rounds: int, seed: int = 7) -> list[list[tuple[int, int]]]:
    """The rounds of pairs (node, peer) measured: every pair (``full``), or the matrix inside each unit plus
    ``cross_rounds`` matchings of nodes in different units (``units``)."""
    if kind == "full":
        return [[(a, b) for b in range(a + 1, nodes)] for a in range(nodes)]
    rounds: list[list[tuple[int, int]]] = []
    for start in range(0, nodes, unit):
        members = range(start, min(nodes, start + unit))
        rounds.append([(a, b) for a in members for b in members if a < b])
    rng = random.Random(seed)
    for _ in range(cross_rounds):
        order = list(range(nodes))
        rng.shuffle(order)
        pairs = [
            (min(a, b), max(a, b)) for a, b in zip(order[::2], order[1::2], strict=False) if a // unit != b // unit
        ]
        rounds.append(pairs)
    return rounds


def outcome_of(nodes: int, rails: int, unit: int, kind: str, cross_rounds: int) -> RailsOutcome:
    """What rank 0 holds after the test: the rail groups, every pair direction measured, the devices and the
    defects the judge named."""
    hosts = hosts_of(nodes)
    slow = set(faults(hosts))
    rng = random.Random(11)
    times: list[PairTime] = []
    transient = (hosts[nodes // 2], hosts[nodes // 2 + 1], 6)
    for number, pairs in enumerate(schedule(nodes, unit, kind, cross_rounds)):
        for a, b in pairs:
            for rail in range(rails):
                rate = HEALTHY_GBPS * (0.45 if (a, rail) in slow or (b, rail) in slow else 1.0)
                for node, peer in ((a, b), (b, a)):
                    measured = rate * (1.0 - 0.02 * rng.random())
                    times.append(PairTime(node, peer, rail, 0, number, PAIR_BYTES, PAIR_BYTES * 8 / (measured * 1e3)))
    results = [
        RailResult(r, c, "concurrent", nodes, PAIR_BYTES, PAIR_BYTES // 4, ITERS, t, t * 0.98, t * 1.03, 0)
        for r in range(rails)
        for c, t in (("all_reduce", 2 * PAIR_BYTES * 8 / (HEALTHY_GBPS * 0.45 * 1e3)),)
    ]
    devices = [
        RailDevices(r, {h: f"{device(r)}:1" for h in hosts}, {}, {h: f"{device(r)}:1" for h in hosts})
        for r in range(rails)
    ]
    defects = tuple(_link_defect(hosts, node, rail, times) for node, rail in sorted(slow))
    written = RailsDoc(
        nodes=hosts,
        transients=(
            Transient(node=transient[0], peer=transient[1], rail=6, samples_Gbps=(110.0,), confirm_Gbps=(381.0,)),
        ),
    )
    return RailsOutcome(
        written=written,
        rails=rails,
        rail_results=results,
        pair_times=times,
        devices=devices,
        defects=defects,
        expected=dict.fromkeys(range(rails), LINE_GBPS),
    )


def _link_defect(hosts: tuple[str, ...], node: int, rail: int, times: list[PairTime]) -> RailDefect:
    """The link defect the judge names for a slow HCA, as the conviction step builds it."""
    peers = sorted({t.peer for t in times if t.node == node and t.rail == rail})
    name = hosts[node]
    measured = round(HEALTHY_GBPS * 0.45, 2)
    evidence = ["-".join(sorted((name, hosts[p]))) + f"/rail{rail}" for p in peers][:64]
    said = {
        "kind": "link",
        "node": name,
        "rail": rail,
        "device": device(rail),
        "measured_Gbps": measured,
        "expected_Gbps": LINE_GBPS,
        "basis": "line rate",
        "symptom": "slow",
        "slow_pairs": len(peers),
        "pairs": len(peers),
        "slow_samples": len(peers),
        "samples": len(peers),
        "spread": 0.02,
        "evidence": evidence,
        "samples_Gbps": {cell: [measured] for cell in evidence},
        "action": f"check the HCA and the switch port of {name} {device(rail)}",
        "severity": "fail",
    }
    return codec.decode(RailDefect, said, "bench: ")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_stage(run_dir: Path, nodes: int, rails: int, unit: int, kind: str, cross_rounds: int) -> int:
    """The finish step's writing, in this process: built, then timed."""
    t0 = time.perf_counter()
    outcome = outcome_of(nodes, rails, unit, kind, cross_rounds)
    built = time.perf_counter() - t0
    before = peak_rss_mib()
    print(f"outcome: {len(outcome.pair_times):,} pair directions, built in {built:.1f} s, peak RSS {before:.0f} MiB")
    writer = ResultsWriter(run_dir / "results.csv")
    t0, cpu0 = time.perf_counter(), time.process_time()
    hosts = outcome.nodes
    units = [hosts[start : start + unit] for start in range(0, len(hosts), unit)]
    write_outputs(outcome, run_dir, writer, ITERS, PASS_FRACTION, units)
    writer.close()
    took, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    after = peak_rss_mib()
    print(
        f"finish step's writing: {took:.1f} s wall, {cpu:.1f} s CPU, "
        f"peak RSS {after:.0f} MiB (+{after - before:.0f} MiB)"
    )
    for name in ("rails.json", "results.csv"):
        print(f"  {name:<12} {(run_dir / name).stat().st_size / 1024 / 1024:9.1f} MiB")
    return 0


def report_stage(run_dir: Path) -> tuple[float, int]:
    """``railbench report`` on ``run_dir``: its wall seconds and the largest spec (bytes); printed."""
    # the report in a process of its own that says its own peak RSS (RUSAGE_CHILDREN would hold the writer's)
    said_rss = (
        "import resource, sys; use = resource.getrusage(resource.RUSAGE_SELF); "
        "sys.stderr.write(f'cpu {use.ru_utime + use.ru_stime} maxrss {use.ru_maxrss}')"
    )
    code = f"import sys; from bench.cli import main; rc = main(); {said_rss}; sys.exit(rc)"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, "report", str(run_dir)], env=rank_env(), capture_output=True, text=True
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout[-3000:] + proc.stderr[-3000:])
        return elapsed, -1
    peak = int(proc.stderr.rpartition("maxrss ")[2] or 0) / 1024
    cpu = float(proc.stderr.rpartition("cpu ")[2].split()[0])
    verdict = "ok" if elapsed <= TIME_LIMIT_S else "SLOW"
    print(
        f"railbench report: {elapsed:.1f} s wall (target <= {TIME_LIMIT_S:.0f} s) -> {verdict}; "
        f"{cpu:.1f} s CPU, peak RSS {peak:.0f} MiB"
    )
    worst = print_spec_sizes(run_dir, 52)
    return elapsed, worst


def measure(root: Path, args: argparse.Namespace) -> int:
    hosts = hosts_of(args.nodes)
    model = ClusterModel(
        hosts=hosts, bad=(hosts[faults(hosts)[0][0]], 3), cluster=f"bench-{args.nodes}", intra_node=False
    )
    t0 = time.perf_counter()
    run_dir = write_run_dir(root / "run", model, rows=results_rows(model, node_pairs=False), rails=False, trend=False)
    print(f"run dir: {run_dir} (base files in {time.perf_counter() - t0:.1f} s); load average {os.getloadavg()[0]:.1f}")
    stage = [sys.executable, __file__, "--write-only", str(run_dir), "--nodes", str(args.nodes)]
    stage += ["--rails", str(args.rails), "--unit", str(args.unit), "--schedule", args.schedule]
    stage += ["--cross-rounds", str(args.cross_rounds)]
    done = subprocess.run(stage, env=rank_env(), check=False)
    if done.returncode != 0:
        return 1
    elapsed, worst = report_stage(run_dir)
    return 0 if 0 <= worst < SPEC_LIMIT_BYTES and elapsed <= TIME_LIMIT_S else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1024)
    parser.add_argument("--rails", type=int, default=8)
    parser.add_argument("--unit", type=int, default=32, help="nodes per unit (leaf)")
    parser.add_argument("--schedule", choices=("units", "full"), default="units")
    parser.add_argument("--cross-rounds", type=int, default=64, help="cross-unit rounds of the units schedule")
    parser.add_argument("--keep", type=Path, help="build the run directory here and keep it")
    parser.add_argument("--write-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tiny", action="store_true", help="8 nodes in units of 4: the same code in seconds (CI)")
    args = parser.parse_args()
    if args.tiny:
        args.nodes, args.unit, args.cross_rounds = 8, 4, 2
    if args.write_only:
        return write_stage(args.write_only, args.nodes, args.rails, args.unit, args.schedule, args.cross_rounds)
    if args.keep:
        status = measure(args.keep, args)
    else:
        with tempfile.TemporaryDirectory(prefix="railbench-bench-report-scale-") as scratch:
            status = measure(Path(scratch), args)
    return 0 if args.tiny else status  # a tiny run's time says nothing of the target


if __name__ == "__main__":
    raise SystemExit(main())
