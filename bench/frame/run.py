"""What a job's phases hold while they measure: the process group, the run directory, its record, the guard
and the counter evidence, given by the frame (``bench.frame.job``) so that no job builds them itself."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import codec
from bench.exits import InfraError
from bench.frame import evidence
from bench.frame.config_parts import Launch, Output
from bench.frame.guard import guarded
from bench.frame.launch_job import StartsRanks
from bench.frame.postmortem import LinkErrors, Postmortem, own_link_errors, socket_addresses
from bench.frame.record import rank0_lost_recorder
from bench.profile.cluster import Profile
from bench.rundir.results_csv import ResultsWriter, Row
from bench.rundir.runjson import RunFile
from bench.rundir.sections import Failure
from bench.runtime import env as benv
from bench.runtime.coord import coordinator
from bench.runtime.dist import DistContext, torch_timeout_s
from bench.runtime.watchdog import Watchdog


@dataclass(frozen=True)
class Setup:
    """How a job's ranks started and where its run goes: the parts every job's config nests, and the management
    interface the job chose (the rails test takes it from the profile when no flag gives it)."""

    launch: Launch
    """Backend, step timeout (also every agreement's wait) and ``--sysfs-root`` (expanded per rank into the run's
    context, ``DistContext.sysfs_root``)."""
    output: Output
    oob_ifname: str | None = None
    """The management interface for the rendezvous and the world group."""


def setup_of(config: StartsRanks, oob_ifname: str | None) -> Setup:
    """The frame's :class:`Setup` from a job's config."""
    return Setup(config.launch, config.output, oob_ifname)


@dataclass
class PhaseEvidence:
    """The counters every node read around a phase, and what rank 0 found wrong in them."""

    per_host: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    findings: list[evidence.EvidenceFinding] = field(default_factory=list)


class Run:
    """One run as its phases see it. Rank 0 holds the record and the results writer; on every other rank
    they are None and the writing methods do nothing."""

    def __init__(
        self,
        ctx: DistContext,
        out_dir: Path,
        profile: Profile,
        setup: Setup,
        record: RunFile | None,
        results: ResultsWriter | None,
    ) -> None:
        self.ctx, self.out_dir, self.profile, self.setup = ctx, out_dir, profile, setup
        self.record, self.results = record, results
        self.coord = coordinator(
            ctx.backend, ctx.store, ctx.info.rank, ctx.info.world_size, torch_timeout_s(setup.launch.timeout_s)
        )
        """How the ranks agree (``bench.runtime.coord``): the evidence's gathers end at rank 0 through it."""
        self.nic: str | None = None
        """The NIC this rank's traffic leaves through, where the phase knows it (the rails set their
        ``ExpectedNic``): the post-mortem names it for this rank's end (``bench.frame.postmortem``)."""
        self.flushers: list[Callable[[], None]] = []
        """Called (rank 0) when the run ends early, before run.json says so: a phase that holds measurements
        not yet on disk writes them (``bench.rails.live_output``)."""

    @property
    def rank0(self) -> bool:
        return self.ctx.info.rank == 0

    def update(self, **sections: object) -> None:
        """Add to run.json (rank 0): the job's own sections and evidence, as soon as they are known."""
        record = self.record
        if record is not None:
            write_refused_is_infra(self.out_dir, "run.json", lambda: record.update(**sections))

    def append(self, *rows: Row) -> None:
        """Rows for results.csv (rank 0), on disk before this returns."""
        if self.results is not None:
            results = self.results
            write_refused_is_infra(self.out_dir, "results.csv", lambda: results.append(*rows))

    @property
    def row_count(self) -> int:
        """Rows in results.csv so far (rank 0; 0 elsewhere)."""
        return self.results.count if self.results is not None else 0

    def replace_rows(self, index: int, rows: Sequence[Row]) -> None:
        """results.csv's rows from ``index`` on become ``rows`` (rank 0): provisional rows made final."""
        if self.results is not None:
            results = self.results
            write_refused_is_infra(self.out_dir, "results.csv", lambda: results.replace_from(index, rows))

    def end(self, status: str, exit_status: int, failure: Mapping[str, object] | None) -> None:
        """The run ended early (``failed`` or ``interrupted``): say so in run.json, whatever else fails. Exit
        status 1 is a FAIL that names a part (a link that died mid-measurement); anything else is an error."""
        if self.record is None:
            return
        for flush in self.flushers:
            with contextlib.suppress(OSError, InfraError):
                flush()
        record = self.record
        with contextlib.suppress(OSError):  # a run directory that refuses writes is said on the terminal
            said = None if failure is None else codec.decode(Failure, failure, "failure: ")
            if said is None or status == "interrupted":
                record.become(record.record.interrupted(exit_status, said))
            else:
                record.become(record.record.failed(said, exit_status))

    @contextlib.contextmanager
    def guarded(self) -> Iterator[Watchdog]:
        """A measuring phase under the hang watchdog; a hang, a lost rank, Ctrl-C or SIGTERM is recorded (rank 0's
        own loss by a surviving rank that can see run.json)."""
        with guarded(
            self.ctx, self.setup.launch.timeout_s, self.end, rank0_lost_recorder(self.out_dir), self._postmortem()
        ) as watchdog:
            yield watchdog

    def _postmortem(self) -> Postmortem | None:
        """On NCCL, what names a link that dies while a phase measures (``bench.frame.postmortem``)."""
        if self.ctx.backend != "nccl":
            return None  # gloo's errors are lost peers ("Connection reset by peer"); it keeps no log to read
        rank, host, out_dir = self.ctx.info.rank, self.ctx.hosts[self.ctx.info.rank], self.out_dir

        def own(step: str, error: BaseException) -> LinkErrors:
            # This process's NCCL_SOCKET_IFNAME is what NCCL read: railbench's default or the site's own.
            addresses = socket_addresses(benv.get("NCCL_SOCKET_IFNAME"))
            return own_link_errors(out_dir, host, rank, step, error, self.nic, addresses)

        return Postmortem(self.ctx.store, rank, own, self.end, out_dir, self.ctx.info.world_size)

    @contextlib.contextmanager
    def evidence(self) -> Iterator[PhaseEvidence]:
        """Every node's byte and error counters around the phase, audited against the profile on rank 0, and
        NCCL's own logs; filled when the phase ends without an exception (the gather is a collective)."""
        found = PhaseEvidence()
        before = evidence.node_snapshot(self.ctx.info.local_rank, self.ctx.sysfs_root)
        yield found
        host = self.ctx.hosts[self.ctx.info.rank]
        per_host = evidence.gather_node_deltas(evidence.node_deltas(before, self.ctx.sysfs_root), host, self.coord)
        nccl_json: dict[str, Any] | None = None
        nccl_findings: list[evidence.EvidenceFinding] = []
        if self.ctx.backend == "nccl":
            # Each node reads its own NCCL logs; rank 0 gathers them (no shared file system needed).
            mine = evidence.node_nccl_logs(self.out_dir, self.ctx.info.local_rank, host)
            nccl_json, nccl_findings = evidence.gather_nccl_log_evidence(mine, self.profile, self.coord)
        if per_host is None:
            return
        found.per_host = per_host
        bound = self.ctx.world_ifname if self.ctx.info.nnodes > 1 else None
        found.findings = evidence.audit_counters(
            found.per_host, self.profile, bound_ifname=bound, sysfs_root=self.ctx.sysfs_root
        )
        found.findings += nccl_findings
        self.update(counters=found.per_host, nccl_evidence=nccl_json, findings=[f.to_json() for f in found.findings])


class WriteRefused(InfraError):
    """The run directory refused a write (disk full, read-only): exit 3, in one line."""

    def __init__(self, out_dir: Path, file: str, exc: OSError) -> None:
        why = exc.strerror or type(exc).__name__
        super().__init__(
            f"the run directory {out_dir} refused a write of {file}: {why}; free space or fix its permissions"
        )


def write_refused_is_infra(out_dir: Path, file: str, write: Callable[[], object]) -> None:
    """Run ``write`` (of ``file`` in ``out_dir``); a run directory that refuses it is :class:`WriteRefused`, not
    a traceback."""
    try:
        write()
    except OSError as exc:
        raise WriteRefused(out_dir, file, exc) from None
