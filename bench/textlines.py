"""Lines of text read from outside (logs people paste, files of any size), with a length limit per line.

Readers of outside text scan each line with regexes; a single 200,000-character line without a newline (a
binary blob, a minified JSON dump, paste damage) costs time in every one of them and memory while it is
held. ``numbered_lines`` hands out each line with its 1-based number, reading the stream piece by piece, and
gives ``None`` instead of any line longer than ``MAX_LINE_CHARS``: the reader notes it and moves on, and the
long line is never held whole in memory. Newlines are universal (``\\n``, ``\\r\\n``, ``\\r``), and bytes
that are not UTF-8 are replaced, never fatal.

Every line comes out :func:`printable`: text from outside (a NodeDescription any root on any host can set, a
log line, a hostname) reaches the terminal, checks.json and the report, and a terminal obeys what it is sent
(``ESC ] 0 ;`` sets the window title, ``ESC [ 2 J`` clears the screen). So terminal escape sequences are
removed whole and every other control character is shown as ``\\xNN``; tabs stay. ``printable`` is also what
readers of short outside strings use (sysfs attributes, names in a cabling file).

Also here: the launcher labels that prefix each line of a job's output (``srun -l``'s ``0:``, mpirun
``--tag-output``'s ``[1,0]<stdout>:``), removed by one linear scan.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from bench.bounded import MAX_STREAM_BYTES, ascii_digits, open_regular

_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
"""Terminal sequences, whole: CSI (colour, cursor moves, clearing) and OSC (the window title), ended by BEL or
ST. The classes of each part are disjoint, so a failed match stops at the first character that cannot
continue it: linear in the line."""
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""What a terminal or a viewer acts on rather than shows: C0 (but the tab; a newline inside one field would forge
a line of the output), DEL, C1 (``\x9b`` is a CSI on its
own), the Unicode line separators and the bidirectional overrides that reorder what is shown."""

MAX_LINE_CHARS = 16384
"""Longer than any line nccl-tests or NCCL writes (an 80-rank device list is one line per rank; an mpirun
command line with every ``-x`` is a few KiB)."""
_CHUNK = 1 << 16


def printable(text: str) -> str:
    """``text`` safe to print and to store: escape sequences removed, other control characters as ``\\xNN``."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(_shown, _ESCAPES.sub("", text))


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def numbered_lines(stream: TextIO, limit: int = MAX_LINE_CHARS) -> Iterator[tuple[int, str | None]]:
    """(line number, line without its newline, :func:`printable`) for each line; the line is None when over
    ``limit``."""
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
        yield number, printable(line.rstrip("\n"))


def text_lines(text: str, limit: int = MAX_LINE_CHARS) -> Iterator[tuple[int, str | None]]:
    """``numbered_lines`` over a string (tests and callers that already hold the text)."""
    return numbered_lines(io.StringIO(text, newline=None), limit)


def open_text(path: Path, max_bytes: int = MAX_STREAM_BYTES, fix: str = "give the log file itself") -> TextIO:
    """``path`` opened for ``numbered_lines``; UserError (exit 2) when it cannot be opened or is not a regular
    file (``bench.bounded.open_regular``: a FIFO or a device is refused without blocking or reading), and when
    reading it fails or goes past ``max_bytes`` (counted as read: a file's size says nothing of a ``/proc``
    file that streams)."""
    handle = open_regular(path, fix=fix, max_bytes=max_bytes)
    return io.TextIOWrapper(handle, encoding="utf-8", errors="replace", newline=None)


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
        if comma and ascii_digits(job) and ascii_digits(rank):
            after = rest[close + 1 :]
            for stream in ("<stdout>:", "<stderr>:"):
                if after.startswith(stream):
                    return after[len(stream) :]
        return line
    digits = len(rest) - len(rest.lstrip("0123456789"))
    if 0 < digits <= 6 and rest[digits : digits + 1] == ":" and rest[digits + 1 : digits + 2] in (" ", "\t", ""):
        return rest[digits + 1 :]
    return line
