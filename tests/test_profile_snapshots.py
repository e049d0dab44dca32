"""Every shipped profile loads to the Profile it loaded to before the profile was read through the codec
(issue 44 item 5): the snapshot in ``tests/data/profile_snapshots.json`` is each profile's dataclass repr,
its ``source`` made relative to the repository so the snapshot is the same in every checkout.

Regenerate (only for a change that means to change a profile): ``python -m tests.test_profile_snapshots``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bench.profile.cluster import list_profiles, load_profile
from tests.support import REPO

SNAPSHOTS = REPO / "tests" / "data" / "profile_snapshots.json"


def stable_repr(name: str) -> str:
    """``load_profile(name)`` as its repr, with the source relative to the repository: ints and floats, every
    table and its defaults, told apart as the dataclasses' reprs tell them."""
    profile = load_profile(name)
    return repr(replace(profile, source=str(Path(profile.source).relative_to(REPO))))


def test_every_shipped_profile_is_snapshotted() -> None:
    assert sorted(json.loads(SNAPSHOTS.read_text())) == list_profiles()


@pytest.mark.parametrize("name", list_profiles())
def test_a_shipped_profile_loads_to_the_same_profile(name: str) -> None:
    assert stable_repr(name) == json.loads(SNAPSHOTS.read_text())[name]


if __name__ == "__main__":
    SNAPSHOTS.write_text(json.dumps({n: stable_repr(n) for n in list_profiles()}, indent=1, sort_keys=True) + "\n")
