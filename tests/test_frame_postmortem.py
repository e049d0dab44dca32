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
WILD = Path(__file__).parent / "data" / "nccl_completion"
"""Real NCCL logs, one per wording of net_ib's completion WARN (its README says where each was posted)."""


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
    """One rank's NCCL log, written for these tests in NCCL 2.22-2.28.3's words (``src/transport/net_ib.cc``, the
    INFO line of ``ncclIbInit`` and the completion WARN of ``ncclIbTest``, 2.22.3 commit 178b6b75; real lines of
    every wording are in tests/data/nccl_completion/): NET/IB's device list with the OOB address, then a
    completion WARN for each peer whose retries ran out."""
    lines = [f"{host}:7:7 [1] NCCL INFO NET/IB : Using [0]mlx5_1:1/IB [1]{hca}:1/IB [RO]; OOB eth0:10.1.0.{me}<0>"]
    lines += [
        f"{host}:7:9 [1] transport/net_ib.cc:1986 NCCL WARN NET/IB: Got completion from peer 10.1.0.{p}<50532> "
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


def _own_post(
    tmp_path: Path, rank: int, host: str, lines: list[str], nic: str | None, addresses: tuple[str, ...]
) -> LinkErrors:
    """A rank's post from its own log (``lines``), its own NIC (the rails' ExpectedNic) and the addresses of the
    interface railbench set (``NCCL_SOCKET_IFNAME``), as ``bench.frame.run`` gives them."""
    (tmp_path / "nccl").mkdir(exist_ok=True)
    (tmp_path / "nccl" / f"{host}-{rank}.log").write_text("\n".join(lines) + "\n")
    error = RuntimeError("NCCL communicator was aborted")
    return own_link_errors(tmp_path, host, rank, STEP, error, nic=nic, addresses=addresses)


def test_nccl_2_18_wording_without_hca_names_the_link_from_each_ranks_own_nic(tmp_path: Path) -> None:
    # node-2's own log, NCCL 2.18.1 (wrapped as it was posted): "with error 12", no hca. Its peer 10.2.0.5 is a
    # node whose log was not posted: its line is written here in the same 2.18 wording.
    node2 = (WILD / "with-error-2.18.log").read_text().splitlines()
    node1 = [
        "node-1:4040:4088 [0] transport/net_ib.cc:1296 NCCL WARN NET/IB : Got completion from peer 10.2.0.4<41822> "
        "with error 12, opcode 0, len 0, vendor err 129 (Recv)"
    ]
    posts = [
        _own_post(tmp_path, 0, "node-2", node2, "ibP111p0s0:1", ("10.2.0.4",)),
        _own_post(tmp_path, 1, "node-1", node1, "ibP111p0s0:1", ("10.2.0.5",)),
    ]
    assert posts[0].peers == ("10.2.0.5",) and posts[0].hcas == ("ibP111p0s0:1",)
    (link,) = named_links(posts)
    failure = failure_of([link], posts)
    assert failure["links"] == [
        [
            {"host": "node-1", "device": "ibP111p0s0:1", "address": "10.2.0.5"},
            {"host": "node-2", "device": "ibP111p0s0:1", "address": "10.2.0.4"},
        ]
    ]
    assert str(failure["message"]).startswith("the link between node-1 (10.2.0.5, ibP111p0s0:1) and node-2 ")


def test_a_warn_only_log_names_the_link_from_the_interface_railbench_set(tmp_path: Path) -> None:
    # NCCL 2.30.4 at NCCL_DEBUG=WARN: no NET/IB OOB line, and the markdown damage left no host prefix either. Each
    # rank knows its own host and the addresses of the interface it set (ens16f1 in that post).
    lines = (WILD / "status-name-2.30-warn-only.log").read_text().splitlines()
    ranks = {
        pid: [line for line in lines if pid in line] for pid in ("ubuntu2:319733", "ubuntu4:250415", "ubuntu4:250414")
    }
    assert all(ranks.values())

    def posts(with_addresses: bool) -> list[LinkErrors]:
        mine = {"ubuntu2": ("10.153.235.11",), "ubuntu4": ("10.153.235.13",)}
        return [
            _own_post(
                tmp_path,
                rank,
                pid.split(":")[0],
                ranks[pid],
                "mlx5_0:1",
                mine[pid.split(":")[0]] if with_addresses else (),
            )
            for rank, pid in enumerate(ranks)
        ]

    (link,) = named_links(posts(True))
    ends = failure_of([link], posts(True))["links"]
    assert ends == [
        [
            {"host": "ubuntu2", "device": "mlx5_1", "address": "10.153.235.11"},  # NCCL 2.22+ names the HCA itself
            {"host": "ubuntu4", "device": "mlx5_0", "address": "10.153.235.13"},
        ]
    ]
    # Without the interface's addresses a WARN-only log cannot say whose address a peer's error names.
    assert named_links(posts(False)) == []


def test_a_local_status_names_the_reporting_hosts_hca_not_its_peer(tmp_path: Path) -> None:
    # NCCL 2.27.5, status 4 (IBV_WC_LOC_PROT_ERR) against peer 10.99.91.63: the HCA of tpgds-aihub0007 refused the
    # work. Its peer (a host of this test's own, at the address that log names) answers in the same 2.22+ wording
    # with retry exceeded toward tpgds-aihub0007: the same fault, named once.
    own = (WILD / "hca-2.27-local-status.log").read_text().splitlines()
    peer = [
        "peer-node:4242:4250 [3] transport/net_ib.cc:2453 NCCL WARN NET/IB: Got completion from peer "
        "10.99.91.59<40001> with status=12 opcode=1 len=0 vendor err 129 (Recv) localGid ::ffff:10.99.91.63 "
        "remoteGids::ffff:10.99.91.59 hca mlx5_3"
    ]
    posts = [
        _own_post(tmp_path, 1, "tpgds-aihub0007", own, "mlx5_1:1", ("10.99.91.59",)),
        _own_post(tmp_path, 9, "peer-node", peer, "mlx5_3:1", ("10.99.91.63",)),
    ]
    (link,) = named_links(posts)
    failure = failure_of([link], posts)
    assert failure["hosts"] == ["tpgds-aihub0007"]
    assert failure["links"] == [[{"host": "tpgds-aihub0007", "device": "mlx5_1", "address": "10.99.91.59"}]]
    assert "its own HCA failed NCCL's work (status 4 (IBV_WC_LOC_PROT_ERR), a local error)" in str(failure["message"])
    assert str(failure["action"]).startswith("check tpgds-aihub0007 mlx5_1 itself")
    # Alone, its own post names it the same way.
    (alone,) = named_links(posts[:1])
    assert alone.ends[0].host == "tpgds-aihub0007" and alone.local is not None


def test_an_address_two_hosts_claim_names_neither(tmp_path: Path) -> None:
    # Pretend nodes on one machine post the same interface address: it tells no host apart, so node-1's error
    # that names it names nobody.
    wild = (WILD / "with-error-2.18.log").read_text().splitlines()
    written = [
        "node-1:1:1 [0] NCCL WARN NET/IB : Got completion from peer 10.2.0.9<1> with error 12, opcode 0, len 0, "
        "vendor err 129 (Recv)"
    ]
    posts = [
        _own_post(tmp_path, 0, "node-2", wild, None, ("10.2.0.9",)),
        _own_post(tmp_path, 1, "node-1", written, None, ("10.2.0.9",)),
    ]
    assert named_links(posts) == []


def test_a_post_travels_as_json_with_its_completions(tmp_path: Path) -> None:
    post = _own_post(
        tmp_path,
        3,
        "tpgds-aihub0007",
        (WILD / "hca-2.27-local-status.log").read_text().splitlines(),
        "mlx5_1:1",
        ("10.0.0.7",),
    )
    assert LinkErrors.from_json(post.to_json()) == post and post.peers == () and post.completions[0].status == 4


@pytest.mark.slow  # rank 0 waits for the posts to settle (SETTLE_S)
def test_every_rank_reads_a_named_link_before_rank_0_leaves(tmp_path: Path) -> None:
    # Three failed ranks post; rank 2's communicator did not fail, so it waits in the next agreement and reads
    # the decision from its watchdog's thread. Rank 0 leaves only once all of them have it: a rank that lost
    # rank 0's store first would end as a lost rank (exit 3), and the launcher could report that before the FAIL.
    import threading

    import torch.distributed as dist

    from bench.frame.postmortem import Postmortem

    store = dist.HashStore()
    ends: list[tuple[int, int, str]] = []
    posts = {1: _post(tmp_path, 1, "node0", 1, (2,)), 3: _post(tmp_path, 3, "node1", 2, (1, 3))}
    posts[4] = _post(tmp_path, 4, "node2", 3, (2,))

    def mortem(rank: int) -> Postmortem:
        def own(step: str, error: BaseException) -> LinkErrors:
            return posts[rank]

        return Postmortem(store, rank, own, lambda s, e, f: ends.append((rank, e, s)), tmp_path, 5, wait_s=20.0)

    others = {rank: mortem(rank) for rank in (1, 2, 3, 4)}
    failed = [
        threading.Thread(target=lambda r=r: others[r].failed_here(STEP, RuntimeError("NET/IB: retry")))
        for r in (1, 3, 4)
    ]
    for thread in failed:
        thread.start()
    rank0 = mortem(0)
    while int(store.add("railbench/failed/count", 0)) < 3:
        threading.Event().wait(0.05)
    concluded = threading.Thread(target=lambda: rank0.decide(store))
    concluded.start()
    # rank 2 has not read the decision yet: rank 0 waits for it (up to HEARD_S)
    while not store.check(["railbench/failed/decided"]):
        threading.Event().wait(0.05)
    assert concluded.is_alive()
    others[2].watch(store)
    others[2].watch(store)  # a second tick counts nothing more
    concluded.join(timeout=10)
    for thread in failed:
        thread.join(timeout=10)
    assert not concluded.is_alive()
    assert int(store.add("railbench/failed/heard", 0)) == 4
    assert ends == [(0, EXIT_FAIL, "failed")]
    named = others[2].named
    assert named is not None and named.startswith("node1 (10.1.0.2, mlx5_2): its link died")
    # once rank 0's store is gone, rank 2's failed agreement ends as the run's FAIL, without a post of its own
    assert others[2].failed_here(STEP, RuntimeError("Connection reset by peer")) == named
