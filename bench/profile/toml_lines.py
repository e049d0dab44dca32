"""The one TOML line locator of a profile: where a key is set, and each refusal of a value as one line that says
the file, the line of its key, what is wrong and how to fix it (a ``UserError``: exit 2).

A profile's tables are records read by the codec (``bench.codec.decode``), as every run-directory document is;
a :class:`bench.codec.Refused` says the path of the value it refused (``("errors", "max_count", "link_downed")``)
and what is wrong with it, and :func:`refusal` turns it into the line a person fixes the file from:
``p.toml:5: [errors.max_count] link_downed = -2 must be a whole number >= 0``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from bench import codec
from bench.exits import UserError
from bench.jsondoc import Parsed
from bench.units import parse_size

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_TOML_WORDS = {
    "an object": "a table",
    "a string": "a string; quote it",
    "a list of objects": "an array of tables: write [[...]] blocks",
}
"""The codec's JSON words as a TOML file says them, and how to fix the value there."""


def line_of(text: str, keys: Sequence[codec.Key]) -> int:
    """The line where the value at ``keys`` is set: its ``key =`` line under its table's header, or its own
    header (``[errors.max_count]``, ``[gpu.B200]``, the second ``[[compare.rule]]`` for ``rule, 1``); else the
    line of the nearest enclosing key that is set (an inline table, a list's item: the list's key); 1 when none
    is."""
    names = [key for key in keys if isinstance(key, str)]
    # the index after a name: which of that name's [[array of tables]] blocks, where the file has them
    indexes: list[int | None] = []
    for at, key in enumerate(keys):
        after = keys[at + 1] if at + 1 < len(keys) else None
        if isinstance(key, str):
            indexes.append(after if isinstance(after, int) else None)
    for depth in range(len(names), 0, -1):
        table = ".".join(names[: depth - 1]) or None
        within = indexes[depth - 2] if depth > 1 else None
        line = _set_at(text, names[depth - 1], table, within, indexes[depth - 1])
        if line is not None:
            return line
    return 1


def _set_at(text: str, key: str, table: str | None, within: int | None, own: int | None) -> int | None:
    """The first line that sets ``key`` inside ``[table]`` (the top level when None; inside its ``within``-th
    ``[[table]]`` block when given), or opens ``[table.key]`` or a table inside it (its ``own``-th when given)."""
    current: str | None = None
    header = key if table is None else f"{table}.{key}"
    pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
    seen = {table: -1, header: -1}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip()
        if stripped.startswith("["):  # string methods, not a regex: a hostile line must cost linear time
            current = stripped.lstrip("[").split("]", 1)[0].strip()
            if current in seen:
                seen[current] += 1
            if (current == header and seen[header] == (own or 0)) or current.startswith(f"{header}."):
                return number
            continue
        if current == table and (within is None or seen[table] == within) and pattern.match(line):
            return number
    return None


def label(keys: Sequence[codec.Key]) -> str:
    """A value as a refusal names it: ``[errors.max_count] link_downed``, ``[gpudirect] fail_xids[2]``,
    ``[[compare.rule]] number 2: pattern``, ``pass_fraction`` at the top level."""
    names = [i for i, key in enumerate(keys) if isinstance(key, str)]
    if not names:
        return ""
    last = names[-1]
    own = str(keys[last]) + "".join(f"[{k}]" for k in keys[last + 1 :])
    scope = keys[:last]
    item = scope[-1] if scope else None
    if isinstance(item, int):  # a key of one block of an [[array of tables]]
        return f"[[{'.'.join(str(k) for k in scope[:-1])}]] number {item + 1}: {own}"
    return f"[{'.'.join(str(k) for k in scope)}] {own}" if scope else own


def refusal(
    where: str, text: str, refused: codec.Refused | codec.Invalid, within: Sequence[codec.Key] = ()
) -> UserError:
    """``refused`` (of a value read from the table at ``within``: by the codec, or by a reader of a table's
    values that says :class:`bench.codec.Invalid`) as one line naming ``where``, the file, and the line of the
    key refused."""
    keys = (*within, *refused.keys)
    if isinstance(refused, codec.UnknownFields):
        keys = (*keys, refused.names[0])
    return UserError(f"{where}:{line_of(text, keys)}: {said(refused, within)}")


def said(refused: codec.Refused | codec.Invalid, within: Sequence[codec.Key] = ()) -> str:
    """What :func:`refusal` says after the file and line: the value's name, what is wrong and how to fix it."""
    keys = (*within, *refused.keys)
    if isinstance(refused, codec.Invalid):
        return f"{label(keys)} {refused.said}"
    if isinstance(refused, codec.UnknownFields):
        table = label((*keys, "")).rstrip(": ")
        scope = f"{table} " if table.startswith("[[") else f"[{'.'.join(map(str, keys))}] " if keys else ""
        names = ", ".join(map(repr, refused.names))
        key = "key" if len(refused.names) == 1 else "keys"
        known = f"; known keys: {', '.join(refused.known)}" if refused.known else ""
        return f"unknown {scope}{key} {names}{known}"
    if refused.expected:
        return f"{label(keys)} = {refused.shown} must be {_TOML_WORDS.get(refused.expected, refused.expected)}"
    return f"{label(keys)} {refused.said}"


def decoded(
    cls: type[codec.Record], values: Parsed, where: str, text: str, within: Sequence[codec.Key]
) -> codec.Record:
    """The ``cls`` record of the table ``values`` (the profile's table at ``within``), read by the codec; a
    refusal as one line with its file and line (:func:`refusal`)."""
    with located(where, text, within):
        return codec.decode(cls, values)


@contextmanager
def located(where: str, text: str, within: Sequence[codec.Key]) -> Iterator[None]:
    """A :class:`bench.codec.Refused` or :class:`bench.codec.Invalid` of the table at ``within`` raised
    inside, as one line with its file and line (:func:`refusal`)."""
    try:
        yield
    except (codec.Refused, codec.Invalid) as exc:
        raise refusal(where, text, exc, within) from None


def size(value: object) -> int:
    """A size as a profile writes it, a number of bytes or ``"64M"`` (``bench.units.parse_size``): the reader of
    a size field (``codec.read_by(size)``); ``ValueError`` saying what is wrong after the key's name, ``TypeError``
    for a value of no type a size is written in."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError('a number of bytes or a size such as "64M"')
    try:
        return parse_size(str(value), "")
    except UserError as exc:
        raise ValueError(str(exc).strip()) from None


def refuse_unread(cls: type[DataclassInstance], values: Parsed, *unread: str) -> None:
    """:class:`bench.codec.UnknownFields` for a key of ``values`` that ``cls`` does not declare or that names
    one of its fields the file never sets (``unread``: what the reader gives, such as a ``[gpu.<name>]``
    table's name), before the codec reads the rest."""
    known = [f.name for f in dataclasses.fields(cls) if f.name not in unread]
    unknown = [key for key in values if key not in known]
    if unknown:
        raise codec.UnknownFields(unknown, "", known)
