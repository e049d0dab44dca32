"""The one bounded reader (``bench.bounded`` files, ``bench.jsondoc`` JSON): every file railbench did not just
write is a regular file of bounded size, read without blocking, and its JSON is bounded in depth and number
range, with lone surrogates made printable. A property per root cause, and the inputs of the fault campaign
(issue 24) kept as explicit examples."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench import bounded, jsondoc
from bench.bounded import InputError, MissingInput
from bench.exits import UserError
from bench.rundir.files import atomic_write_json, check_replaceable, current_umask
from tests.support import in_thread

SETTINGS = settings(max_examples=150, deadline=None)
_JSON_TOKENS = st.sampled_from(
    [
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        '"a"',
        '"\\ud800"',
        '"\\udc80x"',
        '"\\ud83d\\ude00"',
        "1",
        "-0",
        "1e999",
        "-1e999",
        "NaN",
        "Infinity",
        "-Infinity",
        "9" * 30,
        "9" * 5000,
        "1.5",
        "true",
        "null",
        " ",
        "\\",
        '"',
    ]
)


def _plain(value: object, depth: int = 0) -> None:
    """What every reader may rely on: plain JSON values, printable as UTF-8, within the depth and ranges."""
    assert depth <= jsondoc.MAX_DEPTH
    if isinstance(value, dict):
        for key, item in value.items():
            key.encode("utf-8")
            _plain(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _plain(item, depth + 1)
    elif isinstance(value, str):
        value.encode("utf-8")  # a lone surrogate would raise UnicodeEncodeError here
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        assert jsondoc.INT_MIN <= value <= jsondoc.INT_MAX
    else:
        assert isinstance(value, float) and math.isfinite(value)


@SETTINGS
@given(text=st.one_of(st.text(max_size=400), st.lists(_JSON_TOKENS, max_size=120).map("".join)))
@example(text="[" * 100_000)  # RecursionError
@example(text="{" * 50_000)
@example(text="9" * 5000)  # ValueError: Python's 4,300-digit limit
@example(text='{"nranks": 99999999999999999999}')  # over 64 bits: OverflowError in SQLite
@example(text='{"bytes": 1e999, "x": NaN, "y": -Infinity}')
@example(text='{"cluster": "a\\udc80b", "\\ud800": ["\\udfff"]}')  # UnicodeEncodeError when written again
def test_any_json_text_is_plain_bounded_values_or_one_input_error(text: str) -> None:
    try:
        doc = jsondoc.loads(text, "x.json", "fix it")
    except InputError as exc:
        message = str(exc)
        assert message.startswith("x.json") and message.endswith("fix it") and "\n" not in message
        return
    _plain(doc)


def test_the_limits_in_words() -> None:
    cases = {
        "[" * 100_000: "nests objects and arrays more than 64 deep",
        "9" * 5000: "an integer of 5000 digits",
        str(1 << 63): "outside the 64-bit range",
        "1e999": "too large to be finite",
        "[NaN]": "NaN, which is not a number JSON allows",
    }
    for text, words in cases.items():
        with pytest.raises(InputError, match=words):
            jsondoc.loads(text, "x.json", "fix it")
    assert jsondoc.loads(str((1 << 63) - 1), "x", "f") == jsondoc.INT_MAX
    assert jsondoc.loads('["a\\udc80b", "\\ud83d\\ude00"]', "x", "f") == ["a\ufffdb", "\U0001f600"]


def test_writers_write_what_the_readers_read(tmp_path: Path) -> None:
    """railbench's JSON writer writes standard JSON: a value that is not finite is null, never NaN."""
    atomic_write_json(tmp_path / "doc.json", {"a": math.nan, "b": [math.inf, 1.5], "c": {"d": -math.inf}})
    assert jsondoc.read_json_object(tmp_path / "doc.json", fix="f") == {"a": None, "b": [None, 1.5], "c": {"d": None}}


# ---------------------------------------------------------------------------------------------------------
# files


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder", "dangling", "loop", "large"])
def test_every_odd_path_is_one_input_error_and_never_blocks(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "doc.json"
    if kind == "fifo":
        os.mkfifo(path)  # open() and read() would block for good
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")  # read() would never end
    elif kind == "folder":
        path.mkdir()
    elif kind == "dangling":
        path.symlink_to(tmp_path / "gone")
    elif kind == "loop":
        path.symlink_to(path)
    else:
        with path.open("wb") as handle:
            handle.truncate(bounded.MAX_DOC_BYTES + 1)  # sparse: costs no disk
    outcome = in_thread(lambda: jsondoc.read_json(path, fix="fix it"))
    assert isinstance(outcome, InputError), outcome
    assert isinstance(outcome, MissingInput) == (kind == "dangling")
    assert str(path) in str(outcome) and "\n" not in str(outcome)


def test_capped_lines_refuses_a_line_it_never_holds_whole(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    path.write_text("a,b\n1,2\n" + "x" * 100_000 + "\n")
    with bounded.open_text(path, fix="f") as stream:
        lines = bounded.capped_lines(stream, label=str(path), fix="f", limit=1000)
        assert next(lines) == "a,b\n" and next(lines) == "1,2\n"
        with pytest.raises(InputError, match="line 3 is over 1000 characters"):
            next(lines)


@SETTINGS
@given(name=st.text(min_size=1, max_size=300))
@example(name="x" * 256)
@example(name="é" * 128)  # 256 bytes in UTF-8
@example(name="a\x00b")
def test_path_names_too_long_for_linux_are_one_line(name: str) -> None:
    path = Path("/tmp") / name
    raw = os.fsencode(path)
    fits = b"\0" not in raw and all(len(part) <= 255 for part in raw.split(b"/"))
    try:
        bounded.check_path_names(path, "--out")
    except InputError as exc:
        assert not fits and str(exc).startswith("--out") and "\n" not in str(exc)
    else:
        assert fits


def test_an_atomic_write_never_replaces_a_device_a_fifo_or_a_link(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("kept\n")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    os.mkfifo(tmp_path / "fifo")
    for name in ("link", "fifo"):
        with pytest.raises(UserError, match=r"symlink|FIFO"):
            check_replaceable(tmp_path / name, "--out")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "target").read_text() == "kept\n"
    check_replaceable(tmp_path / "target")  # a regular file is replaced as before
    check_replaceable(tmp_path / "absent")


def test_the_umask_is_read_without_changing_it() -> None:
    before = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        assert os.umask(0o027) == 0o027  # unchanged by the read
    finally:
        os.umask(before)


def test_json_files_round_trip_through_the_reader(tmp_path: Path) -> None:
    doc = {"nested": [[{"k": [1, 2.5, None, True, "é"]}]], "big": jsondoc.INT_MAX}
    (tmp_path / "doc.json").write_text(json.dumps(doc))
    assert jsondoc.read_json_object(tmp_path / "doc.json", fix="f") == doc
    assert jsondoc.optional_object(tmp_path / "absent.json", fix="f") is None
