"""run.json as one typed, immutable record: every writer and reader goes through ``RunDoc``.

The record has the fields every command writes (who ran what, where, with which versions, and how it ended)
and the command's own sections (``sweep``, ``rails_test``, ``accept``, ``source``, evidence), each of its
declared type (``bench.rundir.sections``); it is read and written by the one codec (``bench.codec``), so a
value of another type or a key no release wrote is refused in one line naming the field. A section the
command did not write is ``ABSENT``, and absent from the file. The status goes ``running`` -> ``complete`` |
``failed`` | ``interrupted`` and never back, by the transitions :meth:`RunDoc.concluded`,
:meth:`RunDoc.failed` and :meth:`RunDoc.interrupted`, and a finished run has an exit status.
``run.schema.json`` beside this module is the same contract as a JSON Schema, shipped in the package for
anyone who reads run directories; the tests check every run.json they produce against it.
"""

from __future__ import annotations

import dataclasses
import errno
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from bench import codec
from bench.bounded import MissingInput, check_path_names
from bench.codec import ABSENT, Absent
from bench.exits import EXIT_FAIL, UserError
from bench.finding import EvidenceFinding
from bench.jsondoc import JSONObject, JSONValue
from bench.rundir.docversion import RUN_STEPS, upgrade
from bench.rundir.files import (
    FORMAT_VERSION,
    MAX_CLUSTER_CHARS,
    atomic_write_json,
    json_text,
    overwrite_in_own_blocks,
    read_json_object,
)
from bench.rundir.judged_by import JudgedBy
from bench.rundir.rails_records import Counters
from bench.rundir.sections import (
    AcceptSection,
    BeforeCompare,
    Drain,
    Failure,
    Finish,
    ImportSource,
    ItemEntry,
    Number,
    PlanSection,
    RailsTestSettings,
    Scheduler,
    SweepSettings,
)
from bench.rundir.soak_windows import SoakSection
from bench.rundir.verdict import Verdict, Word

Status = Literal["running", "complete", "failed", "interrupted", "incomplete"]
"""``incomplete`` only for an imported log that ends in the middle of its sweep."""
STATUSES: tuple[str, ...] = get_args(Status)
FINISHED: frozenset[str] = frozenset({"complete", "failed", "interrupted", "incomplete"})
SCHEMA_PATH = Path(__file__).with_name("run.schema.json")


@dataclass(frozen=True, kw_only=True)
class RankEntry:
    """One of ``ranks``: a rank, its host, and its place on the host and among the nodes."""

    rank: int
    host: str
    local_rank: int | Absent = ABSENT
    node_rank: int | Absent = ABSENT


@dataclass(frozen=True, kw_only=True)
class RunDoc:
    """One run.json: the fields every command writes, then the sections (``ABSENT`` where not written)."""

    format_version: int
    tool: str
    version: str
    command: str
    cluster: str
    profile: str | None
    started_utc: str
    status: Status
    finished_utc: str | None = None
    verdict: Word | None = None
    """The word of the verdict record (``bench.rundir.verdict``); None while running."""
    exit_status: int | None = None
    """Set once the run has finished (an import, which ran elsewhere, has none)."""
    hosts: tuple[str, ...] = ()
    nnodes: int | None = None
    nranks: int | None = None
    ranks: tuple[RankEntry, ...] = ()
    launcher: str | None = None
    backend: str | None = None
    device: str | None = None
    versions: Mapping[str, str | None] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    pid: int | None = None
    judged_by: JudgedBy | Absent = ABSENT
    """The profile's thresholds and idle devices as the run used them (``bench.rundir.judged_by``)."""
    sweep: SweepSettings | Absent = ABSENT
    """run, accept, import: the world sweep's settings as resolved (graph as every rank agreed it)."""
    rails_test: RailsTestSettings | Absent = ABSENT
    """rails, accept: the rails settings as resolved."""
    plan: PlanSection | Absent | None = ABSENT
    """rails, accept: each phase projected and measured (``bench.rails.plan.laps``)."""
    rails_skipped: str | Absent | None = ABSENT
    """rails: why the rails test measured nothing (one node); null when it measured."""
    counters: Counters | Absent = ABSENT
    """Bytes and error counters per device per host over the run."""
    nccl_evidence: Mapping[str, JSONValue] | Absent | None = ABSENT
    """What NCCL's own log says it used, per host (``bench.nccllogs``: its own shape, kept as written)."""
    findings: tuple[EvidenceFinding, ...] | Absent = ABSENT
    """Counter and NCCL-log findings."""
    gpus: tuple[str, ...] | Absent = ABSENT
    """import: the GPUs the log listed."""
    source: ImportSource | Absent = ABSENT
    """import: the log it came from."""
    launched_utc: str | Absent = ABSENT
    """When the railbench launcher that started the ranks (``run --np``, ``accept``) started: the user's wait
    begins there, before mpirun and the ranks' own start (``bench.runtime.clock``); absent under the user's own
    launcher."""
    started_utc_source: str | Absent = ABSENT
    """import: whether the start time came from the log or the file."""
    accept: AcceptSection | Absent = ABSENT
    """accept: each node, rail and collective with its state."""
    reasons: tuple[str, ...] | Absent = ABSENT
    """The verdict's sentences: what failed, or why nothing was judged."""
    items: tuple[ItemEntry, ...] | Absent = ABSENT
    """Every item the verdict was decided from."""
    failure: Failure | Absent = ABSENT
    """A hang, a lost rank, a dead link, a launcher fault, a refused write."""
    before_compare: BeforeCompare | Absent = ABSENT
    """The run's own verdict and reasons, kept while compare says regressed."""
    finish: Finish | Absent = ABSENT
    """The finish step (history, then report): ``failed`` when either could not be written."""
    finish_s: Number | Absent = ABSENT
    """How long the finish step took (the next plan learns the run's end from it)."""
    scheduler: Scheduler | Absent = ABSENT
    """accept in a Slurm job: the job and the partition's nodes Slurm left out."""
    drain: Drain | Absent = ABSENT
    """accept --drain: what was done to each node a defect names, and what drained nothing."""
    soak: SoakSection | Absent = ABSENT
    """soak: what the soak was asked for and how far it got (its windows are in ``windows.jsonl``)."""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {', '.join(STATUSES)}")

    def version_of(self, software: str) -> str | None:
        """The version of ``software`` (``nccl``, ``torch``, ``cuda``, ``driver``...) the run recorded; None where
        it recorded none (an import knows only what its log says)."""
        return self.versions.get(software)

    def env_var(self, name: str) -> str | None:
        """The value of the variable ``name`` in the environment the run recorded (only those railbench keeps:
        ``bench.runtime.env.recorded_environment``); None where it was unset."""
        return self.env.get(name)

    def decided(self) -> Verdict | None:
        """The verdict record the frame wrote (None while the run is running)."""
        if self.verdict is None:
            return None
        return Verdict.of(self.verdict, self.reasons or ())

    def to_json(self) -> JSONObject:
        return codec.fields_json(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, object], where: str = "run.json") -> RunDoc:
        """The record in ``doc``; UserError naming ``where`` and the field when one is missing, of the wrong
        type, or not a run.json field."""
        try:
            return codec.decode(cls, doc, f"{where}: ")
        except codec.Refused as exc:
            raise UserError(f"{exc}: the run directory is damaged or from another tool") from None

    def with_fields(self, **changes: object) -> RunDoc:
        """A new record with ``changes`` (fields by their run.json names, each a record or its JSON), read as a
        reader would read it: :class:`bench.codec.Refused` names a value of the wrong type. The status only
        moves forward."""
        # Only the changes are read: a run.json of thousands of nodes' counters is not read again per change.
        return self._moved_to(codec.replaced(self, changes, "run.json: "))

    def _moved_to(self, new: RunDoc) -> RunDoc:
        if self.status in FINISHED and new.status == "running":
            raise ValueError(f"run.json is {self.status}; a finished run cannot become running again")
        return new

    def concluded(self, verdict: Verdict, items: tuple[ItemEntry, ...]) -> RunDoc:
        """Rank 0 decided the verdict: the run is complete, with the verdict's exit status, and finishing (its
        history row and report come next: :meth:`finished`)."""
        return self._moved_to(
            dataclasses.replace(
                self,
                status="complete",
                verdict=verdict.word,
                reasons=tuple(verdict.reasons),
                items=items,
                exit_status=verdict.exit_status,
                finished_utc=_now(),
                finish="running",
            )
        )

    def finished(self, exit_status: int, *, failed: bool, took_s: float) -> RunDoc:
        """The finish step ended: ``failed`` when the history row or the report could not be written."""
        return dataclasses.replace(
            self, exit_status=exit_status, finish="failed" if failed else "done", finish_s=took_s
        )

    def failed(self, failure: Failure, exit_status: int, *, command: str | None = None) -> RunDoc:
        """The run ended early: ``failure`` says why, and is the verdict's one reason. Exit status 1 is a FAIL
        that names a part (a link that died mid-measurement); any other is an error. A run that had already
        ended keeps the time it ended."""
        return dataclasses.replace(
            self,
            command=command or self.command,
            status="failed",
            verdict="fail" if exit_status == EXIT_FAIL else "error",
            reasons=(failure.message,),
            exit_status=exit_status,
            failure=failure,
            finished_utc=self.finished_utc if self.status != "running" and self.finished_utc else _now(),
        )

    def interrupted(self, exit_status: int, failure: Failure | None = None) -> RunDoc:
        """A signal ended the run (or its finish step): status ``interrupted`` with the signal's exit status. A
        verdict already decided stands (its history row or report is what is missing); else it is an error.
        ``failure`` (kind ``signal``) names the one rank the signal was sent to, where it was not every rank."""
        finish: Finish | Absent = "interrupted" if self.finish == "running" else self.finish
        ended = dataclasses.replace(
            self,
            status="interrupted",
            exit_status=exit_status,
            finish=finish,
            finished_utc=self.finished_utc or _now(),  # a run stopped while measuring ends now
        )
        if failure is not None:
            ended = dataclasses.replace(ended, failure=failure)
        if self.verdict is not None:
            return ended
        why = failure.message if failure is not None else "interrupted"
        return dataclasses.replace(ended, verdict="error", reasons=(f"{why} (exit status {exit_status})",))

    @property
    def finishing(self) -> bool:
        """Rank 0 was adding the run to the history and drawing its report."""
        return self.finish == "running"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def new_record(**fields: object) -> RunDoc:
    """A record from the fields a writer knows (by their run.json names, each a record or its JSON)."""
    try:
        return codec.decode(RunDoc, {name: codec.encode(value) for name, value in fields.items()}, "run.json: ")
    except codec.Refused as exc:
        raise ValueError(str(exc)) from None


def read_run_json(run_dir: Path | str) -> RunDoc:
    """run.json of a run directory as its typed record, checked for a format this railbench reads: what every
    reader of a run directory starts from."""
    check_path_names(run_dir, "RUN_DIR")
    path = Path(run_dir) / "run.json"
    if not Path(run_dir).is_dir():
        raise UserError(f"run directory {run_dir} does not exist: pass a folder under reports/runs/")
    try:
        meta = read_json_object(path, "the run directory is damaged")
    except MissingInput:
        raise UserError(f"{path} is missing: {run_dir} is not a railbench run directory") from None
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        # every run.json railbench wrote says its version, from 1
        raise UserError(
            f"{path} has format_version {version!r}; this railbench reads {FORMAT_VERSION}: "
            "upgrade railbench or re-import the run"
        )
    record = RunDoc.from_json(upgrade(meta, path, FORMAT_VERSION, RUN_STEPS), str(path))
    cluster = record.cluster
    if len(cluster) > MAX_CLUSTER_CHARS:  # a name no command writes: every page and image would carry it
        raise UserError(f"{path}: cluster is {len(cluster)} characters long, over {MAX_CLUSTER_CHARS}: it is damaged")
    return record


class RunFile:
    """The run.json of one run directory, rewritten atomically on every change (rank 0 or the parent)."""

    def __init__(self, out_dir: Path, record: RunDoc, *, write: bool = True) -> None:
        """``record`` as ``out_dir``'s run.json, written now unless ``write`` is False (it is on disk)."""
        self.path = Path(out_dir) / "run.json"
        self.record = record
        if write:
            self.save()

    @classmethod
    def load(cls, out_dir: Path) -> RunFile:
        """The run.json already in ``out_dir`` (checked as every reader checks it). Reading writes nothing: a
        run directory that refuses writes (full, read-only) can still be read and told why."""
        return cls(out_dir, read_run_json(out_dir), write=False)

    @property
    def status(self) -> str:
        return self.record.status

    def update(self, **fields: object) -> None:
        """Change fields by their run.json names (each a record or its JSON) and save."""
        self.become(self.record.with_fields(**fields))

    def become(self, record: RunDoc) -> None:
        """``record`` is the run's record now (a transition of the old one: :meth:`RunDoc.failed`...); saved."""
        self.record = self.record._moved_to(record)
        self.save()

    def save(self) -> None:
        """Replace run.json atomically; on a full disk, in place where the new record fits in the old one's
        blocks, so a run that ends on a full disk still says how it ended."""
        try:
            atomic_write_json(self.path, self.record.to_json())
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            if not overwrite_in_own_blocks(self.path, json_text(self.record.to_json()).encode("utf-8")):
                raise
