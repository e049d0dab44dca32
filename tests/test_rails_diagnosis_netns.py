"""Issue 13 on the namespace cluster: a dead-slow link costs its budget, not the run; the campaign's slice.

A link shaped to about 1% of its peers' rate must not stall the rails test: its cells stop at their
budget and the run names exactly that link. The campaign (``ci/diagnosis_campaign.py``) runs here in a small
slice: one clean run, one shaped link and one slow local rank (its CPU capped through the cpu cgroup) on
3 nodes x 2 rails.

Wall-time ratios and rate accuracy are targets, and targets are shown by the campaign script, which prints
them (a shaped run within twice a clean one, the named rate within 15% of the token rate), not asserted here:
this machine is shared and noisy. The tests keep bounds that only a stall or a timing bug would break.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.rails_pairs import pair_directions
from tests.support.testbeds import SECOND_TESTBED
from tests.support.testbeds.netns_testbed import SHAPED_PAIRS_PROFILE, NetnsCluster, build_cluster

# On the Slurm cluster's testbed worker, beside its tests: the other testbed worker has the most to run.
pytestmark = [pytest.mark.netns, pytest.mark.mpi, pytest.mark.slow, pytest.mark.xdist_group(SECOND_TESTBED)]

REPO = Path(__file__).resolve().parent.parent
ONE_PERCENT_MBIT = 50.0
"""About 1% of what a healthy veth pair carries here (2-10 Gb/s at any load, the testbed profile's [plan]): 0.5-2.5%."""


@pytest.fixture(scope="module")
def bed() -> Iterator[NetnsCluster]:
    with build_cluster(nodes=4, rails=2) as built:
        (built.workdir / "netns.toml").write_text(SHAPED_PAIRS_PROFILE)
        yield built


def _rails(bed: NetnsCluster, out: Path) -> dict:
    done = bed.run(
        2,
        [
            sys.executable,
            "-m",
            "bench",
            "rails",
            "--profile",
            str(bed.workdir / "netns.toml"),
            "--out",
            str(out),
            "--no-history",
            "--timeout",
            "120",
        ],
        timeout=400,
    )
    assert (out / "rails.json").is_file(), done.stdout + done.stderr
    return json.loads((out / "rails.json").read_text())


def test_a_link_at_one_percent_of_its_peers_does_not_stall_the_run(bed: NetnsCluster, tmp_path: Path) -> None:
    # The peers' rate is known well enough without a clean run of its own (the campaign slice below runs one).
    # Unbudgeted, each of the link's 16 MiB cells would take about 11 s, 100 times a healthy one: they stop.
    bed.clear_faults()
    try:
        bed.shape("node03", 1, ONE_PERCENT_MBIT)
        shaped = _rails(bed, tmp_path / "shaped")
    finally:
        bed.clear_faults()
    assert [(d["kind"], d["node"], d["rail"]) for d in shaped["defects"]] == [("link", "node03", 1)]
    on_link = [m for m in pair_directions(shaped) if m["rail"] == 1 and "node03" in (m["node"], m["peer"])]
    assert on_link and any(m["stopped"] for m in on_link), on_link
    healthy = [m["busbw_Gbps"] for m in pair_directions(shaped) if m not in on_link]
    assert min(healthy) * 1000 > 10 * ONE_PERCENT_MBIT, healthy  # the shaped rate is under 10% of every peer's


def test_the_campaign_slice_names_the_shaped_link_the_slow_rank_and_nothing_on_a_clean_run(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the campaign needs root (namespaces)")
    report = tmp_path / "runs.json"
    # 16 MiB pairs, as the testbed's PROFILE (tests/support/testbeds/netns_testbed.py) says why: under the whole
    # suite's load a healthy 4 MiB cell (a few ms, a few of the scheduler's slices) read down to 0.23 of its rail's
    # median, under the profile's 0.35 cut, and this test named a healthy pair. The slowed rank is capped before its
    # first pair round (ci/diagnosis_campaign.py's ``throttled``), so a longer cell does not finish half-capped.
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "ci/diagnosis_campaign.py"),
            "--nodes",
            "3",
            "--rails",
            "2",
            "--pair-bytes",
            "16M",
            "--iters",
            "3",
            "--repeats",
            "1",
            "--kinds",
            "shaped-link,slow-rank",
            "--json",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = {r["kind"]: r for r in json.loads(report.read_text())}
    assert runs["clean"]["named"] == [] and runs["shaped-link"]["exact"]
    # The slowed rank is local rank 0 of node02: its rail-0 pairs are slow with every partner, a link.
    slow_rank = runs["slow-rank"]
    if slow_rank["note"].startswith("skipped"):  # no cpu cgroup (v1) on this kernel
        assert "# exact match: 2/2 = 100%" in done.stdout
    else:
        assert slow_rank["named"] == [["link", "node02", 0]], slow_rank
        assert "# exact match: 3/3 = 100%" in done.stdout
    (named, token), *_ = runs["shaped-link"]["rates"]
    # The same order as the token rate (a timing bug reads many times off); the 15% target is the script's.
    assert 0.5 * token < named < 1.5 * token, (named, token)
