"""The one helper every sysfs read goes through: bounded, non-blocking, and loop-proof.

``Sysfs(root)`` stands in for ``/sys``. A real sysfs tree holds directories, symlinks to directories and
attribute files of at most one page; a copied, damaged or hostile tree can hold anything. So:

* a file is opened only when ``stat`` says it is a regular file (a FIFO would block ``open`` and ``read``
  for good, a link to ``/dev/zero`` would be read until memory runs out), and then with ``O_NONBLOCK`` in
  case it was swapped between the two calls (``bench.bounded.open_fd``, the project's one bounded open);
* at most :data:`MAX_READ_BYTES` are read: more than that is no sysfs attribute;
* symlinks are followed by the kernel, which stops a loop with ``ELOOP``; nothing here walks links itself
  (``Path.resolve`` raises ``RuntimeError`` on a loop);
* a directory lists at most :data:`MAX_ENTRIES` names;
* numbers go through ``bench.bounded``.

Absent or unreadable entries are "no value" (the kernel answers ``speed`` of a down link with EINVAL);
entries that are there but are not what sysfs holds are *problems*: each is kept, once, with its path, and
``railbench check`` turns them into results that name the path. Nothing here raises for a broken tree.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench.bounded import (
    MAX_NUMBER_CHARS,
    InputError,
    NotRegularFile,
    Sign,
    Where,
    file_kind,
    open_fd,
    parse_int,
    read_at_most,
)
from bench.textlines import printable

MAX_READ_BYTES = 4096
"""A sysfs attribute is at most one page (``PAGE_SIZE``, 4 KiB on x86-64 and most arm64 kernels)."""
MAX_ENTRIES = 4096
"""More entries than any sysfs directory railbench lists holds (``bus/pci/devices`` has a few hundred)."""

_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
T = TypeVar("T")


@dataclass(frozen=True)
class SysfsProblem:
    """An entry that is there but is not what sysfs holds."""

    path: str
    message: str
    """One line that names the path."""


def parse_hex(text: str, where: Where) -> int:
    """``0x10de`` -> 4318, bounded like :func:`bench.bounded.parse_int`."""
    stripped = text.strip()
    if len(stripped) > MAX_NUMBER_CHARS:
        raise InputError(f"{where} is {len(stripped)} characters long, too long for a number: the input is damaged")
    if not _HEX.fullmatch(stripped):
        raise InputError(f"{where} is {stripped[:20]!r}, not a hexadecimal number such as 0x10de")
    return int(stripped, 16)


@dataclass(frozen=True)
class Sysfs:
    """The one path helper: every sysfs read goes through here (see the module docstring)."""

    root: Path
    _problems: dict[str, SysfsProblem] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def problems(self) -> tuple[SysfsProblem, ...]:
        """The broken entries met so far, in the order they were met."""
        return tuple(self._problems.values())

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def _problem(self, path: Path, message: str) -> None:
        self._problems.setdefault(str(path), SysfsProblem(str(path), message))

    def _missing_or_loop(self, path: Path, exc: OSError) -> None:
        if exc.errno == errno.ELOOP:
            self._problem(path, f"{path} is a symlink loop")

    def read(self, *parts: str) -> str | None:
        """The file's text, stripped; None when it is absent, unreadable or not a sysfs attribute."""
        data = self.read_raw(*parts)
        # printable: an attribute any root can write (node_desc) reaches the terminal and checks.json
        return None if data is None else printable(data.decode("utf-8", errors="replace").strip())

    def read_raw(self, *parts: str) -> bytes | None:
        """The file's bytes as the kernel gives them (a binary attribute such as a PCI function's ``config``);
        None when it is absent, unreadable or over a page."""
        path = self.path(*parts)
        try:
            fd = open_fd(path)
        except NotRegularFile as exc:
            self._problem(path, f"{path} is a {file_kind(exc.mode)}, not a regular file: the sysfs tree is damaged")
            return None
        except OSError as exc:
            self._missing_or_loop(path, exc)
            return None
        try:
            data = read_at_most(fd, MAX_READ_BYTES + 1)
        except OSError:
            return None
        finally:
            os.close(fd)
        if len(data) > MAX_READ_BYTES:
            self._problem(path, f"{path} holds more than {MAX_READ_BYTES} bytes, more than a sysfs attribute can")
            return None
        return data

    def parse(self, parts: tuple[str, ...], text: str, convert: Callable[[str, Where], T]) -> T | None:
        """``convert(text, where)``; a value it refuses becomes a problem naming the path, and None."""
        path = self.path(*parts)
        try:
            return convert(text, Where(str(path), parts[-1] if parts else "value"))
        except InputError as exc:
            self._problem(path, str(exc))
            return None

    def read_int(self, *parts: str, sign: Sign = "non-negative", maximum: int | None = None) -> int | None:
        """A decimal (or ``0x`` hexadecimal) integer; None when absent, a problem when it is not one."""
        text = self.read(*parts)
        if text is None:
            return None
        if text[:2] in ("0x", "0X"):
            return self.parse(parts, text, parse_hex)
        return self.parse(parts, text, lambda t, w: parse_int(t, w, sign=sign, maximum=maximum))

    def listdir(self, *parts: str) -> list[str]:
        """Entry names, sorted naturally (mlx5_2 before mlx5_10); empty when the directory is absent."""
        path = self.path(*parts)
        names: list[str] = []
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    if len(names) >= MAX_ENTRIES:
                        self._problem(path, f"{path} has more than {MAX_ENTRIES} entries: the rest are ignored")
                        break
                    names.append(entry.name)
        except NotADirectoryError:
            self.is_dir(*parts)  # says what it is instead
            return []
        except OSError as exc:
            self._missing_or_loop(path, exc)
            return []
        return sorted(names, key=natural_key)

    def is_dir(self, *parts: str) -> bool:
        """Whether the entry is a directory (through symlinks); a loop or a special file is a problem."""
        path = self.path(*parts)
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            self._missing_or_loop(path, exc)
            return False
        if stat.S_ISDIR(mode):
            return True
        if not stat.S_ISREG(mode):
            self._problem(path, f"{path} is a {file_kind(mode)}, neither a directory nor a regular file")
        return False

    def is_file(self, *parts: str) -> bool:
        """Whether the entry is a regular file (through symlinks); never opens it."""
        try:
            return stat.S_ISREG(os.stat(self.path(*parts)).st_mode)
        except OSError:
            return False

    def resolve(self, *parts: str) -> Path | None:
        """The entry's real path (symlinks followed by the kernel's rules); None when absent or a loop."""
        path = self.path(*parts)
        try:
            return Path(os.path.realpath(path, strict=True))
        except OSError as exc:
            self._missing_or_loop(path, exc)
            return None


def natural_key(name: str) -> tuple[object, ...]:
    """Sort key that orders digits numerically: mlx5_2 < mlx5_10, eth2 < eth10.

    Text and digit runs alternate, so two keys compare item by item without mixing types. A digit run
    compares by its length without leading zeros, then its text: numeric order with no ``int()`` (which
    refuses more than 4,300 digits).
    """
    parts = re.split(r"([0-9]+)", name)
    return tuple(_digits_key(part) if index % 2 else part for index, part in enumerate(parts))


def _digits_key(digits: str) -> tuple[int, str]:
    significant = digits.lstrip("0")
    return len(significant), significant
