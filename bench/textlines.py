"""Lines of text read from outside (logs people paste, files of any size), with a length limit per line.

Readers of outside text scan each line with regexes; a single 200,000-character line without a newline (a
binary blob, a minified JSON dump, paste damage) costs time in every one of them and memory while it is
held. ``numbered_lines`` hands out each line with its 1-based number, reading the stream piece by piece, and
gives ``None`` instead of any line longer than ``MAX_LINE_CHARS``: the reader notes it and moves on, and the
long line is never held whole in memory. Newlines are universal (``\\n``, ``\\r\\n``, ``\\r``), and bytes
that are not UTF-8 are replaced, never fatal.

Also here: the launcher labels that prefix each line of a job's output (``srun -l``'s ``0:``, mpirun
``--tag-output``'s ``[1,0]<stdout>:``), removed by one linear scan.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from bench.exits import UserError

MAX_LINE_CHARS = 16384
"""Longer than any line nccl-tests or NCCL writes (an 80-rank device list is one line per rank; an mpirun
command line with every ``-x`` is a few KiB)."""
_CHUNK = 1 << 16


def numbered_lines(stream: TextIO, limit: int = MAX_LINE_CHARS) -> Iterator[tuple[int, str | None]]:
    """(line number, line without its newline) for each line; the line is None when over ``limit``."""
    number = 0
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and not line.endswith("\n"):
            while line and not line.endswith("\n"):  # skip the rest of the long line unread
                line = stream.readline(_CHUNK)
            yield number, None
            continue
        yield number, line.rstrip("\n")


def text_lines(text: str, limit: int = MAX_LINE_CHARS) -> Iterator[tuple[int, str | None]]:
    """``numbered_lines`` over a string (tests and callers that already hold the text)."""
    return numbered_lines(io.StringIO(text, newline=None), limit)


def open_text(path: Path) -> TextIO:
    """``path`` opened for ``numbered_lines``; UserError (exit 2) when it cannot be opened or is not a file."""
    try:
        if not path.is_file():
            raise UserError(f"{path} is not a file: give the log file itself")
        return path.open(encoding="utf-8", errors="replace", newline=None)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}: check the path") from None


def strip_launcher_label(line: str) -> str:
    """``line`` without a leading srun ``N:`` label or mpirun ``[job,rank]<stdout|stderr>:`` tag.

    Either may follow indentation (logs quoted in issues and READMEs are indented). One left-to-right scan:
    no regex, so no backtracking on long lines.
    """
    start = len(line) - len(line.lstrip())
    rest = line[start:]
    if rest.startswith("["):
        close = rest.find("]<", 0, 32)
        tag = rest[1:close] if close > 0 else ""
        job, comma, rank = tag.partition(",")
        if comma and job.isdigit() and rank.isdigit():
            after = rest[close + 1 :]
            for stream in ("<stdout>:", "<stderr>:"):
                if after.startswith(stream):
                    return after[len(stream) :]
        return line
    digits = len(rest) - len(rest.lstrip("0123456789"))
    if 0 < digits <= 6 and rest[digits : digits + 1] == ":" and rest[digits + 1 : digits + 2] in (" ", "\t", ""):
        return rest[digits + 1 :]
    return line
