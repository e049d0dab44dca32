"""The refusals of ``bench.codec``: a value that is not of its field's type, or that a record's own check refuses,
said as one sentence naming the field, with its parts for a reader that names the place itself (a profile's
file and line: ``bench.profile.toml_lines``). Read as ``codec.Refused``, ``codec.Invalid``: the codec says them.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

Key = str | int
"""One step into a document: a key of an object, or an index of a list."""


class Refused(ValueError):
    """A document that is not the record it should be: ``str()`` is one sentence naming the field.

    The parts of that sentence, for a reader that names the place itself (a profile says the file and line of
    the key): ``keys``, the path to the value refused from the document's top (``("rails", "count")``);
    ``said``, what is wrong with it (``holds "eight", not a whole number``); and for a value not of its type,
    ``shown`` (the value as JSON) and ``expected`` (``a whole number``), else both empty."""

    keys: tuple[Key, ...] = ()
    said: str = ""
    shown: str = ""
    expected: str = ""

    def inside(self, *keys: Key) -> Refused:
        """This refusal, of a document read as the part at ``keys`` of a larger one (a profile's table)."""
        self.keys = (*keys, *self.keys)
        return self


class UnknownFields(Refused):
    """Keys a record does not declare (``names``): from a newer writer, or a document of another kind;
    ``known``, the keys it does declare (empty where the refusal did not come from reading one)."""

    def __init__(self, names: Sequence[str], prefix: str, known: Sequence[str] = ()) -> None:
        self.names = tuple(sorted(names))
        self.known = tuple(sorted(known))
        super().__init__(
            f"{prefix or 'the document '}names fields this railbench does not know ({', '.join(self.names)})"
        )


class Invalid(ValueError):
    """A record's own check (its ``__post_init__``) refusing the value of one field, or of one key or item
    inside it (``keys``: the field's name first): :func:`decode` locates the refusal at that value, as it does a
    value of the wrong type, where any other ``ValueError`` is a refusal of the record as a whole. ``said``
    follows the value's name: ``must be one of 256, 512``."""

    def __init__(self, keys: Key | Sequence[Key], said: str) -> None:
        self.keys: tuple[Key, ...] = (keys,) if isinstance(keys, str | int) else tuple(keys)
        self.said = said
        super().__init__(f"{'.'.join(map(str, self.keys))} {said}")

    def inside(self, *keys: Key) -> Invalid:
        """This refusal, of a value read as the part at ``keys`` of a larger one (a table of a table)."""
        return Invalid((*keys, *self.keys), self.said)


class Wrong(Exception):
    """A value that is not of its type, on its way out to :func:`decode`: ``path`` (``.hosts[2]``) and ``keys``
    grow as it passes each enclosing record, list and object, so no path is built for the values that are
    right."""

    def __init__(
        self,
        said: str,
        *,
        whole: str = "",
        names: Sequence[str] = (),
        known: Sequence[str] = (),
        shown: str = "",
        expected: str = "",
    ) -> None:
        super().__init__(said)
        self.said, self.whole, self.names, self.known = said, whole, tuple(names), tuple(known)
        """``whole``: a refusal of a record as a whole (its own check; ``names``: keys it does not declare,
        ``known``: those it does)."""
        self.shown, self.expected = shown, expected
        self.path = ""
        self.keys: tuple[Key, ...] = ()

    @classmethod
    def at(cls, invalid: Invalid) -> Wrong:
        """The refusal a record's own check or a field's reader said of the value at ``invalid.keys``."""
        wrong = cls(invalid.said)
        for key in reversed(invalid.keys):
            wrong.within(key)
        return wrong

    @classmethod
    def again(cls, refused: Refused) -> Wrong:
        """A refusal a field's reader got reading its value as a document of its own (a table the codec reads):
        said again at the field, with its keys inside it."""
        unknown = refused if isinstance(refused, UnknownFields) else None
        wrong = cls(
            refused.said,
            names=unknown.names if unknown else (),
            known=unknown.known if unknown else (),
            shown=refused.shown,
            expected=refused.expected,
        )
        for key in reversed(refused.keys):
            wrong.within(key)
        return wrong

    def within(self, key: Key) -> Wrong:
        self.path = (f"[{key}]" if isinstance(key, int) else f".{key}") + self.path
        self.keys = (key, *self.keys)
        return self

    def refusal(self, where: str) -> Refused:
        field = where + self.path.lstrip(".")
        refused: Refused
        if self.names:
            refused = UnknownFields(self.names, field + "." if self.path else where, self.known)
        elif self.whole:
            refused = Refused(f"{field.rstrip('. ') or self.whole}: {self.said}")
        else:
            refused = Refused(f"{field} {self.said}")
        refused.keys, refused.said, refused.shown, refused.expected = self.keys, self.said, self.shown, self.expected
        return refused


def wrong_type(value: object, expected: str) -> Wrong:
    """The refusal of ``value``, which is not ``expected`` (``a whole number``)."""
    return Wrong(f"holds {shown(value)}, not {expected}", shown=shown(value), expected=expected)


_ITEMS: Mapping[object, str] = {bool: "booleans", int: "whole numbers", float: "numbers", str: "strings", Path: "paths"}
"""What the items of a list of plain values are called in a refusal: "a list of strings"."""


def called(hint: object) -> str:
    """What a value of type ``hint`` is called in a refusal: "a whole number", "an object"."""
    names: dict[object, str] = {
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        str: "a string",
        Path: "a path",
        type(None): "null",
    }
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if args[-1] is not Ellipsis:
            return f"a list of {len(args)}"
        items = "objects" if dataclasses.is_dataclass(args[0]) else _ITEMS.get(args[0])
        return f"a list of {items}" if items else "a list"
    if typing.get_origin(hint) in (Mapping, dict) or dataclasses.is_dataclass(hint):
        return "an object"
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    return names.get(hint, f"a {getattr(hint, '__name__', hint)}")


def shown(value: object) -> str:
    """A value as a message quotes it: its JSON, cut at 40 characters."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
