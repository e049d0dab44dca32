"""The one serialisation point between a railbench parent and the ranks it starts.

The parent has already parsed and validated the user's flags into a frozen config; the ranks get that
config itself, as JSON after ``--spec``, never a hand-kept list of flags rebuilt from it (which drifts: a
default changed in one place and not the other, a flag forgotten). Any frozen dataclass of plain fields
round-trips: str, int, float, bool, None, ``Path``, tuples, ``Literal`` values and nested configs, written
and read strictly by ``bench.codec``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from bench import codec, jsondoc
from bench.exits import UserError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

SPEC_FLAG = "--spec"
Config = TypeVar("Config", bound="DataclassInstance")
"""A config class: a (frozen) dataclass of plain fields."""


def encode(config: DataclassInstance) -> str:
    """``config`` (a frozen dataclass) as one JSON string (``bench.codec``)."""
    return codec.dumps(config)


def decode(cls: type[Config], text: str) -> Config:
    """The config of type ``cls`` that :func:`encode` wrote (read through ``bench.jsondoc``: depth and numbers
    bounded, so a hand-typed ``--spec`` is one line and exit 2 like any other bad input)."""
    fix = "start the ranks with the same railbench version as the parent"
    doc = jsondoc.loads(text, SPEC_FLAG, f"it is not the JSON a railbench parent writes; {fix}")
    if not isinstance(doc, dict):
        raise UserError(f"{SPEC_FLAG} is not the JSON a railbench parent writes")
    try:
        built = codec.decode(cls, doc)
    except codec.UnknownFields as exc:
        raise UserError(
            f"{SPEC_FLAG} names fields this railbench does not know ({', '.join(exc.names)}): {fix}"
        ) from None
    except codec.Refused as exc:
        # a value of the wrong type (said by the codec), or one the config's own checks refused
        raise UserError(f"{SPEC_FLAG} is not what a railbench parent writes: {exc}: {fix}") from None
    return built


def rank_argv(command: str, config: DataclassInstance) -> list[str]:
    """The ranks' argv: the command and its whole config."""
    return [command, SPEC_FLAG, encode(config)]
