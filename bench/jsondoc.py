"""JSON that railbench did not just write (run.json, rails.json, checks.json, compare.json, ``--spec``), read
with limits, and the accessors for fields that may be missing or of the wrong type (older runs, imports).

``json.loads`` on its own turns damage into tracebacks or into values nothing downstream expects:

* 100,000 nested ``[`` raise RecursionError;
* a 5,000-digit integer raises ValueError (Python's 4,300-digit conversion limit), and a 30-digit one is
  accepted, then overflows SQLite's 64-bit integers when the history stores it;
* ``NaN``, ``Infinity`` and ``1e999`` (which becomes ``inf``) are accepted;
* ``"\\udc80"`` (a lone surrogate escape) becomes a ``str`` that cannot be encoded as UTF-8 again.

:func:`loads` refuses all of these as :class:`~bench.bounded.InputError` (one line, exit 2) naming the file:
nesting deeper than :data:`MAX_DEPTH`, integers outside the signed 64-bit range, numbers that are not finite.
Lone surrogates are replaced by U+FFFD rather than refused: railbench itself writes them when a value it
records (an environment variable) held bytes that are not UTF-8. A string holding what a terminal acts on (an
escaped ``\\u001b``, a C1 or bidirectional control: a run directory from another site names its hosts and its
cluster) comes out :func:`bench.textlines.printable`, as every line of outside text does. :func:`read_json` and
:func:`read_json_object` read the file first through :func:`bench.bounded.read_bytes` (regular files only,
size-capped, never blocking). Writers write standard JSON for these readers: ``bench.rundir.files`` writes a
value that is not finite as ``null``.

The typed records built on these documents (``RunDoc.from_json`` and the like) take the plain values
:func:`loads` returns: ``dict``, ``list``, ``str``, ``int``, ``float``, ``bool`` and ``None``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from bench.bounded import MAX_DOC_BYTES, InputError, MissingInput, read_bytes
from bench.textlines import printable

JSONValue: TypeAlias = "str | int | float | bool | Sequence[JSONValue] | Mapping[str, JSONValue] | None"
"""What a writer may hand ``json.dumps``. The containers are read-only (``Sequence``, ``Mapping``) so that a
``dict[str, float]`` or a tuple of rows is one without a copy; a ``str`` is a ``Sequence`` too, and JSON text."""
JSONObject: TypeAlias = dict[str, JSONValue]
"""A JSON object a writer builds (a record's ``to_json``, a section of run.json or rails.json)."""
Parsed: TypeAlias = Mapping[str, object]
"""A JSON object or TOML table as read, before it is checked: every value is narrowed where it is used."""

MAX_DEPTH = 64
"""Deeper than any document railbench writes (rails.json's deepest value sits at about six levels)."""
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1
"""SQLite's integer range, which every count, size and counter railbench stores fits in."""
_MAX_INT_CHARS = 20  # the digits of INT_MIN, with its sign
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # json pairs high and low surrogates itself; those left are lone
_CONTROL_ESCAPE = re.compile(
    r"\\u(?:00[01]|00[89]|007[fF]|20(?:2[89a-eA-E]|6[6-9]))|[\x80-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
"""A string that may hold a control character: JSON escapes it (raw C0 is not allowed in a string) or holds C1 and
the bidirectional controls as they are."""


class _NumberRefused(Exception):
    """Raised inside the decoder's hooks; turned into an InputError that names the file."""


def _int(text: str) -> int:
    if len(text) > _MAX_INT_CHARS:
        raise _NumberRefused(f"an integer of {len(text)} digits")
    value = int(text)
    if not INT_MIN <= value <= INT_MAX:
        raise _NumberRefused(f"the integer {text}, outside the 64-bit range")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NumberRefused(f"the number {text[:30]}, too large to be finite")
    return value


def _constant(text: str) -> float:
    raise _NumberRefused(f"{text}, which is not a number JSON allows")


_DECODER = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant)


def _fix_text(text: str) -> str:
    return printable(text if text.isascii() else _SURROGATE.sub("\ufffd", text))


def _walk(doc: object, where: str, fix: str, surrogates: bool) -> object:
    """Check the depth of ``doc`` without recursion; with ``surrogates``, make its strings plain (lone surrogates
    replaced, control characters shown)."""
    if surrogates and isinstance(doc, str):
        return _fix_text(doc)
    stack: list[tuple[object, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if depth > MAX_DEPTH:
                raise InputError(f"{where} nests objects and arrays more than {MAX_DEPTH} deep: {fix}")
            if surrogates:
                fixed = {_fix_text(k): _fix_text(v) if isinstance(v, str) else v for k, v in value.items()}
                value.clear()
                value.update(fixed)
            stack.extend((item, depth + 1) for item in value.values() if isinstance(item, dict | list))
        elif isinstance(value, list):
            if depth > MAX_DEPTH:
                raise InputError(f"{where} nests objects and arrays more than {MAX_DEPTH} deep: {fix}")
            if surrogates:
                value[:] = [_fix_text(v) if isinstance(v, str) else v for v in value]
            stack.extend((item, depth + 1) for item in value if isinstance(item, dict | list))
    return doc


def loads(text: str | bytes, where: str, fix: str) -> object:
    """``text`` as plain JSON values within the limits above; InputError naming ``where`` and saying ``fix``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{where} is not UTF-8 text (byte {exc.start}): {fix}") from None
    try:
        doc: object = _DECODER.decode(text)
    except _NumberRefused as exc:
        raise InputError(f"{where} holds {exc}: {fix}") from None
    except RecursionError:
        raise InputError(f"{where} nests objects and arrays more than {MAX_DEPTH} deep: {fix}") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{where} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): {fix}"
        ) from None
    except ValueError as exc:  # what the hooks' int() or float() refuse, should the limits above ever let it by
        raise InputError(f"{where} holds a number Python cannot read ({str(exc)[:80]}): {fix}") from None
    odd = _SURROGATE_ESCAPE.search(text) is not None or _CONTROL_ESCAPE.search(text) is not None
    return _walk(doc, where, fix, surrogates=odd)


def read_json(path: Path | str, *, fix: str, label: str | None = None, max_bytes: int = MAX_DOC_BYTES) -> object:
    """The JSON in ``path``: a regular file of at most ``max_bytes`` (see ``bench.bounded.read_bytes``), parsed
    by :func:`loads`. :class:`~bench.bounded.MissingInput` when it is absent."""
    return loads(read_bytes(path, fix=fix, label=label, max_bytes=max_bytes), label or str(path), fix)


def read_json_object(
    path: Path | str, *, fix: str, label: str | None = None, max_bytes: int = MAX_DOC_BYTES
) -> dict[str, Any]:
    """:func:`read_json` that must hold a JSON object."""
    doc = read_json(path, fix=fix, label=label, max_bytes=max_bytes)
    if not isinstance(doc, dict):
        raise InputError(f"{label or path} does not hold a JSON object: {fix}")
    return doc


def optional_object(
    path: Path | str, *, fix: str, label: str | None = None, max_bytes: int = MAX_DOC_BYTES
) -> dict[str, Any] | None:
    """:func:`read_json_object`, or None when ``path`` does not exist (a damaged file is still an error)."""
    try:
        return read_json_object(path, fix=fix, label=label, max_bytes=max_bytes)
    except MissingInput:
        return None


def table(doc: Parsed, key: str) -> Parsed:
    """``doc[key]`` when it is a JSON object, else an empty one."""
    value = doc.get(key)
    return value if isinstance(value, Mapping) else {}
