from __future__ import annotations

import pytest

from bench.exits import UserError
from bench.units import GBps_from_gbps, format_size, gbps_from_GBps, parse_size


@pytest.mark.parametrize(
    ("text", "value"),
    [("8", 8), ("1K", 1024), ("64M", 64 << 20), ("16G", 16 << 30), ("1k", 1024), ("2KB", 2048), ("0.5K", 512)],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "abc", "-1K", "1X", "0.3"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(UserError, match="size"):
        parse_size(text)


def test_format_size_round_trips_powers_of_two() -> None:
    for shift in range(0, 40, 3):
        assert parse_size(format_size(1 << shift)) == 1 << shift
    assert format_size(1536) == "1.5K"


def test_node_target_units() -> None:
    # docs/design.md, "Units and formulas": 3200 Gb/s per node is 400 GB/s.
    assert GBps_from_gbps(3200) == 400
    assert gbps_from_GBps(400) == 3200
