"""rails.json's pair matrix in columns (``bench.rundir.pair_cells``, format 3): what the writer writes reads back as
the same record, each link's aggregate counts what its directions say, a damaged column is refused in one line
naming it, and the report reads the columns into exactly the frames it read from one object per direction
(format 2), so a run directory of either format draws the same matrix."""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.exits import UserError
from bench.rails import documents
from bench.rails.diagnosis.matrix import PairTime
from bench.rails.diagnosis.rails_outcome import busbw_Gbps
from bench.report import data, matrices
from bench.rundir.files import atomic_write_json
from bench.rundir.pair_cells import COLUMNS, LinkLevels, PairCells
from bench.rundir.railsdoc import SCHEMA_PATH, Measurement, RailsDoc, read_rails_doc

NODES = ("node01", "node02", "node03", "node04")
DEVICES = {(n, r): f"mlx5_{r + 1}" for n in NODES[:3] for r in range(2)}  # node04's device not known
EXPECTED: dict[int, float | None] = {0: 400.0, 1: None}


def _times() -> list[PairTime]:
    """Both directions of every pair on two rails, node03 slow on rail 0, one cell stopped, one re-measured."""
    out = []
    pairs = [(a, b) for a in range(4) for b in range(a + 1, 4)]
    for number, (a, b) in enumerate(pairs):
        for rail in range(2):
            rate = 100.0 if rail == 0 and 2 in (a, b) else 380.0 + a + b
            for node, peer in ((a, b), (b, a)):
                nbytes = 1 << 26
                out.append(PairTime(node, peer, rail, 0, number // 2, nbytes, nbytes * 8 / (rate * 1e3), number == 3))
    out.append(PairTime(0, 2, 0, 0, 9, 1 << 26, (1 << 26) * 8 / (110.0 * 1e3), confirm=1))
    return out


def _v2(times: list[PairTime]) -> RailsDoc:
    """The same pairs as format 2 wrote them: one object per direction in ``measurements``."""
    return RailsDoc(
        nodes=NODES,
        measurements=tuple(
            Measurement(
                kind="pair",
                rail=t.rail,
                node=NODES[t.node],
                peer=NODES[t.peer],
                device=DEVICES.get((NODES[t.node], t.rail)),
                collective="sendrecv",
                busbw_Gbps=round(busbw_Gbps(t.nbytes, t.time_us), 6),
                expected_Gbps=EXPECTED.get(t.rail),
                bytes=t.nbytes,
                time_us=round(t.time_us, 3),
                round=t.round,
                confirm=t.confirm,
                stopped=t.stopped,
            )
            for t in times
        ),
    )


def _v3(times: list[PairTime], pass_fraction: float | None = 0.9) -> RailsDoc:
    cells = documents.pair_cells(times, NODES, EXPECTED, DEVICES)
    return RailsDoc(nodes=NODES, pair_cells=cells, link_levels=documents.link_levels(cells, pass_fraction))


def test_the_columns_read_back_as_the_record_written_one_line_each(tmp_path: Path) -> None:
    doc = dataclasses.replace(_v3(_times()), units=(NODES[:2], NODES[2:]))
    atomic_write_json(tmp_path / "rails.json", doc.to_json(), COLUMNS)
    text = (tmp_path / "rails.json").read_text()
    assert '    "busbw_Gbps": [' in text and len(text.splitlines()) < 80  # a column is one line, not one per number
    written = json.loads(text)
    jsonschema.validate(written, json.loads(SCHEMA_PATH.read_text()))
    again = read_rails_doc(tmp_path)
    assert again == doc and isinstance(again.pair_cells, PairCells)
    cells = again.pair_cells
    assert cells.rows == len(_times()) and cells.stopped == (12, 13, 14, 15) and cells.confirm[-1] == 1
    assert cells.device(0, 3) is None and cells.device(1, 0) == "mlx5_2" and cells.expected(1) is None


def test_the_report_reads_either_format_into_the_same_frames() -> None:
    old, new = _v2(_times()), _v3(_times())
    pd.testing.assert_frame_equal(data._rail_measurements(old, "pair"), data._rail_measurements(new, "pair"))
    pd.testing.assert_frame_equal(data.node_rail_levels(old), data.node_rail_levels(new))
    pairs = data._rail_measurements(new, "pair")
    for rails in (old, new):
        table = matrices.pair_matrix_table(pairs, NODES, 0.9, rails=rails).frame
        assert table.equals(matrices.pair_matrix_table(pairs, NODES, 0.9, rails=old).frame)


def test_each_link_says_its_partners_median_minimum_and_directions_under_the_pass_line() -> None:
    levels = _v3(_times()).link_levels
    assert isinstance(levels, LinkLevels) and levels.rows == 8  # 4 nodes x 2 rails, rail then node
    row = list(zip(levels.rail, levels.node, strict=True)).index((0, 2))
    # node03 on rail 0: 3 partners, 6 directions (the re-measurement left out), every one at 100 of 400 Gb/s
    assert (levels.partners[row], levels.cells[row], levels.below[row]) == (3, 6, 6)
    assert levels.median_Gbps[row] == pytest.approx(100.0) and levels.min_Gbps[row] == pytest.approx(100.0)
    other = list(zip(levels.rail, levels.node, strict=True)).index((1, 2))
    assert levels.below[other] == 0  # rail 1 has no line rate: nothing is counted under a line it does not have


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 1), st.floats(1, 500)), max_size=40))
def test_link_levels_agree_with_counting_by_hand(cells: list[tuple[int, int, int, float]]) -> None:
    times = [PairTime(a, b, r, 0, 0, 1000, 8.0 / v) for a, b, r, v in cells if a != b]
    nodes = tuple(f"n{i}" for i in range(5))
    got = documents.link_levels(documents.pair_cells(times, nodes, {0: 400.0, 1: 400.0}, {}), 0.5)
    by_link: dict[tuple[int, int], list[tuple[int, float]]] = {}
    for t in times:
        value = round(busbw_Gbps(t.nbytes, t.time_us), 6)
        by_link.setdefault((t.rail, t.node), []).append((t.peer, value))
        by_link.setdefault((t.rail, t.peer), []).append((t.node, value))
    assert list(zip(got.rail, got.node, strict=True)) == sorted(by_link)
    for i, link in enumerate(sorted(by_link)):
        values = [v for _, v in by_link[link]]
        assert got.partners[i] == len({p for p, _ in by_link[link]}) and got.cells[i] == len(values)
        assert got.median_Gbps[i] == pytest.approx(statistics.median(values), abs=1e-6)
        assert got.min_Gbps[i] == min(values) and got.below[i] == sum(v < 200.0 for v in values)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"busbw_Gbps": [1.0]}, "pair_cells.busbw_Gbps holds 1 rows, not the 2 of rail"),
        ({"time_us": ["fast", 2.0]}, 'pair_cells.time_us[0] holds "fast", not numbers'),
        ({"peer": [1, 7]}, "pair_cells.peer names a node past the 2 of nodes"),
        ({"node": 5}, "pair_cells.node holds 5, not a list of whole numbers"),
        ({"stopped": [2]}, "pair_cells.stopped names a row that is not one of the 2"),
    ],
)
def test_a_damaged_column_is_refused_in_one_line_naming_it(tmp_path: Path, change: dict, said: str) -> None:
    cells = {"rail": [0, 0], "node": [0, 1], "peer": [1, 0], "busbw_Gbps": [9.0, 9.5], "bytes": [8, 8]}
    cells |= {"time_us": [1.0, 1.0], "repeat": [0, 0], "round": [0, 0], "confirm": [0, 0]}
    doc = {"format_version": 3, "skipped": None, "nodes": ["a", "b"], "rails": [], "measurements": [], "defects": []}
    (tmp_path / "rails.json").write_text(json.dumps(doc | {"pair_cells": cells | change}))
    with pytest.raises(UserError) as refused:
        read_rails_doc(tmp_path)
    assert said in str(refused.value) and "\n" not in str(refused.value)


def test_a_partial_document_carries_the_pairs_so_far_in_columns() -> None:
    partial = dataclasses.replace(_v3(_times()[:4]), partial=True, link_levels=RailsDoc().link_levels).to_json()
    assert list(partial) == [
        "format_version",
        "partial",
        "skipped",
        "nodes",
        "rails",
        "measurements",
        "pair_cells",
        "defects",
    ]
    assert RailsDoc.from_json(partial).pair_cells == documents.pair_cells(_times()[:4], NODES, EXPECTED, DEVICES)
