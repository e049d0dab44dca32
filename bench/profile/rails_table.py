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

from bench.bounded import Where, finite
from bench.exits import UserError
from bench.flagged import Flag, given_by
from bench.jsondoc import Parsed
from bench.profile.toml_lines import line_of
from bench.units import parse_size

_MIB256 = 256 << 20
RAIL_COLLECTIVES = ("all_reduce", "all_gather")
"""The collectives the rail groups can run, and those they run unless told otherwise."""


@dataclass(frozen=True)
class RailsTestTable:
    """A ``[rails_test]`` table: railbench's own values (the defaults) where ``given`` does not name a field."""

    rail_bytes: int = field(
        default=_MIB256,
        metadata=given_by(
            Flag("--rail-bytes", "message size of the rail-group collectives", metavar="SIZE", kind="size")
        ),
    )
    pair_bytes: int = field(
        default=_MIB256,
        metadata=given_by(
            Flag("--pair-bytes", "message size of each pair exchange, per direction", metavar="SIZE", kind="size")
        ),
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
        metadata=given_by(
            Flag(
                "--relative-fraction",
                "a pair or rail is slow below this fraction of its peers' level",
                metavar="FRACTION",
                kind="number",
            )
        ),
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
    def from_table(cls, values: Parsed, where: str, text: str) -> RailsTestTable:
        """The table, each key checked for its type; UserError naming the file and line otherwise."""
        known = sorted(f.name for f in dataclasses.fields(cls) if f.name != "given")
        read: dict[str, int | float | tuple[str, ...]] = {}
        for key, value in values.items():
            line = line_of(text, ("rails_test", key))
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if key not in known:
                raise UserError(f"{where}:{line}: unknown [rails_test] key {key!r}; known keys: {', '.join(known)}")
            if key in ("rail_bytes", "pair_bytes") and (isinstance(value, str) or (number and isinstance(value, int))):
                read[key] = parse_size(str(value), f"{where}:{line}: [rails_test] {key}")
            elif key == "relative_fraction" and number and isinstance(value, (int, float)):
                at = Where(where, f"[rails_test] {key}", line)
                read[key] = finite(float(value), at, sign="positive", maximum=1.0)
            elif key in ("iters", "warmup", "repeats", "confirm") and number and isinstance(value, int):
                read[key] = value
            elif key == "collectives" and isinstance(value, list) and all(isinstance(v, str) for v in value):
                read[key] = tuple(str(v) for v in value)
            else:
                raise UserError(f"{where}:{line}: [rails_test] {key} = {value!r} has the wrong type; fix the profile")
        return cls.of(read)
