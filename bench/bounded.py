"""The one bounded reader of what railbench did not just write: files from outside and the numbers in them.

**Files.** A run directory, a profile, a log or a sysfs tree may hold anything: a FIFO (``open`` and
``read`` block for good), a link to ``/dev/zero`` (read until memory runs out), a folder, a file of
gigabytes. :func:`open_regular` opens a path only when ``stat`` says it is a regular file, and then with
``O_NONBLOCK`` and a second check on the open descriptor, in case it was swapped between the two calls;
:func:`read_bytes` reads at most a cap, and :func:`capped_lines` hands out lines of a stream with a cap per
line (for ``csv``, which would otherwise hold a line of any length). A path that is absent raises
:class:`MissingInput`, so optional files are told apart from damaged ones without a separate ``exists()``.
JSON on top of this lives in ``bench.jsondoc``.

**Numbers.** Python's ``int()`` refuses strings over 4,300 digits with a ValueError and ``float()`` turns
``1e999`` into ``inf``; a reader that converts raw text directly turns hostile or damaged input into
tracebacks, infinities or negative bandwidths in the history. Every reader goes through :func:`parse_int`
and :func:`parse_float` instead: the text's length is limited before conversion, floats must be finite, and
the sign must make sense for the field. Only ASCII digits are a number: ``str.isdigit()`` is true of ``'²'``
(which ``int()`` then refuses with a ValueError) and ``int()`` itself reads ``'١٢'`` and ``'1_000'``; a
reader that picks digits out of a line asks :func:`ascii_digits`, never ``isdigit()``.

What does not fit raises :class:`InputError` naming the file (and the field), which the CLI reports as one
line with exit status 2.
"""

from __future__ import annotations

import io
import math
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, TextIO, cast

from bench.exits import UserError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

Sign = Literal["any", "non-negative", "positive"]

MAX_NUMBER_CHARS = 64
"""Longer than any real counter, size, time or rate railbench reads (a 64-bit counter has 20 digits)."""


@dataclass(frozen=True)
class Where:
    """Where a number was read: a file (or sysfs path), a line number when the input has lines, a field."""

    source: str
    field: str
    line: int | None = None

    def __str__(self) -> str:
        at = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{at}: {self.field}"


class InputError(UserError):
    """A number (or other field) read from outside that railbench refuses; exit status 2."""


class MissingInput(InputError):
    """The file does not exist (an optional file is simply absent; a required one is a one-line error)."""


MAX_DOC_BYTES = 64 << 20
"""The default cap of one file read whole: rails.json of 64 nodes x 8 rails with every pair measured is a
few MiB; nothing railbench writes and reads back whole comes near 64 MiB."""
MAX_LINE_CHARS = 16384
"""The cap of one line of a CSV railbench reads (a results.csv row is about 200 characters)."""

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def file_kind(mode: int) -> str:
    """``FIFO``, ``character device``, ... : what a ``stat`` mode that is not a regular file is."""
    for test, name in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symlink"),
    ):
        if test(mode):
            return name
    return "special file"


class NotRegularFile(OSError):
    """The path is there but is not a regular file (its ``stat`` mode in ``mode``)."""

    def __init__(self, path: Path | str, mode: int) -> None:
        super().__init__(f"{path} is a {file_kind(mode)}, not a regular file")
        self.mode = mode


def open_fd(path: Path | str) -> int:
    """A read-only descriptor of ``path`` when ``stat`` says it is a regular file; :class:`NotRegularFile` when
    it is something else, ``OSError`` (``FileNotFoundError``, ELOOP, EACCES...) when it cannot be opened.

    The low level of :func:`open_regular`, for readers with their own policy on absent and odd files (sysfs).
    ``stat`` before ``open``: opening a FIFO blocks and opening some devices has effects. ``O_NONBLOCK`` and a
    second check on the descriptor cover a file swapped between the two calls."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFile(path, mode)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, mode)
        os.set_blocking(fd, True)  # O_NONBLOCK means nothing to a regular file; the stream then reads as any
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_at_most(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes from ``fd`` (fewer at its end)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(limit - size, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


MAX_STREAM_BYTES = 4 << 30
"""The most any file read as a stream may hold when its reader names no cap of its own."""


class _Counted(io.RawIOBase):
    """A regular file's descriptor, read with a count: what ``stat`` says of a file is no bound on what it gives
    (a ``/proc`` file says 0 bytes and may stream without end; a log may grow while it is read), so the cap is
    on the bytes read, and a read the kernel refuses (EIO from a file that opened) is the same one line."""

    def __init__(self, fd: int, shown: str, fix: str, max_bytes: int) -> None:
        super().__init__()
        self._fd, self._shown, self._fix, self._max = fd, shown, fix, max_bytes
        self._at = 0
        """The offset read up to: what a cap counts (a seek back reads those bytes again, not more of them)."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = os.read(self._fd, len(view))
        except OSError as exc:
            raise InputError(f"cannot read {self._shown} ({exc.strerror or exc}): {self._fix}") from None
        self._at += len(data)
        if self._at > self._max:
            raise InputError(f"{self._shown} is over the {_size(self._max)} limit for it (read so far): {self._fix}")
        view[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        try:
            self._at = os.lseek(self._fd, offset, whence)
        except OSError as exc:
            raise InputError(f"cannot read {self._shown} ({exc.strerror or exc}): {self._fix}") from None
        return self._at

    def tell(self) -> int:
        return self._at

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def open_regular(
    path: Path | str, *, fix: str, label: str | None = None, max_bytes: int = MAX_STREAM_BYTES
) -> BinaryIO:
    """``path`` opened for binary reading when it is a regular file (a link to one is followed).

    Never blocks and never opens a device: MissingInput when absent, InputError naming the path (``label``
    when given) and saying ``fix`` when it is something else or cannot be opened. Reading it past
    ``max_bytes``, or a read the kernel refuses, is an InputError too, never a traceback or a read without end.
    """
    shown = label or str(path)
    try:
        fd = open_fd(path)
    except NotRegularFile as exc:
        raise InputError(f"{shown} is a {file_kind(exc.mode)}, not a regular file: {fix}") from None
    except FileNotFoundError:
        raise MissingInput(f"{shown} does not exist: {fix}") from None
    except OSError as exc:
        raise InputError(f"cannot read {shown} ({exc.strerror or exc}): {fix}") from None
    return cast(BinaryIO, io.BufferedReader(_Counted(fd, shown, fix, max_bytes)))


def read_bytes(path: Path | str, *, fix: str, label: str | None = None, max_bytes: int = MAX_DOC_BYTES) -> bytes:
    """The whole of ``path`` (see :func:`open_regular`) when it holds at most ``max_bytes``."""
    shown = label or str(path)
    with open_regular(path, fix=fix, label=label, max_bytes=max_bytes) as handle:
        try:
            size = os.fstat(handle.fileno()).st_size
        except OSError as exc:
            raise InputError(f"cannot read {shown} ({exc.strerror or exc}): {fix}") from None
        if size > max_bytes:
            raise InputError(f"{shown} is {size} bytes, over the {_size(max_bytes)} limit for it: {fix}")
        return handle.read()  # past max_bytes (grown, or a stream whose size said less) the reader refuses


def read_text(path: Path | str, *, fix: str, label: str | None = None, max_bytes: int = MAX_DOC_BYTES) -> str:
    """:func:`read_bytes` as UTF-8 text; bytes that are not UTF-8 are an InputError naming the offset."""
    data = read_bytes(path, fix=fix, label=label, max_bytes=max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{label or path} is not UTF-8 text (byte {exc.start}): {fix}") from None


def open_text(path: Path | str, *, fix: str, label: str | None = None, max_bytes: int = MAX_STREAM_BYTES) -> TextIO:
    """:func:`open_regular` as strict UTF-8 text with universal newlines kept for ``csv`` (``newline=""``)."""
    return io.TextIOWrapper(open_regular(path, fix=fix, label=label, max_bytes=max_bytes), encoding="utf-8", newline="")


def capped_lines(stream: TextIO, *, label: str, fix: str, limit: int = MAX_LINE_CHARS) -> Iterator[str]:
    """The lines of ``stream`` (newline kept, as ``csv`` wants them); InputError at the first line longer
    than ``limit``, which is never held whole. A NUL byte is refused too (no text file railbench reads has
    one; ``csv`` reports it with less context)."""
    number = 0
    while True:
        try:
            line = stream.readline(limit + 1)
        except UnicodeDecodeError as exc:
            raise InputError(f"{label} is not UTF-8 text after line {number} (byte {exc.start}): {fix}") from None
        except OSError as exc:
            raise InputError(f"cannot read {label} ({exc.strerror or exc}): {fix}") from None
        if not line:
            return
        number += 1
        if len(line) > limit:
            raise InputError(f"{label} line {number} is over {limit} characters long: {fix}")
        if "\0" in line:
            raise InputError(f"{label} line {number} holds a NUL byte: {fix}")
        yield line


def ascii_digits(text: str) -> bool:
    """Whether ``text`` is one or more of the ASCII digits 0-9 and nothing else: what ``int()`` reads the same
    in every reader (``isdigit()`` and ``isdecimal()`` are true of superscripts and of other scripts' digits)."""
    return text.isascii() and text.isdigit()


def _size(nbytes: int) -> str:
    return f"{nbytes >> 20} MiB" if nbytes >= 1 << 20 else f"{nbytes >> 10} KiB"


def _checked_text(text: str, where: Where) -> str:
    stripped = text.strip()
    if not stripped:
        raise InputError(f"{where} is empty: expected a number")
    if len(stripped) > MAX_NUMBER_CHARS:
        raise InputError(f"{where} is {len(stripped)} characters long, too long for a number: the input is damaged")
    return stripped


def _check_sign(value: int, sign: Sign, where: Where, shown: str) -> None:
    refusal = out_of_bounds(value, sign=sign, shown=shown)
    if refusal is not None:
        raise InputError(f"{where} {refusal}")


def parse_int(text: str, where: Where, *, sign: Sign = "non-negative", maximum: int | None = None) -> int:
    """``text`` as an int, at most :data:`MAX_NUMBER_CHARS` long, with ``sign`` and ``maximum`` enforced."""
    stripped = _checked_text(text, where)
    try:
        if not ascii_digits(stripped.removeprefix("-").removeprefix("+")):
            raise ValueError(stripped)
        value = int(stripped)
    except ValueError:
        raise InputError(f"{where} is {stripped[:20]!r}, not a whole number") from None
    _check_sign(value, sign, where, stripped)
    if maximum is not None and value > maximum:
        raise InputError(f"{where} is {stripped}, above the largest plausible value {maximum}")
    return value


def parse_float(text: str, where: Where, *, sign: Sign = "non-negative", maximum: float | None = None) -> float:
    """``text`` as a finite float (no nan, inf or overflow to inf), with ``sign`` and ``maximum`` enforced."""
    stripped = _checked_text(text, where)
    try:
        if not stripped.isascii() or "_" in stripped:  # float() reads other scripts' digits and 1_0
            raise ValueError(stripped)
        value = float(stripped)
    except ValueError:
        raise InputError(f"{where} is {stripped[:20]!r}, not a number") from None
    return finite(value, where, sign=sign, maximum=maximum, shown=stripped)


def finite(
    value: float, where: Where, *, sign: Sign = "non-negative", maximum: float | None = None, shown: str | None = None
) -> float:
    """``value`` (already a float, e.g. from JSON) checked as :func:`parse_float` checks text."""
    refusal = out_of_bounds(value, sign=sign, maximum=maximum, shown=shown)
    if refusal is not None:
        raise InputError(f"{where} {refusal}")
    return value


def out_of_bounds(
    value: float, *, sign: Sign = "non-negative", maximum: float | None = None, shown: str | None = None
) -> str | None:
    """What :func:`finite` says of ``value`` after naming where it was read (``is nan, not a finite number: ...``),
    or None when it is finite, of its sign and at most ``maximum``: the words of a reader that locates the value
    itself (``bench.codec``'s bounded fields)."""
    label = shown if shown is not None else repr(value)
    if not math.isfinite(value):
        return f"is {label}, not a finite number: the input is damaged"
    if sign == "non-negative" and value < 0:
        return f"is {label}, a negative value where none can be: the input is damaged"
    if sign == "positive" and value <= 0:
        return f"is {label}; it must be above zero"
    if maximum is not None and value > maximum:
        return f"is {label}, above the largest plausible value {maximum:g}"
    return None


NAME_MAX = 255
"""Bytes in one path component on Linux file systems (ext4, xfs, btrfs, tmpfs, NFS)."""
PATH_MAX = 4096
"""Bytes in a whole path the kernel accepts, its terminating NUL included."""


def check_path_names(path: Path | str, flag: str) -> None:
    """InputError when ``path`` (given as ``flag``) cannot name a file on Linux: a component over
    :data:`NAME_MAX` bytes, the whole over :data:`PATH_MAX`, or a NUL byte. Checked before anything is
    created, so the refusal is one line instead of ``ENAMETOOLONG`` from deep inside a write."""
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise InputError(f"{flag} holds a NUL byte: no file name can")
    if len(raw) >= PATH_MAX:
        raise InputError(
            f"{flag} is {len(raw)} bytes long, over the {PATH_MAX - 1} a path may have: give a shorter one"
        )
    for part in raw.split(b"/"):
        if len(part) > NAME_MAX:
            shown = os.fsdecode(part[:24])
            raise InputError(
                f"{flag}: the name {shown}... is {len(part)} bytes long, over the {NAME_MAX} one file or folder "
                "name may have: give a shorter one"
            )
