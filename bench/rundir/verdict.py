"""A run's verdict: one word from one vocabulary and the sentences behind it, decided once by the frame
(``bench.frame.decide``) and only rendered everywhere else (docs/design.md, "One verdict").

* ``pass``: every judged item met its target (the reasons, if any, name what was measured but not judged);
* ``fail``: a judged item missed its target, or a check failed (the reasons name each);
* ``measured``: nothing was judged; the reasons say why and how to reach a judgement;
* ``regressed``: ``compare`` found tonight's numbers below the baseline (set after the run, by compare);
* ``skip``: every item was skipped (a check that checked nothing), never counted as a pass;
* ``error``: the run ended before it could be judged (a hang, a lost rank, an interrupt, a write refused).

run.json keeps the word under ``verdict`` and the sentences under ``reasons``; the terminal, junit.xml,
report.md, report.html, metrics.prom and ``history list`` show this record and never work it out again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from bench.exits import EXIT_FAIL, EXIT_INFRA, EXIT_PASS

Word = Literal["pass", "fail", "measured", "regressed", "skip", "error"]
WORDS: tuple[Word, ...] = get_args(Word)

_EXIT: dict[Word, int] = {
    "pass": EXIT_PASS,
    "measured": EXIT_PASS,
    "skip": EXIT_PASS,
    "fail": EXIT_FAIL,
    "regressed": EXIT_FAIL,
    "error": EXIT_INFRA,
}


@dataclass(frozen=True)
class Verdict:
    """The word and its reasons (one sentence each, deduplicated, in the order found)."""

    word: Word
    reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.word not in WORDS:
            raise ValueError(f"verdict {self.word!r} is not one of {', '.join(WORDS)}")
        if not all(isinstance(r, str) for r in self.reasons):
            raise ValueError("a verdict's reasons are sentences (strings)")

    @classmethod
    def of(cls, word: Word, reasons: Iterable[str] = ()) -> Verdict:
        """A verdict with ``reasons`` deduplicated and empty ones dropped."""
        return cls(word, tuple(dict.fromkeys(r for r in reasons if r)))

    @property
    def exit_status(self) -> int:
        """0 for pass, measured and skip; 1 for fail and regressed; 3 for error."""
        return _EXIT[self.word]

    @property
    def label(self) -> str:
        """The word as the terminal, the badge and the metrics show it: ``MEASURED``."""
        return self.word.upper()

    def headline(self) -> str:
        """One line: ``MEASURED: largest size 4M is below the judged 256M: ...``."""
        return f"{self.label}: {'; '.join(self.reasons)}" if self.reasons else self.label
