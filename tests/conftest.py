"""Fixtures shared by every test module."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import CORPUS


@pytest.fixture
def corpus() -> Path:
    """../shared/corpus, or a clean skip where it is absent (CI has shared/ beside the checkout)."""
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    return CORPUS
