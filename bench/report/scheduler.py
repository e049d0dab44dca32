"""The report's Slurm part, from run.json alone (``bench.accept.slurm`` writes it): the job, the nodes the
scheduler left out of the run and why, and what ``--drain`` did to each node a defect named."""

from __future__ import annotations

from collections.abc import Mapping

from bench.jsondoc import Parsed
from bench.rundir.runjson import RunDoc

DRAIN_HEADERS = ("node", "railbench did", "reason", "note")


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _entries(value: object) -> list[Parsed]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def sentences(run: RunDoc) -> tuple[str, ...]:
    """The job and the nodes Slurm left out (said even when none was), then the defects that drained no node."""
    said: list[str] = []
    job = run.section("scheduler")
    if job:
        where = f" in partition {job['partition']}" if job.get("partition") else ""
        nodes = f" on {job['nodelist']}" if job.get("nodelist") else ""
        said.append(f"Slurm job {_text(job.get('job_id'))}{where}{nodes}.")
        left_out = job.get("left_out")
        if left_out is None:
            said.append(f"The partition's other nodes are unknown: {_text(job.get('note'))}.")
        else:
            out = [
                f"{_text(e.get('node'))} ({_text(e.get('state'))}"
                + (f": {_text(e.get('reason'))}" if e.get("reason") else "")
                + ")"
                for e in _entries(left_out)
            ]
            said.append(
                "Left out by the scheduler when the run started: " + "; ".join(out) + "."
                if out
                else "The scheduler left no node of the partition out."
            )
    drain = run.section("drain")
    if drain:
        acted = _entries(drain.get("nodes"))
        named = f"{len(acted)} node(s) named by a defect, in the table below" if acted else "no defect named a node"
        said.append(f"--drain: {named}.")
        others = drain.get("not_drained")
        if isinstance(others, list):
            said += [f"Not drained: {line}." for line in others if isinstance(line, str)]
    return tuple(said)


def drain_rows(run: RunDoc) -> tuple[tuple[str, ...], ...]:
    """One row per node ``--drain`` acted on: the node, what railbench did, the reason, the note."""
    return tuple(
        (_text(e.get("node")), _text(e.get("outcome")), _text(e.get("reason")), _text(e.get("note")))
        for e in _entries(run.section("drain").get("nodes"))
    )
