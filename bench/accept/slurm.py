"""``accept`` under Slurm (docs/slurm.md): what the scheduler left out of the run, and ``--drain``.

* run.json's ``scheduler`` section, when accept runs inside a Slurm job: the job, its partition and nodes,
  and every node of the partition Slurm would not give a job when the run started (drained, down, failed,
  reserved, not responding), with its state and reason, so the report says why tonight ran on fewer nodes.
* run.json's ``drain`` section, with ``--drain``: every node a defect names, drained as the drain policy says
  (``bench.slurm.drain``), what was done to each, and the defects that drained nothing and why.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.preflight.cluster import NodeReport
from bench.profile.cluster import Profile
from bench.rails.diagnosis.rails_outcome import RailsOutcome
from bench.rundir.sections import Drain, LeftOutNode, Scheduler
from bench.runtime import env as benv
from bench.slurm import drain, scheduler


def scheduler_section() -> Scheduler | None:
    """The Slurm job this run is part of and the partition's nodes Slurm left out; None outside a job."""
    job = benv.slurm_job()
    if job is None:
        return None
    try:
        states = scheduler.node_states(partition=job.partition)
    except scheduler.SchedulerError as exc:
        note = f"the partition's nodes were not read: {exc}"
        return Scheduler(job_id=job.job_id, partition=job.partition, nodelist=job.nodelist, left_out=None, note=note)
    left_out = [s for s in sorted(states.values(), key=lambda s: s.node) if not s.usable]
    for s in left_out:
        print(f"# scheduler: {s.node} left out ({s.state}{': ' + s.reason if s.reason else ''})", flush=True)
    return Scheduler(
        job_id=job.job_id,
        partition=job.partition,
        nodelist=job.nodelist,
        left_out=tuple(LeftOutNode(node=s.node, state=s.state, reason=s.reason, user=s.user) for s in left_out),
    )


def drain_section(reports: Sequence[NodeReport], outcome: RailsOutcome | None, profile: Profile) -> Drain:
    """Drain every node the run's defects name; the ``drain`` section that says what was done."""
    faults: list[drain.NodeFault] = []
    skipped: list[str] = []
    for report in reports:
        found, settings = drain.check_faults(report.node, report.results, profile.actions)
        faults += found
        skipped += settings
    if outcome is not None:
        gpu = outcome.intra_node.defects if outcome.intra_node is not None else ()
        found, above = drain.defect_faults(outcome.defects, gpu)
        faults += found
        skipped += above
    return drain.drain_and_say(faults, skipped)
