"""The post-mortem of a communicator that failed mid-measurement (``bench.frame.postmortem``), without ranks: the
posts its failed ranks make from their own NCCL logs, the link they name, run.json's ``failure``, and the
parent's reading of a run directory that says so. The ranks themselves: tests/test_rails_link_dies_model.py."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bench import codec
from bench.exits import EXIT_FAIL
from bench.frame.postmortem import LinkErrors, failure_of, named_links, own_link_errors
from bench.rundir.runjson import RunFile, new_record
from bench.runtime.launch import exit_status_from_run_dir
from bench.runtime.launcher_output import LauncherOutput
from bench.runtime.launcher_watch import Ended

STEP = "all_reduce in every rail group at once"


def _running(out: Path) -> RunFile:
    record = new_record(
        format_version=1,
        tool="railbench",
        version="0",
        command="rails",
        cluster="c",
        profile="lambda-1cc",
        started_utc="2026-01-01T00:00:00Z",
        status="running",
    )
    return RunFile(out, record)


def _log(host: str, me: int, peers: tuple[int, ...], hca: str) -> str:
    """One rank's NCCL log in NCCL's own words: NET/IB's device list with the OOB address, then net_ib's
    completion WARN for each peer whose retries ran out."""
    lines = [f"{host}:7:7 [1] NCCL INFO NET/IB : Using [0]mlx5_1:1/IB [1]{hca}:1/IB ; OOB eth0:10.1.0.{me}<0>"]
    lines += [
        f"{host}:7:9 [1] transport/net_ib.cc:1696 NCCL WARN NET/IB : Got completion from peer 10.1.0.{p}<50532> "
        f"with status=12 opcode=0 len=0 vendor err 129 (Recv) localGid ::ffff:10.1.0.{me} "
        f"remoteGids::ffff:10.1.0.{p} hca {hca}"
        for p in peers
    ]
    return "\n".join(lines) + "\n"


def _post(tmp_path: Path, rank: int, host: str, me: int, peers: tuple[int, ...], hca: str = "mlx5_2") -> LinkErrors:
    (tmp_path / "nccl").mkdir(exist_ok=True)
    (tmp_path / "nccl" / f"{host}-{rank}.log").write_text(_log(host, me, peers, hca))
    return own_link_errors(tmp_path, host, rank, STEP, RuntimeError("NET/IB: retry exceeded\nmore"))


def test_a_ranks_post_is_what_its_own_log_says_and_travels_as_json(tmp_path: Path) -> None:
    post = _post(tmp_path, 3, "node1", 2, (1, 3))
    assert (post.oob, post.peers, post.hcas) == (("10.1.0.2",), ("10.1.0.1", "10.1.0.3"), ("mlx5_2",))
    assert post.cause == "RuntimeError: NET/IB: retry exceeded" and post.step == STEP
    assert LinkErrors.from_json(post.to_json()) == post
    # A rank without a log (gloo, or NCCL_DEBUG_FILE set elsewhere by the site) posts its cause alone.
    bare = own_link_errors(tmp_path, "node9", 17, STEP, RuntimeError(""))
    assert (bare.oob, bare.peers, bare.cause) == ((), (), "RuntimeError: no message")


def test_the_end_most_hosts_lost_is_named_with_its_hca_and_an_action(tmp_path: Path) -> None:
    posts = [
        _post(tmp_path, 1, "node0", 1, (2,)),
        _post(tmp_path, 3, "node1", 2, (1, 3)),
        _post(tmp_path, 5, "node2", 3, (2,)),
    ]
    (link,) = named_links(posts)
    failure = failure_of([link], posts)
    assert failure["kind"] == "link-died" and failure["step"] == STEP and failure["hosts"] == ["node1"]
    assert failure["links"] == [[{"host": "node1", "device": "mlx5_2", "address": "10.1.0.2"}]]
    assert failure["message"] == (
        f"node1 (10.1.0.2, mlx5_2): its link died: NCCL on node0, node2 got completion errors from it (during {STEP})"
    )
    assert str(failure["action"]).startswith("check node1 mlx5_2's port") and failure["reported_by"] == [1, 3, 5]


def test_a_pair_whose_ends_name_only_each_other_is_named_as_the_pair(tmp_path: Path) -> None:
    posts = [_post(tmp_path, 2, "node1", 2, (3,), "mlx5_1"), _post(tmp_path, 4, "node2", 3, (2,), "mlx5_1")]
    (link,) = named_links(posts)
    failure = failure_of([link], posts)
    assert failure["hosts"] == ["node1", "node2"] and len(failure["links"][0]) == 2  # type: ignore[index]
    assert str(failure["message"]).startswith("the link between node1 (10.1.0.2, mlx5_1) and node2 (10.1.0.3, ")


def test_posts_that_name_no_peer_name_nothing(tmp_path: Path) -> None:
    posts = [_post(tmp_path, 1, "node0", 1, ()), _post(tmp_path, 3, "node1", 2, ())]
    assert named_links(posts) == []


def test_an_end_that_did_not_post_is_not_named_a_link(tmp_path: Path) -> None:
    # node1's process crashed: its peers' logs name it as a dead link would, but it posted nothing of its own
    # (or posted no completion error), so nothing says its link died: the run ends as a lost rank instead.
    peers = [_post(tmp_path, 1, "node0", 1, (2,)), _post(tmp_path, 5, "node2", 3, (2,))]
    assert named_links(peers) == []
    assert named_links([*peers, _post(tmp_path, 3, "node1", 2, ())]) == []


def test_the_parent_keeps_the_named_link_when_the_launcher_reports_the_ranks_it_then_lost(tmp_path: Path) -> None:
    # The ranks ended the run with the link named (exit 1); mpirun then reports the ranks it stopped.
    posts = [
        _post(tmp_path, 1, "node0", 1, (2,)),
        _post(tmp_path, 3, "node1", 2, (1,)),
        _post(tmp_path, 5, "x", 3, (2,)),
    ]
    failure = failure_of(named_links(posts), posts)
    run = _running(tmp_path)
    run.update(status="failed", verdict="fail", exit_status=EXIT_FAIL, reasons=[failure["message"]], failure=failure)
    output = LauncherOutput(io.StringIO())
    for line in ("-" * 30, "process rank 2 with PID 99 on node node1 exited on signal 15 (Terminated).", "-" * 30):
        output.feed(line + "\n")
    assert output.lost_ranks(), output.boxes
    assert exit_status_from_run_dir(tmp_path, Ended(rc=1), output) == EXIT_FAIL
    kept = RunFile.load(tmp_path)
    assert codec.encode(kept.record.failure) == failure and kept.record.verdict == "fail"


@pytest.mark.parametrize("kind", ["lost-rank", None])
def test_without_a_named_link_the_launchers_lost_rank_is_the_failure(tmp_path: Path, kind: str | None) -> None:
    run = _running(tmp_path)
    if kind:
        run.update(status="failed", verdict="error", exit_status=3, failure={"kind": kind, "message": "m"})
    output = LauncherOutput(io.StringIO())
    for line in ("-" * 30, "process rank 2 with PID 99 on node node1 exited on signal 9 (Killed).", "-" * 30):
        output.feed(line + "\n")
    with pytest.raises(Exception, match="rank 2 on node1 was killed by signal 9"):
        exit_status_from_run_dir(tmp_path, Ended(rc=1), output)
