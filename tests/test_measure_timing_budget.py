"""The cell budget of the one timing loop (``time_budgeted``), on a virtual clock priced by NCCL's own cost model.

Every call a test makes advances a virtual clock by what NCCL's tuning model says that call takes
(``tests/support/models/nccl_tuning.py``: the algorithm and protocol NCCL picks for its size, with tuning.cc's latencies
and bandwidths), and the host timer reads that clock (``bench.measure.device`` times host regions with
``time.perf_counter``, which the test points at the virtual clock). The barriers and agreements are real, in a
one-rank gloo world; what the one rank stands for is a rank of an n-node communicator of one GPU per node, whose
agreed times are its own. So the plan and the number reported are exact, whatever the machine's load, and a
"late" call (a scheduling hiccup, a completion seen late) can be put on any call of a cell.

The case that must hold (issue 28, item 4): a healthy 64-node rail all_reduce of 256 MiB at 400 Gb/s reads within
5% of its true busbw whichever of its probe calls is late, by anything up to 3 ms, whether its plan fits the
budget or not. In NCCL's model a 1-element all_reduce over 64 nodes runs tree LL (67 us), a 4 MiB chunk tree
LL128 (116 us of fixed cost, a third of the chunk) and the whole message tree LL128 at another rate: chunks cannot
say what the message takes, so such a cell is timed in whole messages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from bench.measure import device as device_ops
from bench.measure import timing
from bench.measure.budgeted import PROBE_SAMPLES, Chunked, time_budgeted
from bench.measure.collectives import get_collective
from bench.measure.size import chunk_counts
from bench.measure.timing import Budget, Loop, Timed
from bench.rails.plan.budget import cell_budget
from tests.support.models.nccl_tuning import busbw_Gbps, call_s, nccl_choice

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

MiB = 1 << 20
LINE_Gbps = 400.0
ITERS, WARMUP = 10, 2  # the rails test's defaults
LATE_S = (0.0, 0.1e-3, 0.2e-3, 0.4e-3, 0.8e-3, 1.6e-3, 3.0e-3)


@pytest.fixture(scope="module")
def one_rank_world() -> Iterator[None]:
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@dataclass
class Communicator:
    """A rank of an ``nranks``-node communicator whose calls take what NCCL's model prices them at, on a
    virtual clock; the call numbered ``late_call`` (from 0, in the order made) takes ``late_s`` longer."""

    collective: str
    nranks: int
    link_GBps: float = LINE_Gbps / 8
    late_call: int = -1
    late_s: float = 0.0
    now: float = 0.0
    calls: Counter[int] = field(default_factory=Counter)
    made: int = 0

    def perf_counter(self) -> float:
        return self.now

    def call(self, nbytes: int) -> Callable[[], None]:
        def step() -> None:
            self.now += call_s(self.collective, self.nranks, nbytes, self.link_GBps)
            self.now += self.late_s if self.made == self.late_call else 0.0
            self.made += 1
            self.calls[nbytes] += 1

        return step

    def true_busbw(self, nbytes: int) -> float:
        seconds = call_s(self.collective, self.nranks, nbytes, self.link_GBps)
        return busbw_Gbps(self.collective, self.nranks, nbytes, seconds)


@pytest.fixture
def virtual(monkeypatch: pytest.MonkeyPatch, one_rank_world: None) -> Callable[..., Communicator]:
    """A :class:`Communicator` whose clock the host timer reads."""

    def make(*args: Any, **kwargs: Any) -> Communicator:
        comm = Communicator(*args, **kwargs)
        monkeypatch.setattr(device_ops, "time", SimpleNamespace(perf_counter=comm.perf_counter))
        # A device clock registered earlier in this process (tests/support/models/async_backend.py registers its
        # stream's when imported, as a GPU backend would) takes precedence over perf_counter: this test's clock must
        # win.
        monkeypatch.setattr(device_ops, "_HOST_CLOCK", [])
        return comm

    return make


def _rail_budget(collective: str, nranks: int, nbytes: int) -> float:
    """The rails test's budget for a rail group's cell at the line rate (``bench.rails.rank``)."""
    wire = int(nbytes * max(1.0, get_collective(collective).busbw_factor(nranks)))
    return cell_budget(wire, WARMUP + ITERS, LINE_Gbps)


def _cell(comm: Communicator, nbytes: int, budget_s: Budget, chunks: int = 1) -> Timed:
    """One cell as the rails test times it, in whole messages or (``chunks`` > 1) with a chunk and half a chunk."""
    chunked = None
    if chunks > 1:
        chunked = Chunked(comm.call(nbytes // chunks), chunks, comm.call(nbytes // chunks // 2))
    return time_budgeted(
        comm.call(nbytes),
        Loop(ITERS, WARMUP, budget_s=budget_s),
        group=None,
        device=torch.device("cpu"),
        chunked=chunked,
    )


def test_the_model_prices_the_calls_as_nccl_picks_them() -> None:
    # The model's own ground: a tiny call runs tree LL, a 4 MiB chunk tree LL128 with 116 us of fixed cost, and
    # no chunk's rate is the message's.
    assert (nccl_choice("all_reduce", 64, 256).algorithm, nccl_choice("all_reduce", 64, 256).protocol) == ("tree", "LL")
    chunk = nccl_choice("all_reduce", 64, 4 * MiB)
    assert (chunk.protocol, round(chunk.latency_us, 1)) == ("LL128", 116.0)
    assert chunk.latency_us > 1.7 * nccl_choice("all_reduce", 64, 4).latency_us
    assert nccl_choice("all_reduce", 64, 256 * MiB).bandwidth_GBps > 1.2 * chunk.bandwidth_GBps
    # A healthy 400 Gb/s rail of 64 nodes: about 336 Gb/s of busbw at 256 MiB, below its line rate.
    assert 320 < busbw_Gbps("all_reduce", 64, 256 * MiB, call_s("all_reduce", 64, 256 * MiB)) < 360


def test_a_collective_over_more_than_two_ranks_is_never_chunked() -> None:
    all_reduce = get_collective("all_reduce")
    assert chunk_counts(all_reduce, 256 * MiB, 64, 4, 64) is None
    assert chunk_counts(all_reduce, 256 * MiB, 3, 4, 64) is None
    chunk, half = chunk_counts(all_reduce, 256 * MiB, 2, 4, 64) or (0, 0)
    assert (chunk * 4, half * 4) == (4 * MiB, 2 * MiB)
    assert chunk_counts(all_reduce, 256 * MiB, 2, 4, 1) is None


@pytest.mark.parametrize("late_s", LATE_S)
def test_a_healthy_64_node_rail_reads_its_true_busbw_whichever_call_is_late(
    virtual: Callable[..., Communicator], late_s: float
) -> None:
    nbytes = 256 * MiB
    budget = _rail_budget("all_reduce", 64, nbytes)
    # Late: the warm call, any of the probe's calls, or the first timed message.
    for late_call in range(PROBE_SAMPLES + 2):
        comm = virtual("all_reduce", 64, late_call=late_call, late_s=late_s)
        timed = _cell(comm, nbytes, budget)  # measure() gives 64 ranks no chunks
        read = busbw_Gbps("all_reduce", 64, nbytes, timed.time_us * 1e-6)
        assert abs(read / comm.true_busbw(nbytes) - 1) < 0.05, (late_call, late_s, read)
        assert not timed.stopped and timed.steps == ITERS
        assert set(comm.calls) == {nbytes}, "only whole messages are ever sent"


@pytest.mark.parametrize("late_s", LATE_S)
@pytest.mark.parametrize("chunks", [1, 64])
def test_a_64_node_rail_whose_plan_does_not_fit_times_whole_messages(
    virtual: Callable[..., Communicator], late_s: float, chunks: int
) -> None:
    # A budget of 50 ms fits the warm message and the probe's three, not the plan. Given chunks (as a caller
    # that still chunked would), their fixed cost, from a 4 MiB and a 2 MiB call, is most of a chunk's time
    # (LATENCY_SHARE): whole messages all the same.
    nbytes = 256 * MiB
    for late_call in range(PROBE_SAMPLES + (2 if chunks > 1 else 1)):
        comm = virtual("all_reduce", 64, late_call=late_call, late_s=late_s)
        timed = _cell(comm, nbytes, 0.05, chunks)
        read = busbw_Gbps("all_reduce", 64, nbytes, timed.time_us * 1e-6)
        assert abs(read / comm.true_busbw(nbytes) - 1) < 0.05, (late_call, late_s, read, comm.calls)
        assert timed.stopped
        assert comm.calls[nbytes] >= 2, "one untimed whole message and one timed, at least"
        if chunks > 1:
            assert comm.calls[nbytes // chunks] == 1 + PROBE_SAMPLES, "chunks only probed, never timed as the cell"


@pytest.mark.parametrize("late_s", LATE_S)
def test_chunks_and_a_smaller_call_off_their_cost_line_are_never_extrapolated(
    virtual: Callable[..., Communicator], late_s: float
) -> None:
    # A caller that planned a chunk's fixed cost from a 1-element call (tree LL, 67 us, where the 4 MiB chunk
    # pays 116 us on LL128): the two do not share a cost line (twice the small call is far under the chunk), so
    # the cell times whole messages, and reads the rail's true busbw.
    nbytes = 256 * MiB
    for late_call in range(2, 2 + 2 * PROBE_SAMPLES):
        comm = virtual("all_reduce", 64, late_call=late_call, late_s=late_s)
        chunked = Chunked(comm.call(4 * MiB), 64, comm.call(256))
        timed = time_budgeted(
            comm.call(nbytes),
            Loop(ITERS, WARMUP, budget_s=0.05),
            group=None,
            device=torch.device("cpu"),
            chunked=chunked,
        )
        read = busbw_Gbps("all_reduce", 64, nbytes, timed.time_us * 1e-6)
        assert abs(read / comm.true_busbw(nbytes) - 1) < 0.05, (late_call, late_s, read, comm.calls)
        assert comm.calls[4 * MiB] == 1 + PROBE_SAMPLES and comm.calls[nbytes] >= 2


def test_a_dead_slow_two_rank_link_moves_chunks_within_its_budget(virtual: Callable[..., Communicator]) -> None:
    # A 2-node rail at 1% of its rate: a whole message takes about 0.54 s, the budget 0.5 s. Its chunks are
    # almost all bytes, so they are timed, and no whole message crosses the link.
    nbytes = 256 * MiB
    comm = virtual("all_reduce", 2, link_GBps=0.5)
    budget = _rail_budget("all_reduce", 2, nbytes)
    timed = _cell(comm, nbytes, budget, chunks=64)
    assert comm.calls[nbytes] == 0
    assert timed.stopped
    assert abs(timed.time_us * 1e-6 / call_s("all_reduce", 2, nbytes, 0.5) - 1) < 0.05
    warm = call_s("all_reduce", 2, nbytes // 64, 0.5) + call_s("all_reduce", 2, nbytes // 128, 0.5)
    assert comm.now <= budget + warm


def test_a_late_chunk_probe_neither_stops_a_healthy_pair_nor_moves_its_budget(
    virtual: Callable[..., Communicator],
) -> None:
    nbytes = 256 * MiB
    planned: list[float] = []

    def budget(whole_s: float) -> float:
        planned.append(whole_s)
        return _rail_budget("all_reduce", 2, nbytes)

    for late_s in (0.0, 3e-3):
        comm = virtual("all_reduce", 2, late_call=4, late_s=late_s)
        timed = _cell(comm, nbytes, budget, chunks=64)
        assert not timed.stopped and timed.steps == ITERS
        assert comm.calls[nbytes] == ITERS + WARMUP - 1, "the plan fits: whole messages, as usual"
        read = busbw_Gbps("all_reduce", 2, nbytes, timed.time_us * 1e-6)
        assert abs(read / comm.true_busbw(nbytes) - 1) < 0.01
    # The probe is a median: one late call does not move the plan.
    assert planned[0] == pytest.approx(planned[1], rel=1e-9)


@pytest.mark.parametrize(
    ("nranks", "link_GBps", "budget_s", "chunks"),
    [
        (64, 50.0, 0.6, 1),  # fits
        (64, 50.0, 0.05, 1),  # some whole messages
        (64, 0.5, 0.5, 1),  # not one more: the probe is the measurement
        (2, 50.0, 0.5, 64),  # fits
        (2, 0.5, 0.5, 64),  # chunks
        (64, 50.0, 0.05, 64),  # chunks mostly fixed cost: whole messages
    ],
)
def test_every_branch_meets_the_same_barriers(
    virtual: Callable[..., Communicator],
    monkeypatch: pytest.MonkeyPatch,
    nranks: int,
    link_GBps: float,
    budget_s: float,
    chunks: int,
) -> None:
    # Pairs of one rail share its group and plan differently: every branch must meet the group's barriers
    # equally often, or one pair's plan hangs the others.
    barriers = []
    real = dist.barrier
    monkeypatch.setattr(dist, "barrier", lambda *a, **k: barriers.append(1) or real(*a, **k))
    _cell(virtual("all_reduce", nranks, link_GBps=link_GBps), 256 * MiB, budget_s, chunks)
    assert len(barriers) == (3 if chunks > 1 else 2)


def test_the_timer_really_reads_the_virtual_clock(virtual: Callable[..., Communicator]) -> None:
    comm = virtual("all_reduce", 64)
    seconds = timing.time_region(comm.call(256 * MiB), group=None, device=torch.device("cpu"), iters=4, warmup=0)
    assert seconds == pytest.approx(call_s("all_reduce", 64, 256 * MiB) * 1e6)


def test_a_budgeted_loop_is_never_captured_in_a_graph() -> None:
    # A budgeted loop times its steps eagerly: a Loop asking for both would have one of them silently ignored.
    with pytest.raises(ValueError, match="graph and budget_s"):
        Loop(ITERS, WARMUP, graph=True, budget_s=1.0)
    assert Loop(ITERS, WARMUP, graph=True).budget_s is None
