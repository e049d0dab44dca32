"""The testbed's switch layer (issue 23): 4 nodes x 2 rails in 2 units, a leaf per rail per unit, a spine per rail.

Two runs with the cabling (``rails --topology``), one a test, each on a bed of its own: the second unit's rail-0 leaf
shaped (every port of it) is named as that leaf; the first unit's rail-1 uplink shaped is named as the uplinks between
the two rail-1 leaves (two units: either leaf's uplink carries every slow flow). One fault a run: on 4 nodes a leaf
slows 5 of its rail's 6 pairs, and with a second fault on the other rail too few healthy pairs would be left to say
what healthy is. The campaign with and without the cabling, clean runs included, is ``ci/diagnosis_campaign.py
--units 2``.

Two tests, not one with both runs (141-163 s on the 2-core CI machine, the longest of the suite): the uplink's run (its
quiet pass and flows measured alone, 87-95 s; the leaf's 53-65 s) runs on the other testbed worker (``SECOND_TESTBED``,
tests/conftest.py), so that neither testbed worker alone holds up the suite.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.rails_pairs import pair_directions
from tests.support.testbeds import SECOND_TESTBED
from tests.support.testbeds.netns_testbed import SHAPED_PAIRS_PROFILE, NetnsCluster, build_cluster

pytestmark = [pytest.mark.netns, pytest.mark.mpi, pytest.mark.slow]

SHAPED_MBIT = 150
# 1 MiB rail-group cells and 16 MiB pairs (SHAPED_PAIRS_PROFILE says why). Each leaf has one pair inside its unit:
# at 4 MiB, one slow read of it under the suite's load beside a shaped uplink named that leaf instead.


def _samples(doc: dict, rail: int) -> list[tuple[str, str, float, int]]:
    """The rail's pair samples (node, peer, Gb/s, confirmation pass), for a failure's message: which healthy pair
    read slow."""
    return [(m["node"], m["peer"], m["busbw_Gbps"], m["confirm"]) for m in pair_directions(doc) if m["rail"] == rail]


def _run_with_the_cabling(tmp_path: Path, inject: Callable[[NetnsCluster], None]) -> dict:
    """One ``rails --topology`` run on a 4-node x 2-rail bed of 2 units with one fault injected; its rails.json."""
    with build_cluster(nodes=4, rails=2, units=2) as bed:
        profile, topology = bed.workdir / "netns.toml", bed.workdir / "topology.toml"
        profile.write_text(SHAPED_PAIRS_PROFILE)
        topology.write_text(bed.topology_toml())
        argv = [sys.executable, "-m", "bench", "rails", "--profile", str(profile), "--topology", str(topology)]
        inject(bed)
        done = bed.run(2, [*argv, "--out", str(tmp_path), "--no-history"], timeout=600)
        assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
        return json.loads((tmp_path / "rails.json").read_text())


def test_a_shaped_leaf_is_named_with_the_cabling(tmp_path: Path) -> None:
    found = _run_with_the_cabling(tmp_path, lambda bed: bed.shape_leaf(1, 0, SHAPED_MBIT))
    leaf = [(d["kind"], d["switches"], d["rail"]) for d in found["defects"]]
    assert leaf == [("leaf", ["leaf-u2-r0"], 0)], _samples(found, 0)


@pytest.mark.xdist_group(SECOND_TESTBED)
def test_a_shaped_uplink_is_named_with_the_cabling(tmp_path: Path) -> None:
    found = _run_with_the_cabling(tmp_path, lambda bed: bed.shape_uplink(0, 1, SHAPED_MBIT))
    (uplink,) = found["defects"]
    named = (uplink["kind"], uplink["switches"], uplink["rail"])
    assert named == ("uplink", ["leaf-u1-r1", "leaf-u2-r1"], 1), _samples(found, 1)
    assert uplink["action"] == (
        "check the uplinks leaf-u1-r1 port 3 <-> spine-r1 port 1; leaf-u2-r1 port 3 <-> spine-r1 port 2"
    )
    # The uplink's flows read low one per leaf (the quiet pass, after the 2 confirmation passes) and were measured
    # alone again, twice, then held low twice more: every rank ran the rounds rank 0 sent at each stage
    # (bench.rails.diagnosis.alone).
    passes = {m["confirm"] for m in pair_directions(found) if m["rail"] == 1}
    assert set(range(3, 8)) <= passes, _samples(found, 1)
    run = json.loads((tmp_path / "run.json").read_text())
    phases = {p["name"]: p for p in run["plan"]["phases"]}
    assert phases["pair matrix"]["rounds"] == 3 and phases["pair matrix"]["measured_s"] > 0
