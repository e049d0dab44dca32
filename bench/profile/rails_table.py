"""The rails test's ``[rails_test]`` table: message sizes, iterations, repeats, the relative cut, confirmation.

One record serves three sources: a profile's ``[rails_test]`` (``bench.profile.cluster``), the command line's own
(``RailsConfig.rails_test``, the flags built from these fields' ``Flag``) and the resolved table the rails test
runs with (``bench.rails.plan.config.resolve``: the command line's values over the profile's over railbench's own).
A field holds railbench's own value, its default, unless ``given`` names it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench import codec
from bench.flagged import Flag, given_by
from bench.jsondoc import Parsed
from bench.profile.toml_lines import refuse_unread, size

_MIB256 = 256 << 20
RAIL_COLLECTIVES = ("all_reduce", "all_gather")
"""The collectives the rail groups can run, and those they run unless told otherwise."""


@dataclass(frozen=True)
class RailsTestTable:
    """A ``[rails_test]`` table: railbench's own values (the defaults) where ``given`` does not name a field."""

    rail_bytes: int = field(
        default=_MIB256,
        metadata={
            **given_by(Flag("--rail-bytes", "message size of the rail-group collectives", metavar="SIZE", kind="size")),
            **codec.read_by(size),
        },
    )
    pair_bytes: int = field(
        default=_MIB256,
        metadata={
            **given_by(
                Flag("--pair-bytes", "message size of each pair exchange, per direction", metavar="SIZE", kind="size")
            ),
            **codec.read_by(size),
        },
    )
    iters: int = field(
        default=10,
        metadata=given_by(Flag("--iters", "timed iterations per measurement", short="-n", metavar="N", kind="int")),
    )
    warmup: int = field(
        default=2,
        metadata=given_by(
            Flag("--warmup", "untimed iterations before each measurement", short="-w", metavar="N", kind="int")
        ),
    )
    repeats: int = field(
        default=1,
        metadata=given_by(
            Flag("--repeats", "passes over the pair matrix (reshuffled after the first)", metavar="N", kind="int")
        ),
    )
    relative_fraction: float = field(
        default=0.8,
        metadata={
            **given_by(
                Flag(
                    "--relative-fraction",
                    "a pair or rail is slow below this fraction of its peers' level",
                    metavar="FRACTION",
                    kind="number",
                )
            ),
            **codec.bounded(sign="positive", maximum=1.0),
        },
    )
    collectives: tuple[str, ...] = RAIL_COLLECTIVES
    """The rail-group collectives (the command line's are ``RailsConfig.collectives``, with their own flag)."""
    confirm: int = field(
        default=2,
        metadata=given_by(Flag("--confirm", "re-measure each suspect pair N times (0: off)", metavar="N", kind="int")),
    )
    given: tuple[str, ...] = ()
    """The fields the profile or the command line set, in the order they were given; the others hold their
    default. What decides, field by field, whose value the resolved table takes."""

    # The values are of each field's own type, checked where they were read (the TOML table, the flags): the one
    # place a table is made from names, so the mapping is as loosely typed as the keyword arguments it becomes.
    @classmethod
    def of(cls, values: Mapping[str, Any]) -> RailsTestTable:
        """The table that gives ``values`` and holds the defaults elsewhere."""
        return dataclasses.replace(cls(given=tuple(values)), **values)

    def over(self, below: RailsTestTable) -> RailsTestTable:
        """This table's given values laid over ``below``'s, which are laid over the defaults."""
        beneath = {name: getattr(below, name) for name in below.given}
        return RailsTestTable.of({**beneath, **{name: getattr(self, name) for name in self.given}})

    @classmethod
    def from_profile(cls, values: Parsed) -> RailsTestTable:
        """A profile's ``[rails_test]`` table read by the codec, each key of its field's type (the sizes as
        :func:`bench.profile.toml_lines.size` reads them); the keys it sets are ``given``, in its order."""
        refuse_unread(cls, values, "given")  # what the table sets is said by its keys, never by a key of its own
        return dataclasses.replace(codec.decode(cls, values), given=tuple(values))
