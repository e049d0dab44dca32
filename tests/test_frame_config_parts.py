"""The config parts every job shares, declared once (``bench.frame.config_parts``), and the profile the parent read
handed to its ranks in the spec (``bench.profile.cluster.ProfileRead``), so no rank opens the file again."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from bench.commands import flags
from bench.commands import rails as rails_cmd
from bench.exits import UserError
from bench.flagged import flagged_fields
from bench.frame.config_parts import Launch, Output
from bench.profile.cluster import MAX_CARRIED_BYTES, load_profile, profile_for
from bench.profile.rails_table import RailsTestTable
from bench.rails.plan.config import DEFAULTS, RailsConfig, validate
from bench.runtime import spec


def test_every_field_of_the_shared_parts_is_a_flag_read_back_whole() -> None:
    for part in (Launch, Output):
        assert [f.name for f, _ in flagged_fields(part)] == [
            f.name for f in dataclasses.fields(part) if f.name != "profile_read"
        ]
    parser = argparse.ArgumentParser()
    flags.add_launch(parser)
    flags.add_output(parser)
    args = parser.parse_args(["--backend", "gloo", "--timeout", "12", "--np", "2", "--out", "o", "--no-history"])
    assert flags.launch_part(args) == Launch(backend="gloo", timeout_s=12.0, np=2)
    assert flags.output_part(args) == Output(out=Path("o"), no_history=True)


def test_the_rails_test_fallbacks_are_the_table_fields_own() -> None:
    assert set(DEFAULTS) == {f.name for f, _ in flagged_fields(RailsTestTable)}
    assert DEFAULTS["pair_bytes"] == 256 << 20


def test_a_flag_given_at_the_fallback_still_wins_over_the_profile_and_the_ranks_see_it_given(tmp_path: Path) -> None:
    """Which table gives a value is its ``given``, not whether the value differs from the fallback: ``--iters 10``
    (the fallback) beats the profile's 4, on the parent and on every rank that decodes the spec."""
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\ntransport = "socket"\n[rails_test]\niters = 4\nwarmup = 3\nconfirm = 0\n')
    parser = argparse.ArgumentParser()
    rails_cmd.add_arguments(parser)
    args = parser.parse_args(["--profile", str(path), "--iters", "10"])
    asked = flags.rails_test(args, iterations=True)
    assert asked.given == ("iters",) and asked.warmup == DEFAULTS["warmup"]
    config = RailsConfig(profile=str(path), rails_test=asked, launch=Launch(np=2))
    argv = rails_cmd.RAILS.size(config, validate(config), 2).config.rank_argv(tmp_path / "run")
    ranks = spec.decode(RailsConfig, argv[argv.index(spec.SPEC_FLAG) + 1])
    for each in (config, ranks):
        test = validate(each, with_history=False)[1].test
        assert (test.iters, test.warmup, test.confirm, test.pair_bytes) == (10, 3, 0, DEFAULTS["pair_bytes"])


def test_the_ranks_parse_the_profile_the_parent_read_and_never_open_it(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\ntransport = "socket"\n[rails_test]\npair_bytes = "8M"\n')
    config = RailsConfig(profile=str(path), launch=Launch(np=2))
    sized = rails_cmd.RAILS.size(config, validate(config), 2)
    argv = sized.config.rank_argv(tmp_path / "run")
    path.unlink()  # a rank that read the file now would fail: it must parse what the parent read
    ranks = spec.decode(RailsConfig, argv[argv.index(spec.SPEC_FLAG) + 1])
    profile, settings = validate(ranks, with_history=False)
    assert (profile.name, settings.test.pair_bytes) == ("p", 8 << 20)


def test_a_profile_too_large_for_one_argument_is_read_by_each_rank(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text('name = "big"\ntransport = "socket"\n' + "#" * MAX_CARRIED_BYTES + "\n")
    profile = load_profile(str(path))
    config = RailsConfig(profile=str(path), launch=Launch(np=2))
    ranks = rails_cmd.RAILS.size(config, (profile, validate(config)[1]), 2).config
    assert ranks.launch.profile_read is None
    path.unlink()
    with pytest.raises(UserError, match=path.name):
        profile_for(str(path), ranks.launch.profile_read)
