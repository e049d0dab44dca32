"""One serialisation point between a parent and its ranks: the ranks get the parent's config itself."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench.exits import UserError
from bench.frame.config_parts import Launch, Output
from bench.runtime import spec
from bench.sweep.config import RunConfig


def test_a_run_config_round_trips_field_for_field() -> None:
    config = RunConfig(
        min_bytes=1024,
        max_bytes=1 << 20,
        step_bytes=4096,
        iters=7,
        warmup=0,
        check=True,
        dtype="bfloat16",
        collectives=("all_reduce", "sendrecv"),
        launch=Launch(backend="gloo", timeout_s=42.5),
        graph=None,
        output=Output(out=Path("/tmp/x"), history=Path("/tmp/h.sqlite")),
        progress="on",
    )
    assert spec.decode(RunConfig, spec.encode(config)) == config


def test_the_ranks_argv_carries_the_config_without_the_launch_flags(tmp_path: Path) -> None:
    config = RunConfig(launch=Launch(np=4, timeout_s=17.0), progress="off")
    command, flag, text = config.rank_argv(tmp_path / "run")
    ranks = spec.decode(RunConfig, text)
    assert (command, flag) == ("run", spec.SPEC_FLAG)
    assert ranks == replace(config, launch=Launch(timeout_s=17.0), output=Output(out=tmp_path / "run"))
    assert ranks.launch.timeout_s == 17.0  # a default that drifted between parent and ranks cannot drift now


def test_a_spec_from_another_version_is_refused_in_one_line() -> None:
    with pytest.raises(UserError, match="does not know"):
        spec.decode(RunConfig, '{"min_bytes": 8, "warp_factor": 9}')
    with pytest.raises(UserError, match="not the JSON"):
        spec.decode(RunConfig, "[1, 2")
