"""Fixtures shared by every test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import CORPUS, REPO


def _reports_state() -> dict[str, float]:
    root = REPO / "reports"
    return (
        {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*") if p.is_file()} if root.is_dir() else {}
    )


@pytest.fixture(scope="session", autouse=True)
def reports_left_alone() -> Iterator[None]:
    """No test writes into the repository's reports/ (the user's history and the committed sample)."""
    before = _reports_state()
    yield
    after = _reports_state()
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"tests wrote into the repository's reports/: {changed[:5]}"


@pytest.fixture
def corpus() -> Path:
    """../shared/corpus, or a clean skip where it is absent (CI has shared/ beside the checkout)."""
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    return CORPUS
