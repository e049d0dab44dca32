"""The cells a mask holds, found a machine word at a time.

Rank 0 asks hundreds of times per judgement which cells of one rail a mask holds (each leaf's cells between
units, its reproduced suspects, in every round: ``bench.rails.diagnosis.persistence``); at 1024 nodes each mask is
a million cells of which a few thousand are set, and ``np.nonzero`` reads every one of them twice (to count, then
to list). Read as 8-byte words, the empty stretches are passed over eight cells at once.
"""

from __future__ import annotations

import numpy as np

WORD = 8
"""Cells (bytes of a bool array) per 64-bit word."""


def nonzero(mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """``np.nonzero(mask)`` of a bool array: the same index arrays, in the same (C) order."""
    if mask.dtype != np.bool_ or mask.size % WORD or not mask.flags.c_contiguous or mask.ndim == 0:
        return np.nonzero(mask)
    flat = mask.reshape(-1)
    words = np.flatnonzero(flat.view(np.uint64))
    cells = (words[:, None] * WORD + np.arange(WORD)).reshape(-1)
    cells = cells[flat[cells]]
    return np.unravel_index(cells, mask.shape)
