"""Values that used to let ranks start and then fail them are exit 2 and one line before any rank: a timeout
that is no deadline (nan, inf), an ``--out`` that cannot be followed (a symbolic-link loop), a hidden ``--spec``
whose fields do not have their types. Each root cause has a property or a real-file test; the command line is
run in-process (``bench.cli.main``): when validation misses, the test would start mpirun and fail on the run
directory it leaves."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.accept.config import AcceptConfig
from bench.cli import main
from bench.exits import UserError
from bench.frame.config_parts import Launch, Output
from bench.rails.plan.config import RailsConfig
from bench.runtime import spec
from bench.runtime.deadlines import MAX_TIMEOUT_S, check_timeout
from bench.sweep.config import RunConfig


def _exit_2_one_line(argv: list[str], capsys: pytest.CaptureFixture[str], *words: str) -> str:
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("command", ["run", "rails", "accept"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-5", "1e999", "86401"])
def test_a_timeout_that_is_no_deadline_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, value: str
) -> None:
    out = tmp_path / "out"
    argv = [command, "--np", "2", "--timeout", value, "--out", str(out), "--no-history"]
    _exit_2_one_line([*argv, *(["--profile", "local"] if command == "accept" else [])], capsys, "--timeout")
    assert not out.exists()


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**30), 10**30))
def test_check_timeout_gives_a_real_deadline_or_one_line(value: float) -> None:
    try:
        seconds = check_timeout(value)
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("--timeout")
        assert not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT_S)
    else:
        assert math.isfinite(seconds) and 0 < seconds <= MAX_TIMEOUT_S and seconds == value


@pytest.mark.parametrize("command", ["run", "rails", "accept"])
def test_an_out_that_is_a_symlink_loop_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    (tmp_path / "nowhere").symlink_to(tmp_path / "missing")
    profile = ["--profile", "local"] if command == "accept" else []
    for out, words in ((tmp_path / "a", "loop"), (tmp_path / "a" / "run", "loop"), (tmp_path / "nowhere", "nothing")):
        _exit_2_one_line([command, "--np", "2", "--out", str(out), "--no-history", *profile], capsys, "--out", words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "nowhere"]


@pytest.mark.parametrize("command", ["run", "rails", "accept"])
@pytest.mark.parametrize("name", ["results.csv", "rails.json", "junit.xml", "nccl"])
def test_an_out_holding_a_symlinked_run_file_is_refused_before_any_rank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, name: str
) -> None:
    # Rank 0 used to refuse it mid-run, exit 3: an infrastructure fault blamed on the cluster (issue 33 item 22).
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "someone-elses"
    target.write_text("keep me\n")
    (out / name).symlink_to(target)
    profile = ["--profile", "local"] if command == "accept" else []
    _exit_2_one_line([command, "--np", "2", "--out", str(out), "--no-history", *profile], capsys, name, "link")
    assert target.read_text() == "keep me\n"
    assert sorted(p.name for p in out.iterdir()) == [name]


def test_an_out_holding_a_fifo_where_a_run_file_goes_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "results.csv")
    _exit_2_one_line(["rails", "--np", "2", "--out", str(out), "--no-history"], capsys, "results.csv", "FIFO")


def test_a_spec_with_a_float_for_an_int_is_refused_before_any_rank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    doc = json.loads(spec.encode(RunConfig(launch=Launch(np=2), output=Output(out=out, no_history=True))))
    for field, value in (("iters", 2.5), ("warmup", True), ("max_bytes", "64M"), ("collectives", "all_reduce")):
        text = json.dumps({**doc, field: value})
        _exit_2_one_line(["run", "--spec", text], capsys, "--spec", field)
    _exit_2_one_line(["run", "--spec", "[" * 100_000], capsys, "--spec", "nests")
    _exit_2_one_line(["run", "--spec", '{"iters": ' + "9" * 5000 + "}"], capsys, "--spec")
    assert not out.exists()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _typed_like(value: object, hint: object) -> bool:
    """Whether a decoded value has the field's declared type (what every rank's code assumes)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_typed_like(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin is tuple:
        return isinstance(value, tuple) and all(_typed_like(v, typing.get_args(hint)[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if dataclasses.is_dataclass(hint):
        return isinstance(value, hint)  # type: ignore[arg-type]
    return isinstance(value, hint)  # type: ignore[arg-type]


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(
    cls=st.sampled_from([RunConfig, RailsConfig]),
    data=st.data(),
)
def test_any_spec_field_decodes_to_its_type_or_one_line(cls: type, data: st.DataObject) -> None:
    base = json.loads(spec.encode(cls()))
    field = data.draw(st.sampled_from(sorted(base)))
    text = json.dumps({**base, field: data.draw(_JSON)})
    try:
        config = spec.decode(cls, text)
    except UserError as exc:  # the spec's own word, or the config's check of a range ("--iters 0 ...")
        assert "\n" not in str(exc) and str(exc).startswith("-"), str(exc)
        return
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(config):
        assert _typed_like(getattr(config, f.name), hints[f.name]), (f.name, getattr(config, f.name))


def test_an_accept_spec_checks_its_nested_configs() -> None:
    doc = json.loads(spec.encode(AcceptConfig(profile="local", sweep=RunConfig(), rails=RailsConfig())))
    doc["rails"]["rails_test"]["pair_bytes"] = 1.5
    with pytest.raises(UserError, match=r"rails\.rails_test\.pair_bytes holds 1\.5"):
        spec.decode(AcceptConfig, json.dumps(doc))
