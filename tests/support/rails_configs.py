"""A RailsConfig from flat keyword arguments, as the tests have always written them: the ``[rails_test]``
fields (sizes, iterations, repeats, the relative cut, confirmation) go into the config's own table."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from bench.profile.rails_table import RailsTestTable
from bench.rails.plan.config import RailsConfig

TABLE_FIELDS = frozenset(f.name for f in fields(RailsTestTable)) - {"collectives", "given"}
"""``collectives`` is the config's own field (with its own default), not its table's; ``given`` is the table's
record of the others."""


def rails_config(**given: Any) -> RailsConfig:
    """``RailsConfig(**given)`` with the table's fields moved into ``rails_test``."""
    table = {name: given.pop(name) for name in sorted(TABLE_FIELDS & given.keys())}
    return RailsConfig(rails_test=RailsTestTable.of(table), **given)
