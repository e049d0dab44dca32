"""Config fields that say how the command line gives them, declared once on the field.

A config's field carries a :class:`Flag` in its metadata (``field(default=..., metadata=given_by(Flag(...)))``):
the option's name, help, value kind and what ``--help`` says about the default. ``bench.commands.flags``
builds the argparse flag from it and reads the value back into the config, so no list of flags repeats the
config's fields (the CLI generated from the config dataclasses, as torchtitan's config manager does).

In the ground: the profile's own tables (``bench.profile.rails_table.RailsTestTable``) declare their fields so, where
the command line gives the same value as the profile and the fallback, the field's default, is railbench's own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

ValueKind = Literal["int", "path", "size", "number", "seconds"]
"""How a flag's text becomes the field's value (``bench.commands.flags`` holds the parsers, which name the
flag in the one line they say about a bad value)."""

FLAG = "railbench.flag"
"""The field-metadata key of a field's :class:`Flag`."""


@dataclass(frozen=True)
class Flag:
    """How the command line gives one config field."""

    name: str
    """The option, e.g. ``--timeout``."""
    help: str
    dest: str | None = None
    """argparse's name for the value where it is not the field's (``--timeout`` is ``timeout``)."""
    metavar: str | None = None
    kind: ValueKind | None = None
    """None: the text itself (or a switch, with ``switch``)."""
    choices: tuple[str, ...] = ()
    switch: bool = False
    """A flag without a value that sets the field to True."""
    default_text: str | None = None
    """What ``--help`` says the default is, where the value comes from elsewhere (``bench.commands.helptext``)."""
    short: str | None = None
    """A one-letter form, as nccl-tests' ``-n`` beside ``--iters``."""


def given_by(flag: Flag) -> Mapping[str, Flag]:
    """A field's metadata naming the flag that gives it: ``field(default=..., metadata=given_by(Flag(...)))``."""
    return {FLAG: flag}


def flag_of(declared: dataclasses.Field[object]) -> Flag | None:
    """The field's :class:`Flag`, or None for a field the command line does not give directly."""
    found = declared.metadata.get(FLAG)
    return found if isinstance(found, Flag) else None


def flagged_fields(cls: type[DataclassInstance]) -> list[tuple[dataclasses.Field[object], Flag]]:
    """The fields of ``cls`` that carry a flag, in declaration order (the order ``--help`` lists them)."""
    return [(f, flag) for f in dataclasses.fields(cls) if (flag := flag_of(f)) is not None]


def fallbacks(cls: type[DataclassInstance]) -> Mapping[str, int | float]:
    """Field -> the value used where neither the command line nor the profile gives one: the default of each
    flagged field of a profile table (``bench.profile.rails_table.RailsTestTable``)."""
    return {
        f.name: f.default
        for f, _ in flagged_fields(cls)
        if isinstance(f.default, int | float) and not isinstance(f.default, bool)
    }
