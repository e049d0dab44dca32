"""run.json as one typed, immutable record: every writer and reader goes through ``RunDoc``.

The record has the fields every command writes (who ran what, where, with which versions, and how it ended)
as typed attributes, and the command's own sections (``sweep``, ``rails_test``, ``accept``, ``source``,
evidence) under names declared in :data:`SECTIONS`; nothing else can be written. The status goes
``running`` -> ``complete`` | ``failed`` | ``interrupted`` and never back, and a finished run has an exit
status. ``run.schema.json`` beside this module is the same contract as a JSON Schema, shipped in the
package for anyone who reads run directories; the tests check every run.json they produce against it.
"""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from bench.bounded import MissingInput, check_path_names
from bench.exits import UserError
from bench.jsondoc import JSONObject, Parsed
from bench.rundir.files import (
    FORMAT_VERSION,
    MAX_CLUSTER_CHARS,
    atomic_write_json,
    json_text,
    overwrite_in_own_blocks,
    read_json_object,
)
from bench.rundir.verdict import WORDS, Verdict, Word

Status = Literal["running", "complete", "failed", "interrupted", "incomplete"]
"""``incomplete`` only for an imported log that ends in the middle of its sweep."""
STATUSES: tuple[str, ...] = get_args(Status)
FINISHED: frozenset[str] = frozenset({"complete", "failed", "interrupted", "incomplete"})
VERDICTS: frozenset[str | None] = frozenset({None, *WORDS})
SCHEMA_PATH = Path(__file__).with_name("run.schema.json")

SECTIONS: Mapping[str, tuple[type, ...]] = {
    "sweep": (dict,),  # run: the sweep's settings (graph as it was resolved)
    "rails_test": (dict,),  # rails and accept: the rails settings
    "rails_skipped": (str, type(None)),  # why the rails test measured nothing (one node)
    "plan": (dict, type(None)),  # rails and accept: each phase projected and measured (bench.rails.laps)
    "accept": (dict,),  # accept: testcases per class
    "source": (dict,),  # import: the log it came from
    "gpus": (list,),  # import: the GPUs the log listed
    "started_utc_source": (str,),  # import: whether the time came from the log or the file
    "counters": (dict,),  # bytes per device per host over the run
    "nccl_evidence": (dict, type(None)),  # what NCCL's own log says it used, per host
    "findings": (list,),  # counter and NCCL-log findings
    "items": (list,),  # every item the verdict was decided from: group, name, state, reason
    "reasons": (list,),  # the verdict's sentences: what failed, or why nothing was judged
    "failure": (dict,),  # a hang, a lost rank, a launcher fault: kind, message, ranks and hosts
    "judged_by": (dict,),  # the profile's thresholds and idle devices as the run used them (rundir/judged_by.py)
    "before_compare": (dict,),  # the run's own verdict and reasons, kept while compare says regressed
    "finish": (str,),  # "failed" when the history or the report could not be written
    "finish_s": (int, float),  # how long the finish step took (the next plan learns the run's end from it)
    "scheduler": (dict,),  # accept in a Slurm job: the job and the partition's nodes Slurm left out
    "drain": (dict,),  # accept --drain: what was done to each node a defect names, and what drained nothing
}


@dataclass(frozen=True)
class RunDoc:
    """One run.json."""

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
    ranks: tuple[Parsed, ...] = ()
    launcher: str | None = None
    backend: str | None = None
    device: str | None = None
    versions: Mapping[str, str | None] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    pid: int | None = None
    sections: Mapping[str, Any] = field(default_factory=dict)
    """The command's own sections and the evidence, by the names in :data:`SECTIONS`. Any, not object: a
    section is arbitrary JSON of its declared container type (checked in ``__post_init__``), and readers
    that index into it do not all narrow it yet (``section()`` hands out a :data:`Parsed` to narrow)."""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"run.json status {self.status!r} is not one of {', '.join(STATUSES)}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"run.json verdict {self.verdict!r} is not a railbench verdict")
        for name, value in self.sections.items():
            allowed = SECTIONS.get(name)
            if allowed is None:
                raise ValueError(f"run.json has no section {name!r}; declared: {', '.join(SECTIONS)}")
            if not isinstance(value, allowed):
                raise ValueError(f"run.json section {name!r} holds {type(value).__name__}")

    def section(self, name: str) -> Parsed:
        """A section that holds a JSON object (``sweep``, ``counters``, ``judged_by``...); empty when absent.
        Its values are as read: a reader narrows each where it uses it."""
        value = self.sections.get(name)
        return value if isinstance(value, Mapping) else {}

    def decided(self) -> Verdict | None:
        """The verdict record the frame wrote (None while the run is running)."""
        if self.verdict is None:
            return None
        reasons = self.sections.get("reasons") or ()
        return Verdict.of(self.verdict, (str(r) for r in reasons))

    def to_json(self) -> JSONObject:
        doc: JSONObject = {}
        for f in dataclasses.fields(self):
            if f.name == "sections":
                continue
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = [dict(v) if isinstance(v, Mapping) else v for v in value]
            elif isinstance(value, Mapping):
                value = dict(value)
            doc[f.name] = value
        doc.update(self.sections)
        return doc

    @classmethod
    def from_json(cls, doc: Parsed, where: str = "run.json") -> RunDoc:
        """The record in ``doc``; UserError naming ``where`` when a field is missing or of the wrong type."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "sections"]
        # Any, not object: these values go to the constructor unchecked, and the constructor, __post_init__ and
        # _check_types are what check each one (the messages readers of a damaged run.json see).
        core: dict[str, Any] = {k: doc[k] for k in names if k in doc}
        sections = {k: v for k, v in doc.items() if k not in core}
        try:
            for key in ("hosts", "ranks"):
                if key in core:
                    core[key] = tuple(core[key])
            record = cls(**core, sections=sections)
            _check_types(record)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{where}: {exc}: the run directory is damaged or from another tool") from None
        return record

    def with_fields(self, **changes: object) -> RunDoc:
        """A new record with ``changes``; the status only moves forward and a finished run keeps its end."""
        core_names = {f.name for f in dataclasses.fields(self)} - {"sections"}
        core: dict[str, Any] = {k: v for k, v in changes.items() if k in core_names}  # checked as in from_json
        sections = {**self.sections, **{k: v for k, v in changes.items() if k not in core_names}}
        new_status = core.get("status", self.status)
        if self.status in FINISHED and new_status == "running":
            raise ValueError(f"run.json is {self.status}; a finished run cannot become running again")
        for key in ("hosts", "ranks"):
            if key in core:
                core[key] = tuple(core[key])
        record = dataclasses.replace(self, **core, sections=sections)
        _check_types(record)
        return record


_TYPES: Mapping[str, tuple[type, ...]] = {
    "format_version": (int,),
    "tool": (str,),
    "version": (str,),
    "command": (str,),
    "cluster": (str,),
    "profile": (str, type(None)),
    "started_utc": (str,),
    "finished_utc": (str, type(None)),
    "exit_status": (int, type(None)),
    "nnodes": (int, type(None)),
    "nranks": (int, type(None)),
    "launcher": (str, type(None)),
    "backend": (str, type(None)),
    "device": (str, type(None)),
    "versions": (dict,),
    "env": (dict,),
    "pid": (int, type(None)),
}


def _check_types(record: RunDoc) -> None:
    for name, allowed in _TYPES.items():
        value = getattr(record, name)
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise ValueError(f"field {name!r} holds {type(value).__name__}")
    if not all(isinstance(h, str) for h in record.hosts):
        raise ValueError("field 'hosts' must list host names")


def new_record(**fields: object) -> RunDoc:
    """A record from the fields a writer knows (core fields by name, sections by their declared names)."""
    core_names = {f.name for f in dataclasses.fields(RunDoc)} - {"sections"}
    core: dict[str, Any] = {k: v for k, v in fields.items() if k in core_names}  # checked as in from_json
    sections = {k: v for k, v in fields.items() if k not in core_names}
    for key in ("hosts", "ranks"):
        if key in core:
            core[key] = tuple(core[key])
    record = RunDoc(**core, sections=sections)
    _check_types(record)
    return record


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
    if version != FORMAT_VERSION:
        raise UserError(
            f"{path} has format_version {version!r}; this railbench reads {FORMAT_VERSION}: "
            "upgrade railbench or re-import the run"
        )
    record = RunDoc.from_json(meta, str(path))
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

    def get(self, name: str) -> object:
        """One field or section by its run.json name (None when absent); the caller narrows it."""
        if name in {f.name for f in dataclasses.fields(RunDoc)} - {"sections"}:
            return getattr(self.record, name)
        return self.record.sections.get(name)

    def update(self, **fields: object) -> None:
        self.record = self.record.with_fields(**fields)
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
