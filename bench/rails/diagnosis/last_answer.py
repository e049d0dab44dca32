"""The one-entry caches of rank 0's judgement: the last answer to one question, and what it was asked of.

Rank 0 asks the same question several times in one judgement, of the same arrays: the matrix's expectations
(``round_load.matrix_expected``) to pick the suspects and again to judge; the matrix samples that are slow
(``judge._slow_samples``) to pick the suspects and again to place the re-measurements' expectations; the routing
the run showed (``expected.Expected.routed``) to pick the suspects and again to judge. At 1024 nodes each answer is
seconds. The questions of one judgement come one after another, never interleaved with another run's, so the
last answer is the only one worth holding: one entry, never a table that grows with the runs a process judges
(the fabric model judges thousands).

A key names its arrays by their content (:func:`fingerprint`: shape, dtype and a 64-byte BLAKE2b digest of the
bytes, so two different arrays never share an answer: arrays of one buffer but another shape or dtype differ by
those), or by their identity where the same objects come back (:meth:`LastAnswer.answer`'s ``holding`` keeps them
alive while the key names them, so their ``id`` is never another array's).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")

Fingerprint = tuple[tuple[int, ...], str, bytes]


def fingerprint(array: np.ndarray) -> Fingerprint:
    """``array`` named by its content: its shape, its dtype and a digest of its bytes (in C order)."""
    return array.shape, array.dtype.str, hashlib.blake2b(np.ascontiguousarray(array).data).digest()


class LastAnswer(Generic[T]):
    """The answer to the last key asked, computed once per key in a row."""

    def __init__(self) -> None:
        self._last: tuple[Hashable, T, tuple[object, ...]] | None = None

    def answer(self, key: Hashable, compute: Callable[[], T], holding: tuple[object, ...] = ()) -> T:
        """The answer for ``key``: the held one where ``key`` is the last key asked, else ``compute()``, held in its
        place. ``holding``: the objects ``key`` names by their ``id``, kept alive as long as the key is."""
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        value = compute()
        self._last = (key, value, holding)
        return value
