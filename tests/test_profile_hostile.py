"""Profiles against hostile input (issue 12): deep nesting, numbers that are not finite, untyped [compare]
rules, files that are not files. Each is one line and exit 2, before tomllib can recurse."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench.exits import UserError
from bench.profile.cluster import load_profile
from bench.tomldoc import MAX_DEPTH, MAX_TOML_BYTES, check_nesting, loads
from tests.support import railbench_inline

HEAD = 'name = "x"\ntransport = "socket"\n'


def _refused(tmp_path: Path, text: str, *words: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(UserError) as info:
        load_profile(str(path))
    assert time.monotonic() - started < 2
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message and len(message) < 300, message
    for word in words:
        assert word in message, message
    return message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (HEAD + "node_target_gbps = " + "[" * 5000 + "]" * 5000 + "\n", 3),
        (HEAD + "[report]\nx = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n", 4),
        (HEAD + "[report]\nx = [" + "{a = [" * 2500 + "\n", 4),  # unclosed, as a fuzzer leaves it
    ],
    ids=["arrays", "inline-tables", "mixed-unclosed"],
)
def test_deep_nesting_is_refused_before_parsing(tmp_path: Path, text: str, line: int) -> None:
    message = _refused(tmp_path, text, f"nested more than {MAX_DEPTH} deep")
    assert message.startswith(f"{tmp_path / 'bad.toml'}:{line}:")


def test_deep_nesting_through_the_cli_is_one_line_in_every_command(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(HEAD + "nvlink_target_gbps = " + "[" * 5000 + "]" * 5000 + "\n")
    for args in (["check"], ["run", "--np", "2", "--no-history", "--out", str(tmp_path / "out")]):
        done = railbench_inline([*args, "--profile", str(path)], cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr[-2000:]
        assert "nested more than" in done.stderr
    assert not (tmp_path / "out").exists()


def test_dotted_keys_nest_too(tmp_path: Path) -> None:
    _refused(tmp_path, HEAD + "[report]\n" + ".".join(["a"] * 3000) + " = 1\n", "nested more than")


def test_brackets_inside_strings_and_comments_do_not_count() -> None:
    text = (
        'a = "' + "[" * 100 + '"\n'
        "b = '" + "{" * 100 + "'\n"
        'c = """\n' + "[" * 100 + '\n"""\n'
        "d = '''" + "[" * 100 + "'''\n"
        "# " + "[" * 100 + "\n"
        'e = "\\"[[[[[[[[[[[[[[[[[[[["\n'
        "f = [[1, 2], [3, [4, {x = [5]}]]]\n"
    )
    check_nesting(text, "t.toml")  # a hundred brackets in strings and comments are not a hundred levels
    parsed = loads(text, "t.toml")
    assert parsed["a"] == "[" * 100 and parsed["d"] == "[" * 100 and parsed["f"][1][1][1] == {"x": [5]}
    # The same count outside strings is refused, and the line is named: the pass reads brackets, not text.
    with pytest.raises(UserError, match=r"t\.toml:10: .*nested more than"):
        check_nesting(text + "g = " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n", "t.toml")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (HEAD + "node_target_gbps = nan\n", ("node_target_gbps", "nan", "finite")),
        (HEAD + "nvlink_target_gbps = inf\n", ("nvlink_target_gbps", "inf")),
        (HEAD + "node_target_gbps = 1e308\n", ("node_target_gbps", "largest plausible")),
        (HEAD + "[rails]\nrate_gbps = nan\n", ("rate_gbps", "nan")),
        (HEAD + "[rails]\nrate_gbps = -inf\n", ("rate_gbps",)),
        (HEAD + "[rails]\nrate_gbps = 1e308\n", ("rate_gbps", "largest plausible")),
        (HEAD + "[rails]\nrate_gbps = 0\n", ("rate_gbps", "above zero")),
        (HEAD + "[nvlink_targets_gbps]\nall_reduce = nan\n", ("all_reduce", "nan")),
        (HEAD + "[nvlink_targets_gbps]\nall_reduce = 1e308\n", ("all_reduce", "largest plausible")),
        (HEAD + "pass_fraction = nan\n", ("pass_fraction",)),
        (HEAD + "gpus_per_node = 99999999999\n", ("gpus_per_node",)),
        (HEAD + "gpus_per_node = " + "9" * 5000 + "\n", ("number",)),
        (HEAD + 'judge_min_bytes = "' + "9" * 500 + '"\n', ("judge_min_bytes", "too long")),
    ],
)
def test_rates_and_targets_are_finite_and_positive(tmp_path: Path, text: str, words: tuple[str, ...]) -> None:
    _refused(tmp_path, text, *words)


@pytest.mark.parametrize(
    ("table", "line", "words"),
    [
        ("[[compare.rule]]\npattern = 5\nthreshold = 0.1\n", 4, ("pattern = 5", "string")),
        ('[[compare.rule]]\npattern = "a/*"\nthreshold = nan\n', 5, ("threshold", "not a number")),
        ('[[compare.rule]]\npattern = "a/*"\nthreshold = "nan%"\n', 5, ("threshold",)),
        ('[[compare.rule]]\npattern = "a/*"\n', 3, ("[[compare.rule]] number 1: threshold is missing",)),
        ("[compare]\nnoise_k = inf\n", 4, ("noise_k",)),
        ("[compare]\nresolution_GBps = nan\n", 4, ("resolution_GBps",)),
        ("[compare]\nmin_runs = true\n", 4, ("min_runs",)),
        ("[compare]\nrule = 3\n", 4, ("array of tables",)),
        ("[compare]\nmin_bytes = " + '"' + "9" * 200 + '"\n', 4, ("min_bytes", "too long")),
    ],
)
def test_compare_table_is_typed_at_load_time(tmp_path: Path, table: str, line: int, words: tuple[str, ...]) -> None:
    """Each refusal names the line of the key refused (the rule's own block for a key it lacks)."""
    message = _refused(tmp_path, HEAD + table, *words)
    assert message.startswith(f"{tmp_path / 'bad.toml'}:{line}:")


def test_a_profile_that_is_not_a_regular_file_is_never_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(UserError, match="not a regular file"):
        load_profile(str(fifo))
    with pytest.raises(UserError, match="not a regular file"):
        load_profile("/dev/zero")
    assert time.monotonic() - started < 2
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * MAX_TOML_BYTES + "\n")
    with pytest.raises(UserError, match="KiB limit"):
        load_profile(str(big))
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'name = "\xff"\n')
    with pytest.raises(UserError, match="not UTF-8"):
        load_profile(str(binary))


def test_a_long_hostile_line_costs_linear_time(tmp_path: Path) -> None:
    # The old header regex of the line finder was quadratic on '[a' + spaces and on a run of '['.
    for line in ("[a" + " " * 200_000 + "b", "[" * 15 + "a" * 200_000):
        _refused(tmp_path, HEAD + line + "\n", "not valid TOML")


def test_shipped_profiles_still_load() -> None:
    for name in ("generic", "lambda-1cc", "local", "runpod-instant"):
        assert load_profile(name).name == name
