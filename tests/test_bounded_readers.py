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

from bench import bounded, jsondoc, textlines
from bench.bounded import InputError, MissingInput
from bench.exits import UserError
from bench.fabric.sysfs_io import Sysfs
from bench.rundir.files import atomic_write_json, check_replaceable, current_umask
from tests.support import in_thread, railbench_inline

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


# ---------------------------------------------------------------------------------------------------------
# files that open but do not read as their size says (issue 33 item 21): real /proc files, no stand-ins

_MEM, _PAGEMAP = Path("/proc/self/mem"), Path("/proc/self/pagemap")
needs_proc = pytest.mark.skipif(
    not (_MEM.exists() and _PAGEMAP.exists() and os.access(_MEM, os.R_OK) and os.access(_PAGEMAP, os.R_OK)),
    reason="needs Linux /proc/self/mem and /proc/self/pagemap readable",
)


@needs_proc
def test_a_read_the_kernel_refuses_is_one_input_error_in_every_reader() -> None:
    """/proc/self/mem is a regular file of size 0 that opens, and reading its first page fails with EIO."""
    for read in (
        lambda: bounded.read_bytes(_MEM, fix="fix it"),
        lambda: list(textlines.numbered_lines(textlines.open_text(_MEM))),
        lambda: list(bounded.capped_lines(bounded.open_text(_MEM, fix="f"), label="mem", fix="f")),
    ):
        with pytest.raises(InputError, match=r"cannot read .*mem \(Input/output error\)"):
            read()


@needs_proc
def test_a_file_whose_size_says_zero_is_read_up_to_its_reader_s_cap_not_without_end() -> None:
    """/proc/self/pagemap says 0 bytes and streams 8 bytes per page of the address space (terabytes)."""
    assert _PAGEMAP.stat().st_size == 0
    cap = 1 << 20
    with pytest.raises(InputError, match="pagemap is over the 1 MiB limit for it"):
        bounded.read_bytes(_PAGEMAP, fix="f", max_bytes=cap)
    with pytest.raises(InputError, match="pagemap is over the 1 MiB limit for it"):
        for _ in textlines.numbered_lines(textlines.open_text(_PAGEMAP, max_bytes=cap)):
            pass


def test_the_cap_counts_what_was_read_and_a_seek_back_reads_it_again(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_bytes(b"x" * 5000)
    with bounded.open_regular(path, fix="f", max_bytes=5000) as handle:
        assert len(handle.read(4096)) == 4096
        handle.seek(0)  # nccl-tests' reader looks at the head, then starts over
        assert len(handle.read()) == 5000
    with bounded.open_regular(path, fix="f", max_bytes=4999) as handle, pytest.raises(InputError, match="over"):
        handle.read()


@needs_proc
@pytest.mark.parametrize(
    ("flag", "path", "said"),
    [
        ("--nccl-log", _MEM, "cannot read /proc/self/mem (Input/output error)"),
        ("--topology", _MEM, "cannot read /proc/self/mem (Input/output error)"),
        ("--topology", _PAGEMAP, "/proc/self/pagemap is over the 64 MiB limit for it"),
    ],
)
def test_check_refuses_such_files_in_one_line(flag: str, path: Path, said: str) -> None:
    proc = railbench_inline(["check", "--profile", "lambda-1cc", flag, str(path)])
    assert proc.returncode == 2 and said in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_outside_text_is_printable_before_any_reader_sees_it(tmp_path: Path) -> None:
    """A NodeDescription, a log line or a sysfs attribute any root can write reaches the terminal and the JSON
    records: escape sequences are removed and every other control character shown (issue 33 item 20)."""
    hostile = "node01\x1b]0;pwned\x07 mlx5_1\x1b[2J\x00\x9b\u202e"
    shown = "node01 mlx5_1\\x00\\x9b\\u202e"
    assert list(textlines.text_lines(f"{hostile}\nplain\ttab\n")) == [(1, shown), (2, "plain\ttab")]
    device = tmp_path / "class" / "infiniband" / "mlx5_1"
    device.mkdir(parents=True)
    (device / "node_desc").write_text(hostile + "\n")
    assert Sysfs(tmp_path).read("class", "infiniband", "mlx5_1", "node_desc") == shown


def test_a_run_directory_from_elsewhere_names_its_hosts_printably(tmp_path: Path) -> None:
    """run.json is input too (CI artifacts, a tarball from another site): its names reach `history list`, the
    report and compare's lines, so a string escaping a control character comes out printable."""
    text = json.dumps({"cluster": "lab\x1b]0;pwned\x07", "hosts": ["n1\u202e", "n2"], "note\x9b": "x\ny"})
    assert "\\u001b" in text  # JSON escapes what it cannot hold raw
    assert jsondoc.loads(text, "run.json", "f") == {
        "cluster": "lab",
        "hosts": ["n1\\u202e", "n2"],
        "note\\x9b": "x\\x0ay",
    }
    assert jsondoc.loads('{"cluster": "lab", "a": "\\\\u001b"}', "run.json", "f") == {"cluster": "lab", "a": "\\u001b"}
