"""The command line: help, versions, dispatch, and that torch-free commands never import torch."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from bench.cli import COMMANDS
from tests.support import railbench, rank_env


def test_help_lists_every_command() -> None:
    proc = railbench(["--help"], timeout=60)
    assert proc.returncode == 0
    for name in COMMANDS:
        assert f"  {name} " in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help(name: str) -> None:
    proc = railbench([name, "--help"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"railbench {name}" in proc.stdout


def test_version() -> None:
    proc = railbench(["--version"], timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("railbench ")


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["hca", "--devices", "mlx5_0:1,mlx5_1:1,mlx5_2:1", "--nccl-ib-hca", "^=mlx5_0"],
        ["run", "--help"],
        ["history", "--help"],
        ["compare", "--help"],
        ["report", "--help"],
        ["import", "--help"],
        ["export", "--help"],
    ],
)
def test_torch_free_paths_do_not_import_torch(argv: list[str]) -> None:
    code = (
        "import sys\nfrom bench.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print('TORCH-IMPORTED' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=rank_env(), capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().endswith("NO-TORCH"), proc.stdout + proc.stderr


def test_select_hcas_import_is_torch_free() -> None:
    code = "import sys, bench\nprint(bench.select_hcas('^=mlx5_0', ['mlx5_0:1','mlx5_1:1']), 'torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], env=rank_env(), capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "['mlx5_1:1'] False", proc.stderr


def _helps() -> dict[str, dict[str, str]]:
    """command -> option -> its help line as ``--help`` prints it (argparse's own expansion)."""
    from tests.support.cli_shape import parsers

    found: dict[str, dict[str, str]] = {}
    for name, parser in parsers().items():
        formatter = parser._get_formatter()
        found[name] = {
            "/".join(a.option_strings): " ".join(formatter._expand_help(a).split())
            for a in parser._actions
            if a.option_strings and a.help and not isinstance(a, argparse._HelpAction)
        }
    return found


def test_help_says_each_default_once_and_never_none() -> None:
    helps = _helps()
    assert {"run", "rails", "accept", "history add", "history list", "export openmetrics"} <= set(helps)
    for name, options in helps.items():
        for option, text in options.items():
            assert "default: None" not in text and text.count("(default") <= 1, f"{name} {option}: {text}"
    # Where the default comes from elsewhere, the words say so, and what the shipped default is.
    assert helps["rails"]["--pair-bytes"].endswith("(default: the profile's [rails_test] pair_bytes, else 256M)")
    assert helps["accept"]["--pair-bytes"] == helps["rails"]["--pair-bytes"]
    for name in ("run", "rails", "accept"):
        assert "SLURM_CLUSTER_NAME, else the name the ranks' hosts share" in helps[name]["--cluster"]
        assert helps[name]["--timeout"].endswith("(default: 300)")
        assert helps[name]["--history"].endswith("(default: reports/history.sqlite)")


# A flag may mean one thing with another default (checking: off in run and rails, on in accept) or, for these,
# another thing (report's --out is a directory of report files, export's a file; compare's --profile holds
# thresholds only; import's --cluster names the logs' cluster, "imported" unless given).
OTHER_IDEAS = {("report", "--out"), ("export openmetrics", "--out"), ("compare", "--profile"), ("import", "--cluster")}


def test_a_shared_flag_has_one_word_type_and_help_everywhere() -> None:
    from tests.support.cli_shape import current_cli

    seen: dict[str, tuple[str, dict[str, object]]] = {}
    for name, flags in current_cli().items():
        for flag in flags:
            option = flag["flags"][0]
            if not option.startswith("-") or (name, option) in OTHER_IDEAS:
                continue
            shape = {k: flag[k] for k in ("flags", "type", "nargs", "const", "choices", "metavar")}
            if option in seen:
                first, expected = seen[option]
                assert shape == expected, f"{option}: {first} {expected} != {name} {shape}"
            else:
                seen[option] = (name, shape)
    assert seen["-c"][1]["type"] == "zero_or_one" and seen["--timeout"][1]["type"] == "seconds"
    helps = _helps()
    for option in ("--backend", "--timeout", "--np", "--out", "--cluster", "--history", "--no-history", "--oob-ifname"):
        texts = {helps[name][option] for name in ("run", "rails", "accept")}
        assert len(texts) == 1, (option, texts)


@pytest.mark.parametrize(
    ("argv", "check"),
    [
        (["run"], False),
        (["run", "-c"], True),
        (["run", "-c", "1"], True),
        (["run", "-c", "0"], False),
        (["rails", "-c"], True),
        (["rails", "--check", "--no-check"], False),
        (["accept", "--profile", "local"], True),
        (["accept", "--profile", "local", "--no-check"], False),
        (["accept", "--profile", "local", "-c", "0"], False),
    ],
)
def test_checking_is_one_flag_with_each_commands_default(argv: list[str], check: bool) -> None:
    from bench.cli import _command_parser

    assert _command_parser(argv[0]).parse_args(argv[1:]).check is check


def test_a_bad_check_value_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.cli import main

    assert main(["run", "--np", "2", "-c", "yes"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "-c/--check takes 0 or 1" in err, err
