"""Issue 28 item 6 and issue 33 item 11: the acceptance plan is a range, prices what a run at scale pays, and
learns from the cluster's own runs.

The plan's figures are arithmetic over ``bench.rails.plan.model``; these tests hold the mechanism to what the
issue names: per-round costs (NCCL's connection to each new peer, the per-round gather over the world), start-up
by communicator and rank count, the share of confirmed cells from the fabric's noise, each world collective at
its own target, and a history that makes the next plan out of what was measured.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from contextlib import closing
from pathlib import Path

import jsonschema
import pytest

from bench import codec
from bench.accept.config import AcceptConfig, accept_plan, validate
from bench.exits import UserError
from bench.history.phase_times import from_plan_section, recent_runs
from bench.history.store import add_run, open_store
from bench.profile.cluster import Profile, load_profile
from bench.rails.plan import acceptance, learn
from bench.rails.plan import phases as plan_phases
from bench.rails.plan.config import RailsConfig, RailsSettings, resolve
from bench.rails.plan.laps import compared
from bench.rails.plan.model import GLOO_COMM_S, PlanModel, Span, plan_table
from bench.rails.plan.schedule import round_count
from bench.rundir.files import atomic_write_json
from bench.rundir.runjson import SCHEMA_PATH
from bench.rundir.sections import PlanSection
from bench.runtime.gpus import gpu_count
from bench.sweep.config import RunConfig, sized
from tests.support import railbench_inline
from tests.support.history_fixtures import make_run_dir
from tests.support.rails_configs import rails_config

RUN_SCHEMA = json.loads(SCHEMA_PATH.read_text())


def _settings(**config: object) -> RailsSettings:
    return resolve(rails_config(profile="lambda-1cc", **config), load_profile("lambda-1cc"))


def _accept(nodes: int, ranks: int = 8, adjust: acceptance.Adjust | None = None) -> acceptance.Plan:
    config = AcceptConfig("lambda-1cc", RunConfig(profile="lambda-1cc"), RailsConfig(profile="lambda-1cc"))
    profile, settings = validate(config)
    found = accept_plan(sized(config.sweep, profile), profile, settings, nodes, ranks, "nccl", adjust)
    assert found is not None
    return found


def test_at_64_nodes_the_high_figure_pays_every_round_and_every_communicator() -> None:
    """A matrix round pays a new peer's connection and a gather over the world, whose high end holds what
    ``ci/bench_coord.py`` measured of today's coordination (a pair round at 8192 simulated ranks: 1.09 s); start-up
    makes the world and 8 rail groups, each a split every rank of the world takes part in."""
    settings = _settings()
    model = settings.plan_model
    assert model is not None and model.splits
    full = acceptance.build(64, 8, settings, model, intra=True)
    phases = {p.name: p for p in full.phases}
    matrix = phases["pair matrix"]
    assert matrix.rounds == 63
    per_round = matrix.seconds.high / matrix.rounds
    assert per_round >= model.connect_s.high + model.sync(512).high
    assert model.sync(8192).high >= 1.09 and model.sync(2048).high >= 0.416  # bench_coord's pair rounds
    startup = phases["start-up and rail groups"].seconds
    rails = plan_phases.groups_seconds(model, 512, 64, 8)
    assert startup.high >= model.launch_s.high + model.comm_s.high * 9 + rails.high - model.comm_s.high * 8
    # Both ends grow with the ranks: a fourfold cluster costs more at either end.
    bigger = {p.name: p for p in acceptance.build(256, 8, settings, model, intra=True).phases}
    assert bigger["start-up and rail groups"].seconds.low > startup.low
    assert bigger["start-up and rail groups"].seconds.high > startup.high
    assert full.total.high > 3 * full.total.low  # a range, not a point


def test_start_up_grows_as_nccl_makes_its_communicators() -> None:
    """NCCL's bootstrap all-gather is a ring (``bootstrap.cc``: n/2 steps two ways from 2.28.7, n - 1 before), so a
    communicator costs a fixed part and a part linear in its members; every ``new_group`` on a device-bound world
    is an ``ncclCommSplit`` whose colour all-gather runs around the whole world, member or not (NCCL's
    ``commGetSplitInfo``), so the intra-node phase's one group per node costs nodes x world (pytorch/pytorch#130407).
    On gloo a rank waits for its own group alone."""
    nccl = _settings().plan_model
    assert nccl is not None
    assert plan_phases.ring_steps(8192) == Span(4096, 8191) and plan_phases.ring_steps(1) == Span(0, 0)
    # The part beyond the fixed one is linear in the members: four times the ranks, four times the ring.
    one, four = (plan_phases.communicator_seconds(nccl, n) for n in (2048, 8192))
    for end in ("low", "high"):
        fixed = getattr(nccl.comm_s, end)
        assert getattr(four, end) - fixed == pytest.approx(4 * (getattr(one, end) - fixed), rel=1e-3)
    # Each of `count` splits pays the world's ring whatever its own size: 1024 groups of 8 in 8192 ranks pay 1024
    # rings of 8192, more than 8 groups of 1024 do.
    in_turn = dataclasses.replace(nccl, at_once=False)  # a torch without split_group: one new_group per group
    per_node = plan_phases.groups_seconds(in_turn, 8192, 8, 1024)
    per_rail = plan_phases.groups_seconds(in_turn, 8192, 1024, 8)
    assert per_node.low >= 1024 * (nccl.comm_rank_s.low * 4096 + nccl.comm_s.low) > 100 * per_rail.low
    # split_group makes them all in one split: one ring over the world, then every group's own set-up at once.
    at_once = dataclasses.replace(nccl, at_once=True)
    one = nccl.comm_rank_s * plan_phases.ring_steps(8192) + plan_phases.communicator_seconds(nccl, 8)
    assert plan_phases.groups_seconds(at_once, 8192, 8, 1024) == one
    assert one.high * 1000 < per_node.high
    # The plan says when it prices the groups one split after another, and only then.
    older, newer = (
        acceptance.build(64, 8, dataclasses.replace(_settings(), plan_model=m), m, intra=True).lines()
        for m in (in_turn, at_once)
    )
    assert f"# {acceptance.IN_TURN_LINE}" in older and f"# {acceptance.IN_TURN_LINE}" not in newer
    gloo = PlanModel(Span.point(100), comm_s=GLOO_COMM_S, splits=False)
    assert plan_phases.groups_seconds(gloo, 8192, 8, 1024) == plan_phases.communicator_seconds(gloo, 8)
    assert plan_phases.groups_seconds(gloo, 64, 8, 8) == plan_phases.groups_seconds(gloo, 8192, 8, 1024)


def test_accept_plan_prints_a_low_and_a_high_figure() -> None:
    shown = railbench_inline(["accept", "--profile", "lambda-1cc", "--plan", "--nodes", "64", "--no-history"])
    assert shown.returncode == 0, shown.stderr
    line = next(x for x in shown.stdout.splitlines() if x.startswith("# projected wall time:"))
    low, high = (float(x) for x in line.split(":", 1)[1].split()[0].split("-"))
    assert 0 < low < high
    assert "low s" in shown.stdout and "high s" in shown.stdout
    assert "no runs of this cluster in the history" in shown.stdout


def test_the_plan_prices_intra_node_pairs_only_on_the_backend_that_runs_them() -> None:
    """gloo runs no intra-node pairs unless ``--intra-node`` asks (``bench.rails.measurement.intranode.wanted``, the
    run's rule): a plan on gloo that listed them priced a phase the run never does (issue 43: a CPU user's plan showed
    21 rounds of them). ``--backend nccl`` plans a GPU cluster's run from a node without GPUs, as a login node."""
    from bench.rails.measurement import intranode

    rails = RailsConfig(profile="lambda-1cc", intra_node=None)  # accept's default: on with NCCL
    config = AcceptConfig("lambda-1cc", RunConfig(profile="lambda-1cc"), rails)
    profile, settings = validate(config)
    phases = {
        backend: [p.name for p in found.phases]
        for backend in ("gloo", "nccl")
        if (found := accept_plan(sized(config.sweep, profile), profile, settings, 4, 8, backend)) is not None
    }
    assert "intra-node pairs" in phases["nccl"] and "intra-node pairs" not in phases["gloo"], phases
    for backend in ("gloo", "nccl"):
        for asked in (None, True, False):
            asked_settings = _settings(intra_node=asked)
            assert acceptance.intra_planned(asked_settings, backend) == intranode.wanted(asked_settings, backend)
    base = ["accept", "--profile", "lambda-1cc", "--plan", "--nodes", "4", "--no-history"]
    gloo = railbench_inline([*base, "--backend", "gloo"])
    assert gloo.returncode == 0 and "intra-node pairs" not in gloo.stdout, gloo.stdout + gloo.stderr
    asked = railbench_inline([*base, "--backend", "gloo", "--intra-node"])
    assert asked.returncode == 0 and "  intra-node pairs" in asked.stdout, asked.stdout + asked.stderr
    nccl = railbench_inline([*base, "--backend", "nccl"])
    assert nccl.returncode == 0 and "  intra-node pairs" in nccl.stdout, nccl.stdout + nccl.stderr
    if gpu_count() == 0:  # auto on a node without GPUs: gloo, and a line says so and how to plan the GPU run
        auto = railbench_inline(base)
        assert "intra-node pairs" not in auto.stdout.replace("no intra-node pairs", ""), auto.stdout
        assert "# planned on gloo: no GPU on this node" in auto.stdout and "--backend nccl" in auto.stdout


def test_each_world_collective_is_priced_at_its_own_target_never_above_it() -> None:
    """sendrecv and alltoall across nodes are bounded by one GPU's NIC (400 Gb/s), not the node's 3200: the
    plan's world sweep must not price them at the node's rate (issue 33 item 11)."""
    settings = _settings()
    model = settings.plan_model
    assert model is not None
    nbytes = 1 << 30
    for collective, target in (("sendrecv", 400.0), ("all_reduce", 2640.0)):
        sweep = plan_phases.Sweep([nbytes], (collective,), iters=20, warmup=5, check=False, max_bytes=nbytes)
        phase = plan_phases.sweep_phase(sweep, 64, 8, model)
        factor = {"sendrecv": 1.0, "all_reduce": 2 * 511 / 512}[collective]
        wire_s = 25 * nbytes * factor * 8 / 1e9
        # The slow end is a run that just passes (target x pass fraction), the quick end no faster than its bound.
        assert phase.seconds.high >= wire_s / (target * 0.9)
        bound = 400.0 if collective == "sendrecv" else 3200.0
        assert phase.seconds.low >= wire_s / bound
    rate = model.world_rate("sendrecv", 64, 8, nbytes)
    assert rate is not None and rate.high <= 400


def test_the_share_of_confirmed_cells_comes_from_the_fabric_s_noise() -> None:
    """A calm fabric well above its pass line confirms almost nothing; a healthy one at 92% of line with 3% noise
    (issue 28's realistic fabric) makes a fifth of its samples suspect, so nearly every round is re-run."""
    model = PlanModel(400.0, pair_efficiency=Span(0.92, 0.98), noise_cv=Span(0.01, 0.03))
    share = model.suspect_share(0.9)
    assert share.low < 1e-9
    assert 0.15 < share.high < 0.3
    quick = plan_phases.confirmation_rounds(63, 32, 8, 2, share.low)
    slow = plan_phases.confirmation_rounds(63, 32, 8, 2, share.high)
    assert quick == (0, 0)
    assert slow[0] == 2 * 63  # every round holds a suspect, in both passes
    cell = 1 - (1 - share.high) ** 2
    assert slow[1] == round(2 * 2 * cell * 63 * 32 * 8)
    given = PlanModel(400.0, suspect_fraction=Span(0.0, 0.01))
    assert given.suspect_share(0.9) == Span(0.0, 0.01)
    # One round in a hundred of a small cluster holds a suspect at a 0.1% share: the plan counts rounds, not cells.
    assert plan_phases.confirmation_rounds(100, 1, 1, 1, 0.001)[0] == math.ceil(100 * (1 - 0.999**2))


def test_the_plan_table_takes_a_number_or_a_low_high_pair(tmp_path: Path) -> None:
    def profile(table: str) -> Profile:
        path = tmp_path / "p.toml"
        path.write_text(f'name = "p"\ntransport = "socket"\n[plan]\n{table}\n')
        return load_profile(str(path))

    values = plan_table(profile("launch_s = [2, 90]\nrate_gbps = 3\nsuspect_fraction = [0, 0.1]"))
    assert values == {"launch_s": Span(2, 90), "rate_gbps": Span(3, 3), "suspect_fraction": Span(0, 0.1)}
    for bad, said in (
        ("launch_s = [90, 2]", "the low figure comes first"),
        ("launch_s = [1, 2, 3]", "a number or a [low, high] pair"),
        ("launch_s = -1", "negative"),
        ("pair_efficiency = 1.5", "is a fraction: at most 1"),
        ("pair_efficiency = 0", "must be above zero"),
        ("startup_s = 30", "unknown [plan] key 'startup_s'"),
    ):
        with pytest.raises(UserError, match=re.escape(said)):
            plan_table(profile(bad))


def test_every_run_records_its_phase_times_even_without_a_plan() -> None:
    measured = {"start-up and rail groups": 4.5, "pair matrix": 2.25, "confirmation": 0.5}
    alone = compared(None, measured)
    assert alone == {
        "phases": [
            {"name": "start-up and rail groups", "measured_s": 4.5},
            {"name": "pair matrix", "measured_s": 2.25},
            {"name": "confirmation", "measured_s": 0.5},
        ],
        "measured_s": 7.25,
    }
    planned = compared(_accept(4), measured)
    phases = {p["name"]: p for p in planned["phases"]}  # type: ignore[index, union-attr]
    assert phases["confirmation (2 pass(es))"]["measured_s"] == 0.5
    assert phases["world sweep"]["measured_s"] is None
    for section in (alone, planned):
        jsonschema.validate({"plan": section}, {"properties": RUN_SCHEMA["properties"]})
    read = codec.decode(PlanSection, alone)
    assert [p.phase for p in from_plan_section(read)] == ["start-up and rail groups", "pair matrix", "confirmation"]
    assert (
        from_plan_section(codec.decode(PlanSection, {"phases": [{"name": "a", "measured_s": -1}]}))[0].measured_s
        is None
    )


def _history_with_a_run(tmp_path: Path, nodes: int, share: float, cluster: str = "lab") -> tuple[Path, acceptance.Plan]:
    """A history holding one accept run of ``nodes`` x 8 whose phases took ``share`` of the way from the low to
    the high figure its plan projected, and whose finish step took 12 s."""
    ran = _accept(nodes)
    measured = {p.name.split(" (")[0]: p.seconds.low + share * (p.seconds.high - p.seconds.low) for p in ran.phases}
    measured.pop("finish")
    run_dir = make_run_dir(
        tmp_path / "runs" / f"{cluster}-{nodes}",
        started_utc="2026-11-20T22:00:00Z",
        busbw={},
        cluster=cluster,
        hosts=tuple(f"node{i:02d}" for i in range(nodes)),
        nranks=8 * nodes,
        command="accept",
        meta_extra={"profile": "lambda-1cc", "plan": compared(ran, measured)},
    )
    history = tmp_path / "history.sqlite"
    add_run(history, run_dir)
    # As the frame does: the history is written during the finish step, whose time run.json gets after it.
    doc = json.loads((run_dir / "run.json").read_text())
    atomic_write_json(run_dir / "run.json", {**doc, "finish_s": 12.0})
    return history, ran


def test_the_history_keeps_each_phase_and_the_next_plan_learns_from_it(tmp_path: Path) -> None:
    history, ran = _history_with_a_run(tmp_path, 4, 0.25)
    with closing(open_store(history)) as conn:
        (stored,) = recent_runs(conn, "lambda-1cc")
        assert recent_runs(conn, "other-profile") == []
    assert stored.command == "accept" and stored.nnodes == 4
    matrix = stored.phases["pair matrix"]
    planned = {p.name: p for p in ran.phases}["pair matrix"]
    assert (matrix.low_s, matrix.high_s) == (round(planned.seconds.low, 3), round(planned.seconds.high, 3))
    assert stored.phases["finish"].measured_s is None  # written during the finish step: run.json says it

    adjust, note = learn.from_history(history, "lambda-1cc", None)
    assert adjust is not None and note is None
    same = adjust(_accept(4))
    margin = learn.RUN_MARGIN
    for phase in same.phases:
        took = 12.0 if phase.name == "finish" else stored.phases[phase.name.split(" (")[0]].measured_s
        assert took is not None
        assert phase.seconds.low == pytest.approx(took * (1 - margin), rel=1e-2, abs=1e-2)
        assert phase.seconds.high == pytest.approx(took * (1 + margin), rel=1e-2, abs=1e-2)
    assert same.learned is not None and "learned from 1 run(s) of cluster 'lab'" in same.learned
    assert str(tmp_path / "runs" / "lab-4") in same.learned and same.learned_from == (stored.run_key,)

    # At 64 nodes each phase is what the run measured, grown as the model grows it from 4 nodes to 64: from each end
    # of the run's plan stored precisely enough to scale by (a quick end of a few milliseconds is not).
    model_64 = {p.name: p for p in _accept(64).phases}
    learned_64 = {p.name: p for p in adjust(_accept(64)).phases}
    for name, phase in learned_64.items():
        took = stored.phases[name.split(" (")[0]]
        ends = ((took.low_s, model_64[name].seconds.low), (took.high_s, model_64[name].seconds.high))
        ratios = [now / then for then, now in ends if then is not None and then >= learn.SCALES_FROM_S]
        if took.measured_s is None or not ratios:
            continue
        assert phase.seconds.low == pytest.approx(took.measured_s * min(ratios) * (1 - margin), rel=1e-2, abs=1e-2)
        assert phase.seconds.high == pytest.approx(took.measured_s * max(ratios) * (1 + margin), rel=1e-2, abs=1e-2)


def test_the_learned_plan_is_what_plan_prints_and_says_which_runs(tmp_path: Path) -> None:
    history, _ = _history_with_a_run(tmp_path, 4, 0.5)
    base = ["accept", "--profile", "lambda-1cc", "--plan", "--nodes", "64"]
    learned = railbench_inline([*base, "--history", str(history)])
    assert learned.returncode == 0, learned.stderr
    assert "# learned from 1 run(s) of cluster 'lab'" in learned.stdout
    other = railbench_inline([*base, "--history", str(history), "--cluster", "prod"])
    assert other.returncode == 0 and "no runs of this cluster in the history" in other.stdout
    none = railbench_inline([*base, "--no-history"])
    assert none.returncode == 0 and "no runs of this cluster in the history" in none.stdout
    # A damaged history is refused before anything, as the run itself would refuse it; read by the plan alone
    # (a store that changed since), it leaves the plan on the model, and says so.
    damaged = tmp_path / "damaged.sqlite"
    damaged.write_text("not a database " * 200)
    refused = railbench_inline([*base, "--history", str(damaged)])
    assert refused.returncode == 2 and "is not a railbench history" in refused.stderr
    adjust, note = learn.from_history(damaged, "lambda-1cc", None)
    assert adjust is None and note is not None
    assert note.startswith(f"history {damaged} not read") and note.endswith("the plan stands on the model alone")


def test_max_minutes_fits_the_learned_figures(tmp_path: Path) -> None:
    history, _ = _history_with_a_run(tmp_path, 64, 0.2)
    adjust, _ = learn.from_history(history, "lambda-1cc", "lab")
    assert adjust is not None
    settings = _settings()
    model = settings.plan_model
    assert model is not None
    learned = acceptance.for_run(64, 8, settings, intra=False, adjust=adjust)
    assert learned is not None and learned.learned is not None
    smallest = acceptance.fit(64, 8, settings, model, 0.01, intra=False, adjust=adjust)
    limit = (smallest.total.high + learned.total.high) / 2
    fitted = acceptance.fit(64, 8, settings, model, limit / 60, intra=False, adjust=adjust)
    assert fitted.total.high <= limit and fitted.learned is not None and fitted.cut is not None
    unlearned = acceptance.fit(64, 8, settings, model, limit / 60, intra=False)
    assert unlearned.learned is None and unlearned.cut != fitted.cut  # the cluster's own figures decide the cuts


def test_the_intra_node_phase_prices_its_confirmation_passes() -> None:
    """Suspect local pairs are re-measured inside the intra-node phase (``bench.rails.measurement.intranode``, one lap):
    its projection holds the re-measured rounds and cells, more with more passes, none without."""
    model = _settings().plan_model
    assert model is not None

    def intra(confirm: int) -> plan_phases.Phase:
        found = acceptance.build(16, 8, _settings(confirm=confirm), model, intra=True).phases
        return next(p for p in found if p.name == "intra-node pairs")

    off, two, four = intra(0), intra(2), intra(4)
    assert off.rounds == round_count(8)
    assert off.cells < two.cells < four.cells
    assert off.rounds < two.rounds <= four.rounds
    assert off.seconds.high < two.seconds.high < four.seconds.high
