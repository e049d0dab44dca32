"""The one bounded number parser: every number from outside is length-limited, finite and signed."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.bounded import InputError, Where, finite, parse_float, parse_int

AT = Where("log.txt", "busbw", line=7)


def test_ordinary_numbers_read() -> None:
    assert parse_int(" 42 ", AT) == 42
    assert parse_float("3e+02", AT) == 300.0
    assert parse_int("-3", AT, sign="any") == -3


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("9" * 5000, "too long"),
        ("inf", "not a finite"),
        ("1e999", "not a finite"),
        ("nan", "not a finite"),
        ("-1.5", "negative"),
        ("", "empty"),
        ("abc", "not a number"),
    ],
)
def test_hostile_floats_are_refused_with_the_place_named(text: str, words: str) -> None:
    with pytest.raises(InputError, match=words) as caught:
        parse_float(text, AT)
    assert "log.txt:7: busbw" in str(caught.value)


def test_int_limits() -> None:
    with pytest.raises(InputError, match="too long"):
        parse_int("1" * 4400, AT)
    with pytest.raises(InputError, match="above the largest"):
        parse_int("70000", AT, maximum=65535)
    with pytest.raises(InputError, match="above zero"):
        parse_int("0", AT, sign="positive")
    with pytest.raises(InputError, match="not a whole number"):
        parse_int("1.5", AT)
    with pytest.raises(InputError, match="not a finite"):
        finite(float("inf"), Where("run.json", "time_us"))


@given(st.text(max_size=200))
def test_any_text_gives_a_number_or_the_input_error(text: str) -> None:
    for parse in (parse_int, parse_float):
        try:
            value = parse(text, AT)
        except InputError:
            continue
        assert math.isfinite(value) and value >= 0
