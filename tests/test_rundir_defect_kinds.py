"""The defect kinds as one table (``bench.rundir.defect_kinds``): every decision the rails layer makes from it
is the one it made when each module dispatched on the kind's string."""

from __future__ import annotations

import itertools

import pytest

from bench.profile.actions import DEFAULT_ACTIONS
from bench.rundir.defect_kinds import (
    DEFECT_KINDS,
    GPU_DEFECT_KINDS,
    action_key,
    covered_cells,
    fails_rail,
)

SYMPTOMS = ("slow", "flaky", "dead", "errors", "misrouted")
NODES = ("n1", "n2", "n3")


def _as_dispatched(kind: str, symptom: str, physical: bool) -> str:
    """corroborate's rule before the table."""
    if kind == "errors":
        return "errors"
    if symptom == "dead":
        # Since issue 41, a dead rail or pair is said with its own sentence: the dead link's names {node} and
        # {device}, which neither has ("check the port state and the cable of ? its rail device").
        return "cable_dead" if kind == "cable" else kind if kind in ("rail", "pair") else "dead"
    if kind in ("link", "cable"):
        return f"{kind}_errors" if physical else kind
    return kind


@pytest.mark.parametrize(
    ("kind", "symptom", "physical"), list(itertools.product([*DEFECT_KINDS, "old-kind"], SYMPTOMS, (False, True)))
)
def test_the_action_key_is_the_one_dispatched_before(kind: str, symptom: str, physical: bool) -> None:
    assert action_key(kind, symptom, physical) == _as_dispatched(kind, symptom, physical)


def test_every_action_the_table_names_has_a_sentence() -> None:
    keys = {k for kind in DEFECT_KINDS.values() for k in (kind.action, kind.dead_action, kind.errors_action)}
    keys |= {kind.action for kind in GPU_DEFECT_KINDS.values()}
    assert keys <= set(DEFAULT_ACTIONS)


def test_the_cells_a_kind_covers() -> None:
    def cells(kind: str, node: str | None = "n2", peer: str | None = None, rail: int | None = 1) -> list[object]:
        return list(covered_cells(kind, node, peer, rail, NODES, 2))

    assert cells("rail", node=None) == [("n1", 1), ("n2", 1), ("n3", 1)]
    assert cells("node", rail=None) == [("n2", 0), ("n2", 1)]
    assert cells("pair", peer="n3") == [("n2", 1), ("n3", 1)]
    assert cells("link") == cells("errors") == cells("path") == cells("cable") == [("n2", 1)]
    assert cells("leaf", node=None) == cells("uplink", node=None) == cells("spine", node=None, rail=None) == []
    assert cells("old-kind") == [("n2", 1)]  # a kind of an older release: its own cell, as before


def test_which_rails_a_failing_defect_fails() -> None:
    for kind in ("rail", "link", "errors", "path", "cable", "leaf", "uplink"):
        assert fails_rail(kind, 1, 1) and not fails_rail(kind, 0, 1)
    assert fails_rail("spine", None, 0) and fails_rail("spine", None, 7)
    assert not any(fails_rail(kind, 1, 1) for kind in ("node", "pair", "old-kind"))
