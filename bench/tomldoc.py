"""Limits on a TOML file railbench reads (a profile), checked before and after ``tomllib`` parses it.

``tomllib`` parses arrays and inline tables recursively: 5,000 nested ``[`` or ``{`` raise RecursionError
with a traceback thousands of lines long. It also turns a 5,000-digit integer into a ValueError, and reads
whatever it is handed. So, in this order:

* :func:`read_text` reads only a regular file (a FIFO would block, ``/dev/zero`` never ends) of at most
  :data:`MAX_TOML_BYTES`;
* :func:`check_nesting` scans the raw text once, skipping strings and comments, and refuses nesting deeper
  than :data:`MAX_DEPTH` with the line where it happens;
* :func:`loads` parses, turning what ``tomllib`` raises into one line;
* :func:`check_depth` walks the parsed data without recursion (dotted keys and ``[a.b.c]`` headers nest
  tables without brackets).

Every refusal is a ``UserError``: one line, exit status 2.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from bench import bounded
from bench.exits import UserError
from bench.jsondoc import Parsed

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

MAX_TOML_BYTES = 256 << 10
"""A profile is a few KiB; a quarter of a MiB leaves room for long comments and many rules."""
MAX_DEPTH = 16
"""Deeper than any profile needs (the deepest shipped one nests three levels)."""

_QUOTES = ('"""', "'''", '"', "'")


def read_text(path: Path, what: str, limit: int = MAX_TOML_BYTES) -> str:
    """The UTF-8 text of ``path`` when it is a regular file of at most ``limit`` bytes (a profile's
    :data:`MAX_TOML_BYTES`; a fabric's cabling file is larger), read through ``bench.bounded``, which never
    blocks on a FIFO nor opens a device."""
    return bounded.read_text(path, fix="give a .toml file", label=f"{what} {path}", max_bytes=limit)


def _string_end(text: str, start: int, quote: str) -> int:
    """The index just past the string opened at ``start`` by ``quote`` (the end of text if unclosed)."""
    position = start + len(quote)
    escapes = quote[0] == '"'
    while position < len(text):
        char = text[position]
        if escapes and char == "\\":
            position += 2
            continue
        if len(quote) == 1 and char == "\n":
            return position  # a one-line string ends at the line's end; tomllib says what is wrong
        if text.startswith(quote, position):
            # A multi-line string may end with up to two more quotes of its own kind: """a"""" is 'a"'.
            position += len(quote)
            while len(quote) == 3 and position < len(text) and text[position] == quote[0]:
                position += 1
            return position
        position += 1
    return position


def check_nesting(text: str, where: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse arrays and inline tables nested deeper than ``max_depth``, in one linear pass."""
    depth = 0
    position = 0
    line = 1
    special = re.compile(r"[\[\]{}\"'#\n]")
    while True:
        match = special.search(text, position)
        if match is None:
            return
        position = match.start()
        char = text[position]
        if char == "\n":
            line += 1
            position += 1
        elif char == "#":
            end = text.find("\n", position)
            position = len(text) if end < 0 else end
        elif char in "\"'":
            quote = next(q for q in _QUOTES if text.startswith(q, position))
            end = _string_end(text, position, quote)
            line += text.count("\n", position, end)
            position = end
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                raise UserError(
                    f"{where}:{line}: arrays or tables nested more than {max_depth} deep: no profile needs that"
                )
            position += 1
        else:
            depth = max(depth - 1, 0)
            position += 1


def loads(text: str, where: str) -> Parsed:
    """``tomllib.loads`` after :func:`check_nesting`, its errors as one line, then :func:`check_depth`.

    The document is returned as :data:`~bench.jsondoc.Parsed` (a table whose values are ``object``): nothing
    in it has been checked beyond its depth, so each reader narrows a value where it uses it."""
    check_nesting(text, where)
    try:
        data: Parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        lineno = getattr(exc, "lineno", None) or (int(match.group(1)) if match else 1)
        reason = str(exc).split(" (at ")[0]
        raise UserError(f"{where}:{lineno}: not valid TOML: {reason}; fix the syntax") from None
    except ValueError as exc:  # an integer past Python's 4,300-digit conversion limit
        raise UserError(f"{where}: not a usable TOML number ({str(exc).split(';')[0]}): fix the profile") from None
    except RecursionError:  # check_nesting should have stopped it; never a traceback either way
        raise UserError(f"{where}: nested too deeply to parse: no profile needs that") from None
    check_depth(data, where)
    return data


def check_depth(data: Parsed, where: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse parsed data nested deeper than ``max_depth`` (walked with a stack, not recursion)."""
    stack: list[tuple[object, int, str]] = [(data, 0, "")]
    while stack:
        value, depth, key = stack.pop()
        if depth > max_depth:
            shown = key if len(key) <= 60 else f"{key[:60]}..."
            raise UserError(f"{where}: {shown or 'a value'} is nested more than {max_depth} deep: no profile needs it")
        if isinstance(value, dict):
            stack.extend((item, depth + 1, f"{key}.{name}" if key else str(name)) for name, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, depth + 1, key) for item in value)
