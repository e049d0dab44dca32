"""The namespace testbed refuses a size this machine's ARP table cannot hold (one table for every namespace), before
it builds anything: past it the kernel sends nothing to a peer it has no entry for, and a healthy testbed of 32
nodes was named full of dead links."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.testbeds import netns_testbed


def test_the_testbed_refuses_more_neighbours_than_the_table_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = tmp_path / "gc_thresh3"
    limit.write_text("1024\n")
    monkeypatch.setattr(netns_testbed, "NEIGHBOUR_LIMIT", limit)
    assert netns_testbed.neighbours_needed(32, 1) == 32 * 31 * 2 + 32 > 1024
    with pytest.raises(ValueError, match=r"need 2016 ARP entries .* holds 1024: raise it \(sysctl -w"):
        netns_testbed._check_neighbour_table(32, 1)
    netns_testbed._check_neighbour_table(8, 2)  # the test suite's largest sizes fit with room to spare
    limit.write_text("4096\n")
    netns_testbed._check_neighbour_table(32, 1)
