"""The pair matrix at many nodes (``bench.report.matrices``): which view it draws (each node, the cabling's units,
or blocks of host order), a pair the schedule never ran drawn as absent rather than failed, and the unit that holds
a named part drawn again node by node. Small runs keep their node x node matrix whatever rails.json says of units."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from bench.report import data, matrices
from bench.report.build import ReportOptions, write_report
from bench.report.matrices import matrix_groups, unit_drilldowns
from bench.rundir.railsdoc import RailsDoc
from tests.support.report_data import ClusterModel, rails_doc, rails_json, write_run_dir

HOSTS = tuple(f"n{i:02d}" for i in range(1, 13))
UNITS = (HOSTS[:4], HOSTS[4:8], HOSTS[8:])


def test_up_to_max_nodes_each_node_is_its_own_row_whatever_the_units() -> None:
    groups = matrix_groups(HOSTS, 12, UNITS)
    assert groups.kind == "node" and not groups.grouped and groups.labels == HOSTS and groups.note() == ""


def test_above_max_nodes_the_units_of_the_cabling_are_the_rows() -> None:
    groups = matrix_groups(HOSTS, 4, UNITS)
    assert groups.kind == "unit" and groups.members == UNITS
    assert groups.labels == ("unit 1", "unit 2", "unit 3")
    assert groups.note() == "3 units of the cabling, worst pair per pair of units"


@pytest.mark.parametrize(
    "units",
    [
        (),  # no cabling
        (HOSTS[:4], HOSTS[4:8]),  # a node in no unit
        tuple((h,) for h in HOSTS),  # more units than rows
    ],
)
def test_without_units_that_fit_blocks_of_host_order_as_before(units: tuple[tuple[str, ...], ...]) -> None:
    groups = matrix_groups(HOSTS, 5, units)
    assert groups.kind == "block" and groups.members == (HOSTS[:3], HOSTS[3:6], HOSTS[6:9], HOSTS[9:])
    assert groups.labels[1] == "n04 +2" and groups.note() == "blocks of 3 nodes, worst pair per block"


def _run(units: tuple[tuple[str, ...], ...]) -> tuple[pd.DataFrame, RailsDoc]:
    """A 12-node, 2-rail run whose schedule measured every pair inside each unit and one pair across units; n06's
    HCA on rail 1 is slow and named."""
    rails = dataclasses.replace(rails_doc(ClusterModel(hosts=HOSTS, rails=2, bad=("n06", 1))), units=units)
    pairs = data._rail_measurements(rails, "pair")
    same_unit = [any({a, b} <= set(u) for u in UNITS) for a, b in zip(pairs["node"], pairs["peer"], strict=True)]
    across = pairs["node"].isin(["n01", "n12"]) & pairs["peer"].isin(["n01", "n12"])
    return pairs[pd.Series(same_unit, index=pairs.index) | across].reset_index(drop=True), rails


def test_a_pair_never_scheduled_is_absent_not_failed() -> None:
    pairs, rails = _run(UNITS)
    table = matrices.pair_matrix_table(pairs, HOSTS, 0.9, max_nodes=4, rails=rails).frame
    cells = {(p, r, c) for p, r, c in zip(table["panel_order"], table["row_index"], table["col_index"], strict=True)}
    # per rail: the three units' own blocks and the one measured pair across (unit 1 x unit 3); nothing else
    assert cells == {(rail, r, c) for rail in (0, 1) for r, c in ((0, 0), (1, 1), (2, 2), (0, 2))}
    slow = table[table["mark"] == "slow"]
    assert set(zip(slow["panel_order"], slow["row_index"], slow["col_index"], strict=True)) == {(1, 1, 1)}
    assert set(table["row"]) == {"unit 1", "unit 2", "unit 3"}


def test_the_unit_holding_a_named_part_is_drawn_node_by_node() -> None:
    pairs, rails = _run(UNITS)
    ((label, table),) = unit_drilldowns(pairs, HOSTS, 0.9, 4, rails)
    assert label == "unit 2 (n05-n08)" and table.note == ""
    assert set(table.frame["row"]) | set(table.frame["col"]) == set(UNITS[1])
    slow = table.frame[table.frame["mark"] == "slow"]
    assert set(slow["panel_order"]) == {1} and all(
        "n06" in (r, c) for r, c in zip(slow["row"], slow["col"], strict=True)
    )
    assert unit_drilldowns(pairs, HOSTS, 0.9, 12, rails) == []  # node by node already: nothing to drill into


def test_a_small_run_draws_the_same_matrix_with_or_without_units() -> None:
    pairs, rails = _run(UNITS)
    plain = matrices.pair_matrix_table(pairs, HOSTS, 0.9, rails=dataclasses.replace(rails, units=()))
    assert matrices.pair_matrix_table(pairs, HOSTS, 0.9, rails=rails).frame.equals(plain.frame)


def test_the_report_draws_the_unit_matrix_and_the_named_unit_node_by_node(tmp_path: Path) -> None:
    model = ClusterModel(hosts=HOSTS, rails=2, bad=("n06", 1), intra_node=False)
    run_dir = write_run_dir(tmp_path / "run", model, rails=False, checks=False, trend=False)
    doc = rails_json(model) | {"units": [list(u) for u in UNITS]}
    (run_dir / "rails.json").write_text(json.dumps(doc), encoding="utf-8")
    paths = write_report(run_dir, options=ReportOptions(images=False, max_nodes=4))
    assert [c.name for c in paths.charts if c.name.startswith("pairs")] == ["pairs", "pairs-unit-2"]
    markdown = paths.report_md.read_text(encoding="utf-8")
    assert "### Unit 2 (n05-n08), node by node" in markdown
    assert "Unit 2 (n05-n08): node × node bus bandwidth per rail" in markdown
    assert "3 units of the cabling, worst pair per pair of units" in markdown
