"""bench.codec: records written field by field and read back strictly by their type hints."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import codec
from bench.jsondoc import JSONObject, JSONValue


@dataclass(frozen=True)
class Port:
    hca: str
    port: int = 1


@dataclass(frozen=True)
class Sample:
    name: str
    iters: int
    busbw_Gbps: float
    check: bool = False
    out: Path | None = None
    kind: Literal["rail", "pair"] = "rail"
    hosts: tuple[str, ...] = ()
    errors: Mapping[str, int] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()
    first: Port | None = None
    raw: Mapping[str, JSONValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.iters < 1:
            raise ValueError(f"iters {self.iters} must be at least 1")


@dataclass(frozen=True)
class Terse:
    bytes: int | None = None

    def to_json(self) -> JSONObject:
        return {k: v for k, v in codec.fields_json(self).items() if v is not None}


def _through_json(record: object) -> object:
    return json.loads(json.dumps(codec.encode(record)))


def test_a_record_round_trips_through_json() -> None:
    record = Sample(
        name="rail 3",
        iters=20,
        busbw_Gbps=391.5,
        check=True,
        out=Path("/tmp/run"),
        kind="pair",
        hosts=("gpu-node01", "gpu-node02"),
        errors={"symbol_error": 3},
        ports=(Port("mlx5_1"), Port("mlx5_2", 2)),
        first=Port("mlx5_1"),
        raw={"nested": [1, {"a": None}]},
    )
    doc = _through_json(record)
    assert codec.decode(Sample, doc) == record
    assert isinstance(doc, dict) and list(doc) == [
        "name",
        "iters",
        "busbw_Gbps",
        "check",
        "out",
        "kind",
        "hosts",
        "errors",
        "ports",
        "first",
        "raw",
    ]


@given(
    name=st.text(max_size=20),
    iters=st.integers(min_value=1, max_value=1 << 40),
    busbw=st.floats(allow_nan=False, allow_infinity=False),
    hosts=st.lists(st.text(max_size=8), max_size=4).map(tuple),
    errors=st.dictionaries(st.text(max_size=8), st.integers(min_value=0, max_value=1 << 62), max_size=4),
)
def test_any_record_of_plain_values_round_trips(
    name: str, iters: int, busbw: float, hosts: tuple[str, ...], errors: dict[str, int]
) -> None:
    record = Sample(name=name, iters=iters, busbw_Gbps=busbw, hosts=hosts, errors=errors)
    assert codec.decode(Sample, _through_json(record)) == record


def test_a_whole_number_reads_as_a_float_and_stays_one() -> None:
    record = codec.decode(Sample, {"name": "a", "iters": 2, "busbw_Gbps": 400})
    assert record.busbw_Gbps == 400.0 and isinstance(record.busbw_Gbps, float)


@pytest.mark.parametrize(
    ("doc", "said"),
    [
        ({"name": "a", "iters": 2.5, "busbw_Gbps": 1}, "iters holds 2.5, not a whole number"),
        ({"name": "a", "iters": True, "busbw_Gbps": 1}, "iters holds true, not a whole number"),
        ({"name": "a", "iters": 2, "busbw_Gbps": True}, "busbw_Gbps holds true, not a number"),
        ({"name": "a", "iters": 2, "busbw_Gbps": 1, "kind": "ring"}, "kind holds \"ring\", not one of 'rail', 'pair'"),
        ({"name": "a", "iters": 2, "busbw_Gbps": 1, "hosts": "n1"}, 'hosts holds "n1", not a list of strings'),
        ({"name": "a", "iters": 2, "busbw_Gbps": 1, "hosts": ["n1", 5]}, "hosts[1] holds 5, not a string"),
        ({"name": "a", "iters": 2, "busbw_Gbps": 1, "errors": {"x": -0.5}}, "errors.x holds -0.5, not a whole number"),
        ({"name": "a", "iters": 2, "busbw_Gbps": 1, "ports": [{"port": 1}]}, "ports[0].hca is missing"),
        ({"name": "a", "iters": 2, "busbw_Gbps": 1, "first": 3}, "first holds 3, not an object"),
        ({"name": "a", "iters": 2, "busbw_Gbps": 1, "out": ""}, 'out holds "", not a path'),
        ({"name": "a", "iters": 2, "busbw_Gbps": None}, "busbw_Gbps holds null, not a number"),
        ({"name": "a", "busbw_Gbps": 1}, "iters is missing"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_its_field(doc: dict[str, object], said: str) -> None:
    with pytest.raises(codec.Refused) as refused:
        codec.decode(Sample, doc, "rails.json: ")
    assert str(refused.value) == f"rails.json: {said}"


def test_the_records_own_checks_are_refusals_too() -> None:
    with pytest.raises(codec.Refused, match="iters 0 must be at least 1"):
        codec.decode(Sample, {"name": "a", "iters": 0, "busbw_Gbps": 1})


def test_a_key_the_record_does_not_declare_is_refused_unless_ignored() -> None:
    doc = {"name": "a", "iters": 2, "busbw_Gbps": 1, "ports": [{"hca": "mlx5_1", "speed": 400}]}
    with pytest.raises(codec.UnknownFields) as refused:
        codec.decode(Sample, doc)
    assert refused.value.names == ("speed",)
    assert "ports[0].names fields this railbench does not know (speed)" in str(refused.value)
    assert codec.decode(Sample, doc, extra="ignore").ports == (Port("mlx5_1"),)


def test_a_document_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(codec.Refused, match=r"^checks.json: holds \[1\], not an object$"):
        codec.decode(Sample, [1], "checks.json: ")


def test_a_record_that_writes_itself_is_written_its_way() -> None:
    assert codec.encode(Terse()) == {}
    assert codec.encode((Terse(5), Terse())) == [{"bytes": 5}, {}]
    assert codec.decode(Terse, {}) == Terse()


def test_numpy_scalars_are_written_as_their_values() -> None:
    written = codec.encode({"count": np.int64(3), "slow": np.bool_(True), "median": np.float64(0.5)})
    assert json.dumps(written) == '{"count": 3, "slow": true, "median": 0.5}'
    with pytest.raises(TypeError, match="JSON cannot hold a ndarray"):
        codec.encode(np.zeros(2))


@dataclass(frozen=True, kw_only=True)
class Skipped:
    name: str
    why: str | codec.Absent | None = codec.ABSENT
    port: Port | codec.Absent = codec.ABSENT


def test_an_absent_field_stays_absent_and_null_stays_null() -> None:
    # run.json's "rails_skipped": null is not its absence: a document read and written again keeps its keys
    for doc in ({"name": "a"}, {"name": "a", "why": None}, {"name": "a", "why": "one node", "port": {"hca": "m"}}):
        read = codec.decode(Skipped, doc)
        assert codec.encode(read) == {**doc, **({"port": {"hca": "m", "port": 1}} if "port" in doc else {})}
    absent = codec.decode(Skipped, {"name": "a"})
    assert absent.why is codec.ABSENT and not absent.why and codec.present(absent.why) is None
    assert codec.Absent() is codec.ABSENT and repr(codec.ABSENT) == "ABSENT"


def test_a_single_record_type_under_a_union_names_the_part_that_is_wrong() -> None:
    with pytest.raises(codec.Refused, match=r"^port\.port holds \"1\", not a whole number$"):
        codec.decode(Skipped, {"name": "a", "port": {"hca": "m", "port": "1"}})
    with pytest.raises(codec.Refused, match=r"^why holds 3, not a string$"):
        codec.decode(Skipped, {"name": "a", "why": 3})


def test_a_change_is_read_as_its_field_and_the_rest_is_kept() -> None:
    record = codec.decode(Skipped, {"name": "a"})
    changed = codec.replaced(record, {"why": "one node", "port": Port("mlx5_1")}, "doc: ")
    assert changed == Skipped(name="a", why="one node", port=Port("mlx5_1"))
    assert codec.replaced(changed, {"port": {"hca": "mlx5_2", "port": 2}}).port == Port("mlx5_2", 2)
    with pytest.raises(codec.Refused, match=r"^doc: port\.port holds \"2\", not a whole number$"):
        codec.replaced(record, {"port": {"hca": "m", "port": "2"}}, "doc: ")
    with pytest.raises(codec.UnknownFields, match=r"^doc: names fields this railbench does not know \(whi\)$"):
        codec.replaced(record, {"whi": "typo"}, "doc: ")


@dataclass(frozen=True, kw_only=True)
class Rate:
    measured: float = 0.0
    expected: float = 0.0
    why: str | codec.Absent = codec.ABSENT


@dataclass(frozen=True, kw_only=True)
class Slow:
    part: str
    rate: Rate = field(default_factory=Rate, metadata=codec.INLINE)
    action: str = ""


@dataclass(frozen=True, kw_only=True)
class Twice:
    measured: float = 0.0
    rate: Rate = field(default_factory=Rate, metadata=codec.INLINE)


def test_an_inline_record_is_written_flat_in_its_place_and_read_back_from_the_same_object() -> None:
    slow = Slow(part="link", rate=Rate(measured=1.5, expected=4.0), action="reseat")
    written = codec.encode(slow)
    assert json.dumps(written) == '{"part": "link", "measured": 1.5, "expected": 4.0, "action": "reseat"}'
    assert codec.decode(Slow, written) == slow
    assert codec.decode(Slow, {"part": "link"}) == Slow(part="link")  # its keys absent: its defaults
    assert codec.decode(Slow, {"part": "p", "why": "x"}).rate.why == "x"


def test_an_inline_records_keys_are_refused_as_the_document_has_them() -> None:
    with pytest.raises(codec.Refused, match=r"^doc: measured holds \"1\", not a number$"):
        codec.decode(Slow, {"part": "link", "measured": "1"}, "doc: ")
    # the field's own name is no key of the document, nor is a key neither record declares
    with pytest.raises(codec.UnknownFields, match=r"\(rate, spread\)$"):
        codec.decode(Slow, {"part": "link", "rate": {}, "spread": 0.1})
    assert codec.decode(Slow, {"part": "link", "spread": 0.1}, extra="ignore") == Slow(part="link")


def test_a_key_declared_by_a_record_and_its_inline_part_is_refused() -> None:
    with pytest.raises(TypeError, match="Twice declares measured twice"):
        codec.encode(Twice())


@dataclass(frozen=True, kw_only=True)
class Section:
    """A document's section recording a resolved config: each field named as the config names it."""

    iters: int | codec.Absent = codec.ABSENT
    hosts: tuple[str, ...] | codec.Absent = codec.ABSENT
    check: bool | codec.Absent = codec.ABSENT
    graph: bool | codec.Absent = codec.ABSENT


@dataclass(frozen=True)
class Resolved:
    iters: int
    hosts: list[str]


@dataclass(frozen=True)
class Asked:
    iters: int | None
    check: bool


def test_a_section_is_filled_by_name_from_the_most_resolved_source_first() -> None:
    section = codec.projected(Section, Resolved(20, ["a", "b"]), Asked(None, True), graph=False)
    assert section == Section(iters=20, hosts=("a", "b"), check=True, graph=False)  # a list read as its tuple
    assert list(codec.encode(section)) == ["iters", "hosts", "check", "graph"]  # the section's own key order


def test_a_section_field_no_source_holds_or_a_value_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(codec.Refused, match=r"sweep\.graph: neither given nor held by any source"):
        codec.projected(Section, Resolved(20, []), Asked(None, True), where="sweep.")
    with pytest.raises(codec.UnknownFields, match="colour"):
        codec.projected(Section, Resolved(20, []), Asked(None, True), graph=True, colour="red")
    with pytest.raises(codec.Refused, match="iters"):
        codec.projected(Section, Asked(None, True), Resolved(20, []), graph=True)  # the flags' None is no count


@dataclass(frozen=True)
class Window:
    """A record with a bounded field and a check of its own that refuses one item of a list."""

    seconds: float = field(default=3.0, metadata=codec.bounded(maximum=600))
    rate: float | None = field(default=None, metadata=codec.bounded(sign="positive"))
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for i, name in enumerate(self.names):
            if not name.islower():
                raise codec.Invalid(("names", i), f"= {name!r} must be lower case")


@pytest.mark.parametrize(
    ("doc", "keys", "said"),
    [
        ({"seconds": -1}, ("seconds",), "is -1.0, a negative value where none can be: the input is damaged"),
        ({"seconds": 601}, ("seconds",), "is 601.0, above the largest plausible value 600"),
        ({"seconds": float("nan")}, ("seconds",), "is nan, not a finite number: the input is damaged"),
        ({"rate": 0}, ("rate",), "is 0.0; it must be above zero"),
        ({"names": ["a", "B"]}, ("names", 1), "= 'B' must be lower case"),
        ({"inner": {"seconds": "x"}}, ("inner", "seconds"), 'holds "x", not a number'),
    ],
)
def test_a_refusal_says_the_path_of_the_value_and_what_is_wrong(
    doc: dict[str, object], keys: tuple[codec.Key, ...], said: str
) -> None:
    """A bounded field and a record's own check of one value are refused at that value, as a value of the wrong
    type is: a reader that locates values itself (a profile's file and line) gets the path and the words."""

    @dataclass(frozen=True)
    class Outer:
        inner: Window = field(default_factory=Window)

    cls: type[Window | Outer] = Outer if "inner" in doc else Window
    with pytest.raises(codec.Refused) as refused:
        codec.decode(cls, doc, "p: ")
    assert (refused.value.keys, refused.value.said) == (keys, said)
    assert str(refused.value).startswith("p: ") and str(refused.value).endswith(said)
    assert codec.decode(Window, {"rate": None, "seconds": 0}) == Window(seconds=0.0)


def test_a_type_refusal_says_the_value_and_the_type_and_unknown_keys_say_the_known_ones() -> None:
    with pytest.raises(codec.Refused) as refused:
        codec.decode(Window, {"names": "a"})
    assert (refused.value.shown, refused.value.expected) == ('"a"', "a list of strings")
    with pytest.raises(codec.UnknownFields) as unknown:
        codec.decode(Window, {"second": 1, "rates": 2})
    assert (unknown.value.names, unknown.value.known, unknown.value.keys) == (
        ("rates", "second"),
        ("names", "rate", "seconds"),
        (),
    )


def _kib(value: object) -> int:
    """A size written as "4K" or a number of bytes (the form a profile writes sizes in)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.endswith("K") and value[:-1].isdigit():
        return int(value[:-1]) << 10
    raise ValueError(f"= {codec.shown(value)} is not a size such as 4K")


@dataclass(frozen=True)
class Buffer:
    nbytes: int = field(default=0, metadata={**codec.read_by(_kib), **codec.bounded(maximum=1 << 20)})


def test_a_field_read_by_its_own_reader_keeps_its_bounds_and_is_refused_at_the_field() -> None:
    assert codec.decode(Buffer, {"nbytes": "4K"}) == Buffer(4096) == codec.decode(Buffer, {"nbytes": 4096})
    assert codec.replaced(Buffer(), {"nbytes": "8K"}) == Buffer(8192)
    for value, said in ((True, "= true is not a size such as 4K"), ("2048K", "is 2097152, above the largest")):
        with pytest.raises(codec.Refused) as refused:
            codec.decode(Buffer, {"nbytes": value})
        assert refused.value.keys == ("nbytes",) and refused.value.said.startswith(said)


@dataclass(frozen=True)
class Steps:
    """A table of steps as a profile's targets hold them, and a part read by a reader as a record of its own."""

    steps: tuple[tuple[int, float], ...] = ()
    window: Window = field(default_factory=Window, metadata=codec.read_by(lambda value: codec.decode(Window, value)))


def test_a_fixed_tuple_reads_each_item_as_its_own_type_and_a_part_read_whole_is_refused_inside() -> None:
    assert codec.decode(Steps, {"steps": [[256, 3296], [1024, 3720.5]]}).steps == ((256, 3296.0), (1024, 3720.5))
    assert codec.decode(Steps, codec.encode(Steps(((1, 2.0),)))) == Steps(((1, 2.0),))  # round trip
    for doc, keys, said in (
        ({"steps": [[1]]}, ("steps", 0), "holds [1], not a list of 2"),
        ({"steps": [[1, "x"]]}, ("steps", 0, 1), 'holds "x", not a number'),
        ({"window": {"seconds": -1}}, ("window", "seconds"), "is -1.0, a negative value"),
    ):
        with pytest.raises(codec.Refused) as refused:
            codec.decode(Steps, doc)
        assert refused.value.keys == keys and refused.value.said.startswith(said), refused.value
    with pytest.raises(codec.UnknownFields) as unknown:
        codec.decode(Steps, {"window": {"second": 1}})
    assert (unknown.value.keys, unknown.value.names, unknown.value.known) == (
        ("window",),
        ("second",),
        ("names", "rate", "seconds"),
    )
