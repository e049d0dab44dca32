"""How often ``railbench rails`` names exactly the broken part, and how often it accuses a healthy one.

Builds the network-namespace cluster (``tests/support/testbeds/netns_testbed.py``) in the shape asked for, runs
``rails`` ``--repeats`` times with no fault and once per fault kind, and prints a confusion table (injected kind x
named kinds), the exact-match rate, false alarms per clean run, the wall time of every run, and for shaped
links the rate railbench named beside the token bucket's rate. Root only (namespaces, tc, cgroups).

Faults (only tbf, htb, pfifo and bfifo exist on this kernel, so no netem):

* ``shaped-link``: a token bucket on one node's cable on one rail; ``shaped-rail``: on every node's rail k;
  ``shaped-node``: on every rail of one node; ``two-links``: two links on different nodes and rails;
* ``dead-link``: the node's rail interface down (``ip link set down``);
* ``dead-and-slow``: issue 20's hidden case: the first node's rail 0 down and the fourth node's rail 1 shaped
  (two rails and four nodes at least): a dead link must not hide the slow one, both are named;
* ``flaky-link``: the token bucket switched on and off (``FLAKY_ON_S``, ``FLAKY_OFF_S``) during the run;
  ``half-flaky-link`` the same, shaped half of the time (``FLAKY_ON_S`` on, as long off);
* ``lossy-link``: a token bucket at a high rate with a queue of a few KiB, which drops packets (TCP then
  retransmits, and the link crawls);
* ``slow-rank``: one rank's CPU capped through the cpu cgroup (v1 ``cpu.cfs_quota_us``): its rail's pairs
  with that node slow, a link as the rails test sees it; skipped with a note where no cpu cgroup exists.

With ``--units U`` the testbed has a switch layer (U units, a leaf bridge per rail per unit, a spine bridge per
rail, veth uplinks) and every run is made twice, with the cabling (``rails --topology``) and without it:

* ``shaped-uplink``: a token bucket on both ends of the first unit's uplink on the last rail: with the cabling,
  the uplinks between the two units' leaves of that rail (two units: either leaf's uplink carries every slow
  flow); without it, the slow pairs between the units, each a pair (a switch path), no link guessed;
* ``shaped-leaf``: every port of the last unit's rail-0 leaf shaped: with the cabling, that leaf; without it,
  the rail-0 links of that unit's nodes (the rail of a unit);
* ``shaped-link``: with the cabling a cable, with its leaf port.

    python ci/diagnosis_campaign.py --nodes 5 --rails 2 --pair-bytes 16M --iters 5 --repeats 3 [--load 2]
    python ci/diagnosis_campaign.py --nodes 5 --rails 3 --kinds dead-and-slow --repeats 1 --rounds 3 --load 2
    python ci/diagnosis_campaign.py --nodes 6 --rails 2 --units 2 --pair-bytes 4M --iters 3 --repeats 2
    python ci/diagnosis_campaign.py --tiny   # one shaped-link run on 2 nodes x 1 rail: the code path (CI)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pytest  # noqa: E402  (the testbed refuses through pytest.skip where it cannot build)

from tests.support.rails_pairs import pair_directions  # noqa: E402
from tests.support.testbeds.netns_testbed import PROFILE, NetnsCluster, build_cluster, rail_address  # noqa: E402

SHAPED_MBIT = 150
"""The token rate of a shaped link: 2-5% of a healthy veth pair on a busy 2-core machine."""
FLAKY_ON_S, FLAKY_OFF_S = 2.0, 0.5
"""A flaky link is shaped for FLAKY_ON_S, then clean for FLAKY_OFF_S, over and over: bad in most rounds,
good in some, so some of its partners' cells are fine (not every partner is a suspect) and some
re-measurements too."""
LOSSY = ["rate", "2gbit", "burst", "16kb", "limit", "16kb"]
"""A queue of 4 KiB behind a 2 Gbit/s bucket: bursts overflow it and are dropped."""
CPU_PERIOD_US, CPU_QUOTA_US = 50_000, 1_000
"""2% of the CPU for the slowed rank, in 1 ms (the smallest quota) of every 50 ms: evenly slow, like a slow GPU, and
slow enough beside a busy machine's healthy pairs. The quota bounds what the rank moves when nothing else wants the
CPU: about 1-3 Gb/s on 16 MiB cells at 1 of 20 ms (a receive buffer drained per slice), while a loaded run's healthy
pairs read 5-10 Gb/s and down to half that in a clean run, so its pairs came within the noise of them (a CI run named
nothing, its two pairs transients). At 1 of 50 ms they read 0.02-0.13 of their rail's median beside 3 busy loops in
two runs, and 0.03-0.08 but for one re-measurement at 0.25 in a third (at 1 of 20 ms 0.04-0.27, while a clean run's
pairs went down to 0.44), for about 20 s more per run; at 1 of 100 ms at most 0.06 on an idle machine, but the run
took 115 s instead of 25. A quota of 5 ms in 100 ms is worse than both: a short cell either fits in the rank's
slice or waits the period out, and the rank reads slow with some partners and healthy with others, a flaky link,
not a slow one."""
CPU_SHARES = 128
"""The slowed rank's weight (``cpu.shares``) beside the scheduler's 1024 for every other group of processes: an
eighth of its peers' CPU when the machine is busy. The quota alone caps only an idle machine's rank: beside a loaded
suite every rank got about a tenth of a core (many groups of processes sharing 2 cores), the capped rank a little
under it, and its pairs read half its peers' rate, a healthy link (3 node x 2 rail runs, busy loops in 12 sessions
of their own: 0 of 2 named; peers 1.5-4.4 Gb/s, its pairs 0.9-1.5)."""
CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
CATCH_S = 0.02
"""How often ``throttled`` looks for the rank on its rail: a few reads of /proc, against seconds of rail steps."""

Named = tuple[str, str | None, int | None]


class NoCpuCgroup(Exception):
    """This kernel has no cpu cgroup to slow a rank with: the slow-rank run is skipped, with a note."""


@dataclass
class Run:
    kind: str
    expected: list[Named]
    named: list[Named] = field(default_factory=list)
    transients: int = 0
    wall_s: float = 0.0
    rc: int = 0
    rates: list[tuple[float, float]] = field(default_factory=list)
    """(named Gb/s, token Gb/s) per shaped link named."""
    cells: list[str] = field(default_factory=list)
    """Each expected link's pair cells beside its rail's other cells (``link_cells``)."""
    note: str = ""

    @property
    def exact(self) -> bool:
        return sorted(self.named, key=str) == sorted(self.expected, key=str)


def tc(bed: NetnsCluster, node: str, rail: int, spec: list[str]) -> None:
    """The same qdisc on both ends of node's rail cable."""
    for ns, dev in ((bed.namespace(node), f"rail{rail}"), (bed.switch, bed.peer(node, rail))):
        subprocess.run(
            ["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root", "tbf", *spec],
            check=True,
            capture_output=True,
            timeout=30,
        )


def unshape(bed: NetnsCluster, node: str, rail: int) -> None:
    for ns, dev in ((bed.namespace(node), f"rail{rail}"), (bed.switch, bed.peer(node, rail))):
        subprocess.run(
            ["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"],
            check=False,
            capture_output=True,
            timeout=30,
        )


@contextlib.contextmanager
def flapping(
    bed: NetnsCluster, node: str, rail: int, on_s: float = FLAKY_ON_S, off_s: float = FLAKY_OFF_S
) -> Iterator[None]:
    """Shaping on for ``on_s`` and off for ``off_s`` until the block ends."""
    stop = threading.Event()

    def loop() -> None:
        on = True
        while not stop.is_set():
            if on:
                bed.shape(node, rail, SHAPED_MBIT)
            else:
                unshape(bed, node, rail)
            stop.wait(on_s if on else off_s)
            on = not on

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join()


def _namespace_pids(bed: NetnsCluster, node: str) -> list[int]:
    """The processes in node's network namespace, read from /proc (no child process: see ``throttled``)."""
    wanted = os.stat(f"/run/netns/{bed.namespace(node)}").st_ino
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry.name}/ns/net").st_ino == wanted:
                    pids.append(int(entry.name))
    return pids


def _rank_pid(bed: NetnsCluster, node: str, local_rank: int) -> int | None:
    """The rank process with this local rank in node's namespace, once it exists."""
    for pid in _namespace_pids(bed, node):
        with contextlib.suppress(OSError):
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"bench" in cmdline and f"OMPI_COMM_WORLD_LOCAL_RANK={local_rank}".encode() in environ:
                return pid
    return None


_RAIL_STATES = {"01", "0A"}
"""ESTABLISHED and LISTEN in /proc/net/tcp: a rank listens on its rail before its rail group connects."""


def _on_its_rail(bed: NetnsCluster, node: str, pid: int, rail: int) -> bool:
    """Whether the process has a TCP socket on its node's address on ``rail`` (its rail group forming).

    Read from the process's own /proc (its namespace's TCP table and its descriptors), not from ``ss``: under a
    loaded machine a child process per poll took longer than the rank took to reach its first pair round.
    """
    address = rail_address(rail, bed.nodes.index(node) + 1)
    # /proc/net/tcp prints the address as the kernel's 32-bit word in host byte order.
    wanted = int.from_bytes(socket.inet_aton(address), "big").to_bytes(4, sys.byteorder).hex().upper()
    inodes = set()
    for fd in os.scandir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(fd.path)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if local.split(":")[0] == wanted and state in _RAIL_STATES and inode in inodes:
            return True
    return False


@contextlib.contextmanager
def throttled(bed: NetnsCluster, node: str, local_rank: int) -> Iterator[None]:
    """Move one rank into a cpu cgroup with a small quota and a small weight once its rail group is forming.

    Not from its start: a slow GPU or a starved rank does not slow Python's imports, and a rank capped
    from the start spends minutes importing torch, which is the campaign's cost, not a measurement. But before
    its first pair round: a rank capped halfway through the matrix is slow with some partners only, a pair fault
    and not the slow link the run must name. Its rail group is formed, then every rail is measured at once and each
    alone before the pairs, so the catch has those steps' time; it polls every ``CATCH_S`` and reads /proc only.
    """
    if not (CGROUP_CPU / "cpu.cfs_quota_us").is_file():
        raise NoCpuCgroup(f"no cpu cgroup (v1) at {CGROUP_CPU}")
    group = CGROUP_CPU / f"rbcampaign{os.getpid()}"
    group.mkdir(exist_ok=True)
    try:
        (group / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(CPU_QUOTA_US))
        (group / "cpu.shares").write_text(str(CPU_SHARES))
    except OSError:
        group.rmdir()
        raise
    stop = threading.Event()
    began = time.monotonic()
    caught: list[str] = []

    def catch() -> None:
        pid = None
        while not stop.is_set():
            with contextlib.suppress(OSError):
                pid = pid or _rank_pid(bed, node, local_rank)
                if pid is not None and _on_its_rail(bed, node, pid, local_rank):
                    (group / "cgroup.procs").write_text(str(pid))
                    caught.append(f"rank pid {pid} capped {time.monotonic() - began:.1f} s after the launch")
                    return
            stop.wait(CATCH_S)

    worker = threading.Thread(target=catch, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join()
        throttling = _throttling(group)
        _remove_group(group)
        # Said either way, so that a slow-rank run that named nothing tells a missed catch from a missed verdict,
        # and a cap that never bit (no period throttled) from a rank slow and still not named.
        print(f"# slow-rank: {caught[0] if caught else 'the rank was never capped'}; {throttling}", flush=True)


def _throttling(group: Path) -> str:
    """How often the cap held the rank back (the group's ``cpu.stat``)."""
    try:
        stat = dict(line.split() for line in (group / "cpu.stat").read_text().splitlines() if line.strip())
    except (OSError, ValueError):
        return "no cpu.stat"
    periods, throttled = int(stat.get("nr_periods", 0)), int(stat.get("nr_throttled", 0))
    return f"throttled in {throttled} of {periods} periods, {int(stat.get('throttled_time', 0)) / 1e9:.1f} s"


def _remove_group(group: Path) -> None:
    """Move what is left in the group back to the root and remove it. An exited rank stays listed until it is
    reaped, and moving it fails: each pid is moved on its own, and the removal is retried for a few seconds."""
    for _ in range(50):
        with contextlib.suppress(OSError):
            for pid in (group / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (CGROUP_CPU / "cgroup.procs").write_text(pid)
            group.rmdir()
            return
        time.sleep(0.1)


Inject = Callable[[], contextlib.AbstractContextManager[None]]


def static(*steps: Callable[[], None]) -> Inject:
    """A fault set up once before the run (each step in turn) and cleared after it by ``run_one``."""

    @contextlib.contextmanager
    def ctx() -> Iterator[None]:
        for step in steps:
            step()
        yield

    return ctx


def switch_scenarios(bed: NetnsCluster) -> dict[str, tuple[list[Named], list[Named], Inject]]:
    """Switch-layer fault kind -> (named without the cabling, named with it, a context that injects it)."""
    rails, last_unit = bed.rails, bed.units - 1
    r1 = rails - 1
    first, last = bed.unit_nodes(0), bed.unit_nodes(last_unit)
    mid = first[len(first) // 2]

    between = "+".join(sorted(f"leaf-u{u + 1}-r{r1}" for u in (0, 1)))
    uplink_with: list[Named] = [("uplink", between if bed.units == 2 else f"leaf-u1-r{r1}", r1)]
    pairs: list[Named] = [("pair", a, r1) for a in first for b in bed.nodes if bed.unit_of(b) != 0]
    return {
        "shaped-uplink": (pairs, uplink_with, static(lambda: bed.shape_uplink(0, r1, SHAPED_MBIT))),
        "shaped-leaf": (
            [("link", n, 0) for n in last],
            [("leaf", f"leaf-u{last_unit + 1}-r0", 0)],
            static(lambda: bed.shape_leaf(last_unit, 0, SHAPED_MBIT)),
        ),
        "shaped-link": ([("link", mid, r1)], [("cable", mid, r1)], static(lambda: bed.shape(mid, r1, SHAPED_MBIT))),
    }


def scenarios(bed: NetnsCluster) -> dict[str, tuple[list[Named], Inject]]:
    """Fault kind -> (what should be named, a context that injects it for the run)."""
    nodes, rails = bed.nodes, bed.rails
    mid, last = nodes[len(nodes) // 2], nodes[-1]
    r1 = rails - 1

    out: dict[str, tuple[list[Named], Inject]] = {
        "shaped-link": ([("link", mid, r1)], static(lambda: bed.shape(mid, r1, SHAPED_MBIT))),
        "shaped-rail": ([("rail", None, 0)], static(*(partial(bed.shape, n, 0, SHAPED_MBIT) for n in nodes))),
        "dead-link": ([("link", last, 0)], static(lambda: bed.link_down(last, 0))),
        "flaky-link": ([("link", mid, 0)], lambda: flapping(bed, mid, 0)),
        # Shaped half of the time (2 s on, 2 s off): the at-scale rules must not blind the small case to it.
        "half-flaky-link": ([("link", mid, 0)], lambda: flapping(bed, mid, 0, FLAKY_ON_S, FLAKY_ON_S)),
        "lossy-link": ([("link", nodes[0], r1)], static(lambda: tc(bed, nodes[0], r1, LOSSY))),
        "slow-rank": ([("link", nodes[1], 0)], lambda: throttled(bed, nodes[1], 0)),
    }
    if rails >= 2:
        out["shaped-node"] = (
            [("node", mid, None)],
            static(*(partial(bed.shape, mid, k, SHAPED_MBIT) for k in range(rails))),
        )
        out["two-links"] = (
            [("link", nodes[0], 0), ("link", last, r1)],
            static(partial(bed.shape, nodes[0], 0, SHAPED_MBIT), partial(bed.shape, last, r1, SHAPED_MBIT)),
        )
    if rails >= 2 and len(nodes) >= 4:
        out["dead-and-slow"] = (
            [("link", nodes[0], 0), ("link", nodes[3], 1)],
            static(partial(bed.link_down, nodes[0], 0), partial(bed.shape, nodes[3], 1, SHAPED_MBIT)),
        )
    return out


def rails_run(
    bed: NetnsCluster, out: Path, args: argparse.Namespace, more: tuple[str, ...] = ()
) -> tuple[int, dict, float]:
    argv = [
        sys.executable,
        "-m",
        "bench",
        "rails",
        "--profile",
        str(bed.workdir / "netns.toml"),
        "--out",
        str(out),
        "--no-history",
        "--timeout",
        str(args.timeout),
        "--pair-bytes",
        args.pair_bytes,
        "--iters",
        str(args.iters),
        "--seed",
        str(args.seed),
        *more,
        *args.extra,
    ]
    began = time.monotonic()
    done = bed.run(bed.rails, argv, timeout=args.run_timeout)
    wall = time.monotonic() - began
    doc = json.loads((out / "rails.json").read_text()) if (out / "rails.json").is_file() else {}
    if not doc:
        print(done.stdout[-2000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
    return done.returncode, doc, wall


def run_one(
    bed: NetnsCluster,
    kind: str,
    expected: list[Named],
    inject: Inject,
    root: Path,
    args: argparse.Namespace,
    more: tuple[str, ...] = (),
) -> Run:
    bed.clear_faults()
    run = Run(kind, expected)
    try:
        with inject():
            name = kind.replace(" ", "-")
            run.rc, doc, run.wall_s = rails_run(bed, root / f"{name}-{len(list(root.iterdir()))}", args, more)
    except NoCpuCgroup as exc:
        run.note = f"skipped: {exc}"
        return run
    finally:
        bed.clear_faults()
    run.named = [
        (d["kind"], d["node"] or "+".join(sorted(d.get("switches") or [])) or None, d["rail"])
        for d in doc.get("defects", [])
    ]
    run.transients = len(doc.get("transients", []))
    if kind in ("shaped-link", "two-links", "dead-and-slow"):
        run.rates = [
            (d["measured_Gbps"], SHAPED_MBIT / 1000)
            for d in doc.get("defects", [])
            if d["kind"] == "link" and d["symptom"] != "dead"
        ]
    if doc.get("too_noisy"):
        run.note = doc["too_noisy"]
    run.cells = [link_cells(doc, node, rail) for kind_, node, rail in expected if kind_ == "link" and node is not None]
    return run


def link_cells(doc: dict, node: str, rail: int | None) -> str:
    """The link's pair cells (matrix and re-measured) over its rail's median matrix cell, beside the range of the
    rail's other matrix cells: what a missed or a wrong verdict was judged from."""
    on_rail = [m for m in pair_directions(doc) if m["rail"] == rail]
    rest = sorted(m["busbw_Gbps"] for m in on_rail if node not in (m["node"], m["peer"]) and not m["confirm"])
    mine = [m for m in on_rail if node in (m["node"], m["peer"])]
    if not rest or not mine:
        return f"link {node}/{rail}: too few pair cells to compare"
    median = rest[len(rest) // 2]
    said = " ".join(f"{m['busbw_Gbps'] / median:.2f}" + ("*" if m["confirm"] else "") for m in mine)
    return (
        f"link {node}/{rail}'s cells / rail {rail}'s median {median:.2f} Gb/s: {said} (* re-measured); "
        f"the rail's other cells {rest[0] / median:.2f}-{rest[-1] / median:.2f}"
    )


def _named_kind(run: Run) -> str:
    counts: dict[str, int] = {}
    for k, _, _ in run.named:
        counts[k] = counts.get(k, 0) + 1
    return "+".join(f"{n if n > 1 else ''}{k}" for k, n in sorted(counts.items())) or "none"


def report(runs: list[Run]) -> None:
    judged = [r for r in runs if not r.note.startswith("skipped")]
    print("\n# runs")
    print(f"# {'injected':<26} {'rc':>3} {'wall s':>7} {'exact':>5} {'transients':>10}  named")
    for r in runs:
        named = ", ".join(f"{k} {n or '*'}/{'*' if rail is None else rail}" for k, n, rail in r.named) or "-"
        print(f"  {r.kind:<26} {r.rc:>3} {r.wall_s:>7.1f} {r.exact!s:>5} {r.transients:>10}  {named} {r.note}")
    kinds = sorted({r.kind for r in judged})
    columns = sorted({_named_kind(r) for r in judged})
    print("\n# confusion (injected kind x named kinds, runs)")
    print(f"  {'':<26} " + " ".join(f"{c:>10}" for c in columns))
    for kind in kinds:
        counts = [sum(1 for r in judged if r.kind == kind and _named_kind(r) == c) for c in columns]
        print(f"  {kind:<26} " + " ".join(f"{n:>10}" for n in counts))
    exact = sum(r.exact for r in judged)
    clean = [r for r in judged if r.kind.startswith("clean")]
    alarms = sum(len(r.named) for r in clean)
    print(f"\n# exact match: {exact}/{len(judged)} = {100 * exact / max(1, len(judged)):.0f}%")
    print(f"# false alarms per clean run: {alarms / max(1, len(clean)):.2f} ({alarms} in {len(clean)} runs)")
    for kind in kinds:
        walls = [r.wall_s for r in judged if r.kind == kind]
        print(f"# wall time {kind}: " + ", ".join(f"{w:.1f}" for w in walls) + " s")
    for r in judged:
        for rate, token in r.rates:
            off = 100 * (rate - token) / token
            print(f"# {r.kind}: named {rate:.3f} Gb/s vs token rate {token:.3f} Gb/s ({off:+.0f}%)")
    for r in judged:
        for line in r.cells:
            print(f"# {r.kind}: {line}")
    for r in runs:
        if r.note.startswith("skipped"):
            print(f"# {r.kind} {r.note}")


@contextlib.contextmanager
def cpu_load(workers: int) -> Iterator[None]:
    """``workers`` busy loops (a stress-like background load), ended by their ids.

    Each in a session of its own: the kernel shares the CPUs between sessions first (``sched_autogroup``), and
    the testbed's ranks run in their nodes' own sessions (Open MPI's daemons start them), so busy loops in the
    campaign's one session took at most a share and left the ranks near their idle rate (peers at 8-9 Gb/s with
    20 loops). In sessions of their own, 12 loops slowed the ranks as the whole suite does (peers at 1.5-4 Gb/s)."""
    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) for _ in range(workers)
    ]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--rails", type=int, default=2)
    parser.add_argument("--pair-bytes", default="16M")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="clean runs")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each fault kind")
    parser.add_argument("--kinds", default="all", help="comma-separated fault kinds (default: every one)")
    parser.add_argument("--load", type=int, default=0, help="background busy-loop processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=int, default=120, help="rails --timeout")
    parser.add_argument("--run-timeout", type=int, default=600, help="seconds before a run counts as a hang")
    parser.add_argument("--json", type=Path, help="also write every run here")
    parser.add_argument("--keep", type=Path, help="keep every run's rails output under this directory")
    parser.add_argument("--units", type=int, default=1, help="scalable units of a switch layer (2 or more)")
    parser.add_argument("--tiny", action="store_true", help="one shaped-link run on 2 nodes x 1 rail, 1M pairs")
    parser.add_argument("extra", nargs="*", help="more rails flags, after --")
    args = parser.parse_args()
    # SIGTERM (a CI runner's, a kill) ends the campaign as Ctrl-C does: through its context managers, which end the
    # busy loops (each in a session of its own), the ranks and the namespaces, and free the cgroup.
    signal.signal(signal.SIGTERM, _terminated)
    if args.tiny:
        args.nodes, args.rails, args.units, args.pair_bytes, args.iters = 2, 1, 1, "1M", 2
        args.repeats, args.rounds, args.kinds, args.timeout, args.run_timeout = 0, 1, "shaped-link", 60, 240
    try:
        status = campaign(args)
    except pytest.skip.Exception as exc:  # the testbed's own refusal: not root, no ip/tc
        print(f"skipped: {exc.msg}")
        return 0 if args.tiny else 2
    return 0 if args.tiny else status  # tiny: the code ran; one run of two nodes makes no rate


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def campaign(args: argparse.Namespace) -> int:
    runs: list[Run] = []
    with (
        tempfile.TemporaryDirectory(prefix="rbcampaign") as tmp,
        build_cluster(args.nodes, args.rails, args.units) as bed,
    ):
        root = Path(tmp)
        if args.keep:
            root = args.keep
            root.mkdir(parents=True, exist_ok=True)
        (bed.workdir / "netns.toml").write_text(PROFILE)
        if args.units > 1:
            runs = switch_campaign(bed, root, args)
            return finish(runs, args)
        faults = scenarios(bed)
        wanted = list(faults) if args.kinds == "all" else [k for k in args.kinds.split(",") if k != "clean"]
        with cpu_load(args.load):
            for _ in range(args.repeats):
                runs.append(run_one(bed, "clean", [], contextlib.nullcontext, root, args))
                print(f"# clean: {runs[-1].named} in {runs[-1].wall_s:.1f} s", flush=True)
            for kind in [k for _ in range(args.rounds) for k in wanted]:
                expected, inject = faults[kind]
                runs.append(run_one(bed, kind, expected, inject, root, args))
                print(f"# {kind}: {runs[-1].named} in {runs[-1].wall_s:.1f} s {runs[-1].note}", flush=True)
    return finish(runs, args)


def switch_campaign(bed: NetnsCluster, root: Path, args: argparse.Namespace) -> list[Run]:
    """Clean runs and the switch-layer faults, each with the cabling and without it."""
    topology = bed.workdir / "topology.toml"
    topology.write_text(bed.topology_toml())
    faults = switch_scenarios(bed)
    wanted = list(faults) if args.kinds == "all" else [k for k in args.kinds.split(",") if k != "clean"]
    modes: tuple[tuple[str, tuple[str, ...]], ...] = (("with topology", ("--topology", str(topology))), ("without", ()))
    runs: list[Run] = []
    with cpu_load(args.load):
        for _ in range(args.repeats):
            for label, more in modes:
                runs.append(run_one(bed, f"clean {label}", [], contextlib.nullcontext, root, args, more))
                print(f"# clean {label}: {runs[-1].named} in {runs[-1].wall_s:.1f} s", flush=True)
        for kind in wanted:
            without, with_topology, inject = faults[kind]
            for (label, more), expected in zip(modes, (with_topology, without), strict=True):
                runs.append(run_one(bed, f"{kind} {label}", expected, inject, root, args, more))
                print(f"# {kind} {label}: {runs[-1].named} in {runs[-1].wall_s:.1f} s {runs[-1].note}", flush=True)
    return runs


def finish(runs: list[Run], args: argparse.Namespace) -> int:
    units = f" in {args.units} units" if args.units > 1 else ""
    print(
        f"# {args.nodes} nodes x {args.rails} rails{units}, {args.pair_bytes} pairs, {args.iters} iters, "
        f"load {args.load}"
    )
    report(runs)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ | {"exact": r.exact} for r in runs], indent=1))
    judged = [r for r in runs if not r.note.startswith("skipped")]
    return 0 if all(r.exact for r in judged) else 1


if __name__ == "__main__":
    raise SystemExit(main())
