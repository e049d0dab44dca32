"""A node's neighbour (ARP) table too small for the run refuses the run before anything is measured: it never reads
as dead links (``bench.rails.measurement.neighbours``).

Past ``net.ipv4.neigh.default.gc_thresh3`` the kernel logs ``neighbor table overflow`` and sends nothing to a peer it
has no entry for (kubernetes/kops#4533, sonic-net/sonic-buildimage#2189); on the namespace testbed a healthy 32-node
cluster that needed 2016 entries against 1024 was named full of dead links (4dbf60e). Each node's limit is read from a
``proc`` tree beside its stand-in ``/sys`` here, never from this machine's kernel.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import sysroot
from bench.rails.measurement.neighbours import (
    GC_THRESH3,
    ShortTable,
    entries_needed,
    refusal,
    short_tables,
    table_limit,
)
from tests.support.testbeds.netns_testbed import PROFILE, build_cluster


def node_tree(base: Path, host: str, limit: str | None) -> Path:
    """``base/host/sys`` (empty: the stand-in) and, where ``limit`` is given, ``base/host/proc``'s gc_thresh3."""
    sys_root = base / host / "sys"
    sys_root.mkdir(parents=True)
    if limit is not None:
        path = sys_root.parent.joinpath("proc", *GC_THRESH3)
        path.parent.mkdir(parents=True)
        path.write_text(limit)
    return sys_root


def test_the_entries_one_node_needs() -> None:
    # The brief's figures: 64 x 8 fits the default 1024, 1024 x 8 needs eight times more; 32 x 1 is the testbed's.
    assert entries_needed(64, 8) == 63 * 8 + 63 == 567
    assert entries_needed(1024, 8) == 1023 * 8 + 1023 == 9207
    assert entries_needed(32, 1) == 62
    assert entries_needed(1, 8) == 0  # a single node talks to no peer: no rail group is made


@settings(max_examples=30, deadline=None)
@given(nodes=st.integers(2, 4096), rails=st.integers(1, 16))
def test_every_peer_on_every_rail_and_the_management_network_is_counted(nodes: int, rails: int) -> None:
    needed = entries_needed(nodes, rails)
    assert needed == (nodes - 1) * rails + (nodes - 1)
    assert entries_needed(nodes + 1, rails) > needed and entries_needed(nodes, rails + 1) > needed


def test_the_limit_is_read_beside_the_stand_in_never_from_this_machine(tmp_path: Path) -> None:
    assert sysroot.proc_root(sysroot.LIVE) == Path("/proc")
    assert sysroot.proc_root(tmp_path / "n1" / "sys") == tmp_path / "n1" / "proc"
    assert table_limit(node_tree(tmp_path, "n1", "1024\n")) == 1024
    assert table_limit(node_tree(tmp_path, "n2", None)) is None  # no proc beside it: not known, not judged
    assert table_limit(node_tree(tmp_path, "n3", "lots")) is None
    assert table_limit(node_tree(tmp_path, "n4", "-1")) is None


def test_a_short_table_refuses_the_run_with_each_node_its_limit_the_need_and_the_sysctl(tmp_path: Path) -> None:
    limits = {"n01": "1024", "n02": "8192", "n03": None, "n04": "4096"}
    read = [(host, table_limit(node_tree(tmp_path, host, limit))) for host, limit in limits.items()]
    needed = entries_needed(1024, 8)
    short = short_tables([*read, ("n01", 1024)], needed)  # a node's every rank may post: named once
    assert short == [ShortTable("n01", 1024), ShortTable("n02", 8192), ShortTable("n04", 4096)]
    line = refusal(short, needed, 1024, 8)
    assert line is not None and "\n" not in line
    assert line.startswith("neighbour (ARP) table too small on n01 (holds 1024), n02 (holds 8192), n04 (holds 4096):")
    assert "needs 9207 entries at once on every node (1023 peers x 8 socket rails + 1023 on the management" in line
    assert "'sysctl -w net.ipv4.neigh.default.gc_thresh3=18414' on every node and persist it in /etc/sysctl.d" in line
    assert "n03" not in line and "dead" in line  # says why, names nothing dead


def test_tables_large_enough_or_unknown_change_nothing() -> None:
    needed = entries_needed(64, 8)
    assert short_tables([("a", 1024), ("b", needed), ("c", None)], needed) == []
    assert refusal([], needed, 64, 8) is None


def test_many_short_nodes_are_counted_past_the_named(tmp_path: Path) -> None:
    short = [ShortTable(f"n{i:04d}", 1024) for i in range(1023)]
    line = refusal(short, entries_needed(1024, 8), 1024, 8)
    assert line is not None and "n0007 (holds 1024) and 1015 more:" in line and "n0008" not in line


@pytest.mark.netns
@pytest.mark.mpi
@pytest.mark.slow
def test_real_ranks_refuse_a_node_short_of_entries_and_name_no_link(tmp_path: Path) -> None:
    """2 nodes x 1 rail of the namespace testbed, each on a stand-in that is its own live ``/sys`` (a link) with a
    ``proc`` beside it: node02's table holds 1 entry where the run needs 2. The run stops before run.json, rails.json
    or junit.xml exist, exit 2, with one line that names node02 and its limit, and no link at all."""
    with build_cluster(nodes=2, rails=1) as bed:
        (bed.workdir / "netns.toml").write_text(PROFILE)
        for host, limit in (("node01", "1024"), ("node02", "1")):
            proc = tmp_path.joinpath("trees", host, "proc", *GC_THRESH3)
            proc.parent.mkdir(parents=True)
            proc.write_text(f"{limit}\n")
            (tmp_path / "trees" / host / "sys").symlink_to("/sys")  # each namespace's own sysfs
        out = tmp_path / "run"
        argv = [sys.executable, "-m", "bench", "rails", "--profile", str(bed.workdir / "netns.toml")]
        argv += ["--sysfs-root", f"{tmp_path}/trees/{{host}}/sys", "--out", str(out), "--no-history"]
        done = bed.run(1, [*argv, "--timeout", "60"], timeout=180)
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    errors = [line for line in said.splitlines() if line.startswith("railbench: error:")]
    assert errors == [f"railbench: error: {refusal([ShortTable('node02', 1)], entries_needed(2, 1), 2, 1)}"], said
    assert not any((out / name).exists() for name in ("run.json", "rails.json", "junit.xml", "results.csv")), said
    assert "dead" not in said.replace(errors[0], "")
