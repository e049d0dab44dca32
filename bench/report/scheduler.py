"""The report's Slurm part, from run.json alone (``bench.accept.slurm`` writes it): the job, the nodes the
scheduler left out of the run and why, and what ``--drain`` did to each node a defect named."""

from __future__ import annotations

from bench.codec import present
from bench.rundir.runjson import RunDoc

DRAIN_HEADERS = ("node", "railbench did", "reason", "note")


def sentences(run: RunDoc) -> tuple[str, ...]:
    """The job and the nodes Slurm left out (said even when none was), then the defects that drained no node."""
    said: list[str] = []
    job = run.scheduler
    if job:
        where = f" in partition {job.partition}" if job.partition else ""
        nodes = f" on {job.nodelist}" if job.nodelist else ""
        said.append(f"Slurm job {job.job_id}{where}{nodes}.")
        if job.left_out is None:
            said.append(f"The partition's other nodes are unknown: {present(job.note) or ''}.")
        else:
            out = [f"{e.node} ({e.state}" + (f": {e.reason}" if e.reason else "") + ")" for e in job.left_out]
            said.append(
                "Left out by the scheduler when the run started: " + "; ".join(out) + "."
                if out
                else "The scheduler left no node of the partition out."
            )
    drain = run.drain
    if drain:
        named = (
            f"{len(drain.nodes)} node(s) named by a defect, in the table below"
            if drain.nodes
            else "no defect named a node"
        )
        said.append(f"--drain: {named}.")
        said += [f"Not drained: {line}." for line in drain.not_drained]
    return tuple(said)


def drain_rows(run: RunDoc) -> tuple[tuple[str, ...], ...]:
    """One row per node ``--drain`` acted on: the node, what railbench did, the reason, the note."""
    return tuple((e.node, e.outcome, e.reason, e.note) for e in run.drain.nodes) if run.drain else ()
