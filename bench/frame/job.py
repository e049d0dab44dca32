"""The frame: what every job does around its measurement, written once (docs/design.md, "The frame").

A job is a :class:`Job`: its config validated into the job (the constructor), what it agrees before
run.json exists (:meth:`Job.prepare`), and what it measures and how it judges it (:meth:`Job.measure`, which
returns the items it judged). :func:`run_job` does the rest, in this order, on every rank:

1. validate: bad input is said once, by rank 0 (exit 2); the other ranks leave quietly;
2. start the world (``bench.runtime.dist.run_as_rank``) and agree on the run directory;
3. one run record: rank 0 writes run.json (``running``) and keeps results.csv;
4. the job measures, each phase under the guard (``Run.guarded``: hang, lost rank, Ctrl-C, SIGTERM recorded)
   and, where it asks, with the counters as evidence (``Run.evidence``);
5. the verdict, decided once from the job's items (``bench.frame.decide.decide``): junit.xml, run.json and
   the terminal all say it;
6. what the job does about the verdict (``Job.after_verdict``: ``accept --drain`` drains nodes), then
   finish: the history, then the report; a failure there is exit 3 unless the verdict already failed, and a
   signal there is recorded in run.json;
7. the agreed exit: every rank returns rank 0's status.

A run directory that refuses a write (disk full, read-only) ends the run with exit 3 and one line, recorded in
run.json where it still can be.
"""

from __future__ import annotations

import contextlib
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

from bench.exits import EXIT_INFRA, EXIT_PASS, UserError, interrupt_status
from bench.frame.decide import Item, decide, item_entries, write_junit_items
from bench.frame.finish import finish_run
from bench.frame.guard import guarded
from bench.frame.record import base_metadata
from bench.frame.run import Run, Setup, WriteRefused, write_refused_is_infra
from bench.frame.validate import history_problem
from bench.measure.device import device_name
from bench.profile.cluster import Profile
from bench.rundir.files import default_cluster_name, new_run_dir, proposed_run_dir
from bench.rundir.numbers import numbers_of
from bench.rundir.results_csv import ResultsWriter
from bench.rundir.runjson import RunFile, new_record
from bench.rundir.verdict import Verdict
from bench.runtime.before_init import Prelude, refuse_together, run_directory, store_broadcast
from bench.runtime.coord import coordinator
from bench.runtime.dist import (
    DistContext,
    agree_on_exit_status,
    refused_before_start,
    run_as_rank,
    say_exit_status,
    torch_timeout_s,
)
from bench.runtime.env import RankInfo

FINISH_S = 600.0
"""How long the other ranks wait, beyond the step timeout, for rank 0 to finish (the history and the report:
drawing a 100,000-row report takes about a minute on one core)."""


class Job(ABC):
    """One railbench job as the frame runs it: what it measures and how it judges it, nothing else."""

    command: ClassVar[str]
    """run.json's ``command``, the JUnit suite (``railbench.<command>``) and the terminal's verdict line."""

    def __init__(self, setup: Setup, profile: Profile) -> None:
        self.setup = setup
        self.profile = profile

    def before_init(self, prelude: Prelude) -> Path | None:
        """Before the first communicator: agree on the run directory (a job may also pin NCCL's environment)."""
        return run_directory(prelude, lambda: proposed_run_dir(self.setup.output.out, self.setup.output.cluster))

    def retarget(self, profile: Profile) -> None:
        """The profile as it judges this run's GPUs (``Profile.for_gpus``), on every rank before
        :meth:`prepare`; a job that derived settings from the profile's targets derives them again."""
        self.profile = profile

    def prepare(self, ctx: DistContext) -> dict[str, object]:
        """Every rank, once the world exists and before run.json does: what must be agreed first (UserError
        here is still bad input, exit 2). Returns the job's own run.json sections."""
        return {}

    @abstractmethod
    def measure(self, run: Run) -> Sequence[Item]:
        """Every rank: measure, write the job's own files, and return the items judged (used on rank 0)."""

    def after_verdict(self, run: Run, verdict: Verdict) -> dict[str, object]:
        """Rank 0, once the verdict is in run.json and before the finish (history, report): what the job does
        about the verdict (``accept --drain`` drains the nodes its defects name). Returns run.json sections
        to add, which the report then shows."""
        return {}


def run_job(info: RankInfo, make: Callable[[], Job]) -> int:
    """One rank of a job, validated by ``make`` (the job's constructor); every rank returns the same status."""
    try:
        job = make()
    except UserError as exc:
        if info.rank != 0:
            return refused_before_start(info, exc)  # rank 0 says it once
        raise
    launch, output = job.setup.launch, job.setup.output

    def before_init(prelude: Prelude) -> Path | None:
        # The history lives on rank 0's node: rank 0 alone opens it, and every rank hears its answer.
        refuse_together(
            prelude, "history", lambda: history_problem(output.history, output.no_history, output.out) or ""
        )
        return job.before_init(prelude)

    return run_as_rank(
        info,
        launch.backend,
        launch.timeout_s,
        job.setup.oob_ifname,
        lambda ctx: lifecycle(job, ctx),
        before_init,
        sysfs_root=launch.sysfs_root,
    )


def lifecycle(job: Job, ctx: DistContext) -> int:
    """Steps 2-7 of the module docstring, on one rank inside the world."""
    launch, output = job.setup.launch, job.setup.output
    cluster = output.cluster or default_cluster_name(ctx.hosts)  # every rank's host, and Slurm's name
    out_dir = ctx.out_dir or Path(
        # rank 0 alone claims a new folder (bench.rundir.files.claim_run_dir); the others hear its name
        store_broadcast(
            ctx.store, "out_dir", ctx.info.rank, launch.timeout_s, lambda: str(output.out or new_run_dir(cluster))
        )
    )
    job.retarget(job.profile.for_gpus(_gpu_names(ctx, launch.timeout_s)))
    if ctx.info.rank == 0 and job.profile.targets_line():
        print(f"# targets: {job.profile.targets_line()}", flush=True)
    sections = job.prepare(ctx)
    record, results = None, None
    if ctx.info.rank == 0:
        record, results = _start_record(job, ctx, out_dir, cluster, sections)
    run = Run(ctx, out_dir, job.profile, job.setup, record, results)
    started = time.monotonic()
    try:
        items = job.measure(run)
        status = conclude(job, run, items, time.monotonic() - started) if run.rank0 else EXIT_PASS
    except WriteRefused as exc:
        run.end("failed", EXIT_INFRA, {"kind": "write", "message": str(exc)})
        # Before rank 0 tears its groups down under the others: they end with this status, quietly, instead of
        # holding back and naming rank 0 gone (bench.runtime.dist.run_as_rank).
        say_exit_status(ctx, EXIT_INFRA)
        raise
    return agree_on_exit_status(ctx, status, timeout_s=launch.timeout_s + FINISH_S)


def _gpu_names(ctx: DistContext, timeout_s: float) -> list[str]:
    """Every rank's GPU name (empty on a CPU rank), on every rank: the GPU generation whose targets judge the
    run is chosen from what the nodes report (``bench.profile.gpu_targets``). Under the watchdog, as every agreement
    before the measurement is: a rank that never answers is a named hang, not a wait without end."""
    coord = coordinator(ctx.backend, ctx.store, ctx.info.rank, ctx.info.world_size, torch_timeout_s(timeout_s))
    with guarded(ctx, timeout_s, lambda status, exit_status, failure: None) as watchdog:
        watchdog.enter("gathering every rank's GPU name")
        names = coord.all_gather(device_name(ctx.device))
        watchdog.leave()
    return [str(name) for name in names]


def _start_record(
    job: Job, ctx: DistContext, out_dir: Path, cluster: str, sections: dict[str, object]
) -> tuple[RunFile, ResultsWriter]:
    meta = {**base_metadata(ctx, cluster, job.profile, job.command), **sections}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        record = RunFile(out_dir, new_record(**meta))
        # A full disk refuses results.csv while run.json can still say so (ResultsWriter.keep_room_for).
        return record, ResultsWriter(out_dir / "results.csv", keep_room_for=record.path)
    except OSError as exc:
        raise WriteRefused(out_dir, "run.json", exc) from None


def conclude(job: Job, run: Run, items: Sequence[Item], wall_s: float | None = None) -> int:
    """Rank 0: the verdict from ``items``, said in junit.xml, run.json and on the terminal; then finish.
    ``wall_s``: how long the job measured, the JUnit suite's time (its items carry their own step's time).

    A signal anywhere in here is recorded (run.json ``interrupted``, its exit status said to the other ranks,
    which wait for it): in the verdict's writes, its lines, the job's own step (a drain), the history or the
    report. A signal that landed outside the history and report alone once left the others waiting FINISH_S.
    """
    record = run.record
    try:
        return _conclude(job, run, items, wall_s)
    except KeyboardInterrupt as exc:
        if record is not None:
            with contextlib.suppress(OSError):
                # A verdict already in the record stands; before it, the run is an error that was interrupted.
                record.become(record.record.interrupted(interrupt_status(exc)))
        say_exit_status(run.ctx, interrupt_status(exc))  # the others wait for it: they end with the signal's status
        raise


def _conclude(job: Job, run: Run, items: Sequence[Item], wall_s: float | None) -> int:
    verdict = decide(items)
    junit = run.out_dir / "junit.xml"
    suite = f"railbench.{job.command}"
    host = socket.gethostname()
    write_refused_is_infra(
        run.out_dir, "junit.xml", lambda: write_junit_items(junit, suite, items, verdict, hostname=host, time_s=wall_s)
    )
    run.append()  # results.csv exists even when nothing was measured (a skipped rails test)
    status = verdict.exit_status
    record = run.record
    if record is not None:
        concluded = record.record.concluded(verdict, item_entries(items))
        write_refused_is_infra(run.out_dir, "run.json", lambda: record.become(concluded))
    print_verdict(job.command, verdict, numbers_of(record.record) if record is not None else "")
    sections = job.after_verdict(run, verdict)
    if sections:
        run.update(**sections)
    return finish(run, status)


def print_verdict(command: str, verdict: Verdict, numbers: str = "") -> None:
    """The terminal's verdict: every failure on its own ``# FAIL`` line, then the word and what the numbers
    are of (``bench.rundir.numbers``: a CPU run says its numbers are not the fabric's); for any other word
    the reasons (why nothing was judged, what was not) under it."""
    if verdict.word == "fail":
        for reason in verdict.reasons:
            print(f"# FAIL {reason}")
    print(f"# {command} verdict: {verdict.label}")
    if numbers:
        print(f"# numbers: {numbers}")
    if verdict.word != "fail":
        for reason in verdict.reasons:
            print(f"#   {reason}")
    print(flush=True, end="")


def finish(run: Run, status: int) -> int:
    """The history and the report; returns the exit status (3 when either failed and the verdict did not).

    A signal here (SIGTERM while the report is drawn) is recorded by :func:`conclude`: run.json says
    ``interrupted`` with the signal's exit status and ``finish: interrupted``, never ``complete``/0 with the
    report missing.
    """
    began = time.monotonic()
    failed = finish_run(
        run.out_dir, run.profile, history=run.setup.output.history, no_history=run.setup.output.no_history
    )
    if failed:
        status = status or EXIT_INFRA  # a FAIL verdict keeps exit 1
    try:
        took = round(time.monotonic() - began, 3)
        record = run.record
        if record is not None:
            finished = record.record.finished(status, failed=bool(failed), took_s=took)
            write_refused_is_infra(run.out_dir, "run.json", lambda: record.become(finished))
    except WriteRefused as exc:
        print(f"# run.json: {exc}", flush=True)
        status = status or EXIT_INFRA
    print(f"# run directory: {run.out_dir}", flush=True)
    return status
