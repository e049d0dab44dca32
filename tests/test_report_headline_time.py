"""The certificate's headline says how long the user waited, and what that time runs from, with the ranks' own
time beside it (issue 43: a 10 s accept said "0 s": started_utc to finished_utc is the world's set-up to the
verdict, without the launch, the ranks' set-up and the report). The times come from run.json as a run writes it:
rails' and accept's phase laps from rank 0's process start (``plan.measured_s``) and the finish step's
``finish_s``."""

from __future__ import annotations

from bench.report.summary import headline
from bench.rundir.runjson import RunDoc
from bench.rundir.sections import PlanSection


def _run(command: str, finished_utc: str = "2026-11-25T19:49:50Z", **fields: object) -> RunDoc:
    return RunDoc(
        format_version=1,
        tool="railbench",
        version="0.1.0",
        command=command,
        cluster="lab",
        profile="lambda-1cc",
        started_utc="2026-11-25T19:49:50Z",
        status="complete",
        finished_utc=finished_utc,
        nnodes=1,
        nranks=2,
        **fields,  # type: ignore[arg-type]
    )


def test_accept_says_the_wait_from_rank_0s_start_to_the_report_and_the_ranks_time_beside_it() -> None:
    said = headline(_run("accept", plan=PlanSection(measured_s=5.74), finish_s=1.027))
    assert said == (
        "accept on 1 node (2 ranks), profile lambda-1cc, 7 s from rank 0's start to the report "
        "(0 s from the world's set-up to the verdict), finished 2026-11-25 19:49 UTC"
    )


def test_a_run_without_phase_laps_says_where_its_time_starts() -> None:
    said = headline(_run("run", finish_s=64.4, finished_utc="2026-11-25T19:50:52Z"))
    assert "2 min 6 s from the world's set-up to the report" in said
    # an import, which ran elsewhere, has no finish step of its own here: the ranks' time, said as such
    assert "1 min 2 s from the world's set-up to the verdict" in headline(
        _run("import", finished_utc="2026-11-25T19:50:52Z")
    )


def test_a_run_railbench_launched_says_the_wait_from_the_launchers_start() -> None:
    """The launcher's start (``launched_utc``, before mpirun and the ranks' own start) is where the user's wait
    began: the headline runs from it, and says so."""
    said = headline(
        _run("accept", launched_utc="2026-11-25T19:49:41Z", plan=PlanSection(measured_s=5.74), finish_s=1.027)
    )
    assert said == (
        "accept on 1 node (2 ranks), profile lambda-1cc, 10 s from railbench accept's start to the report "
        "(0 s from the world's set-up to the verdict), finished 2026-11-25 19:49 UTC"
    )
