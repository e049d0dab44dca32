"""Cluster profiles: the shipped TOML files, loading by name or path, and bad profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.exits import UserError
from bench.fabric.hca import select_hcas
from bench.measure.targets import world_target_gbps
from bench.profiles import list_profiles, load_profile
from tests.support import railbench


def test_shipped_profiles_load() -> None:
    assert list_profiles() == ["generic", "lambda-1cc", "local", "runpod-instant"]
    one_cc = load_profile("lambda-1cc")
    assert (one_cc.transport, one_cc.rail_count, one_cc.rail_rate_gbps, one_cc.link_layer) == (
        "ib",
        8,
        400.0,
        "InfiniBand",
    )
    assert one_cc.excluded_hcas == ("mlx5_0",) and one_cc.gpus_per_node == 8
    assert one_cc.node_target_gbps == 3200 == one_cc.rail_count * one_cc.rail_rate_gbps
    assert one_cc.recommended_env["NCCL_IB_HCA"] == "^=mlx5_0"
    assert one_cc.recommended_env["NCCL_IB_PCI_RELAXED_ORDERING"] == "1"
    # The recommended value really leaves out exactly the excluded device.
    ports = [f"mlx5_{k}:1" for k in range(9)]
    assert select_hcas(one_cc.recommended_env["NCCL_IB_HCA"], ports) == ports[1:]
    runpod = load_profile("runpod-instant")
    assert runpod.transport == "socket" and runpod.oob_ifname == "eth0" and runpod.excluded_ifnames == ("eth0",)
    assert runpod.rail_names == tuple(f"eth{k}" for k in range(1, 9))
    assert load_profile("local").transport == "loopback"
    generic = load_profile("generic")
    assert generic.rail_count is None and generic.link_layer is None and generic.pass_fraction == 0.9


def test_single_node_targets_are_per_collective() -> None:
    # A healthy 8 x H100 node runs NVLS all_reduce near 480 GB/s but all_gather and sendrecv well below:
    # one NVLink figure for all of them failed healthy nodes.
    one_cc = load_profile("lambda-1cc")
    assert one_cc.nvlink_targets_gbps["all_reduce"] == 3840 == 480 * 8
    single = {c: world_target_gbps(one_cc, c, 1) for c in ("all_reduce", "all_gather", "sendrecv", "reduce")}
    assert single == {"all_reduce": 3840, "all_gather": 2880, "sendrecv": 2880, "reduce": one_cc.nvlink_target_gbps}
    assert all(world_target_gbps(one_cc, c, 2) == 3200 for c in ("all_reduce", "all_gather"))
    assert world_target_gbps(one_cc, "sendrecv", 2) == 400
    text = (Path(one_cc.source)).read_text()
    assert "nccl-tests issue #290" in text and "Voltage Park" in text, "the published sources are named"
    assert load_profile("generic").nvlink_targets_gbps == {}


def test_load_by_path_keeps_raw_and_compare_table(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        'description = "two rails"\ntransport = "roce"\n[rails]\ncount = 2\nrate_gbps = 200\n'
        'link_layer = "Ethernet"\n[compare]\ndefault_threshold = 0.05\nnoise_k = 3\n'
        '[[compare.rule]]\npattern = "all_reduce*"\nthreshold = 0.1\n'
    )
    profile = load_profile(str(path))
    assert profile.name == "mine" and profile.transport == "roce" and profile.rail_count == 2
    assert profile.raw["compare"]["rule"][0]["pattern"] == "all_reduce*"
    assert profile.source == str(path)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('name = "x"\ntransport = "infiniband"\n', 2, "transport"),
        ('name = "x"\n\n[rails]\ncount = "eight"\n', 4, "count"),
        ('name = "x"\n[rails]\nrate_gbps = 400\nlink_layer = "IB"\n', 4, "link_layer"),
        ('name = "x"\ngpus_per_nod = 8\n', 2, "unknown key"),
        ('name = "x"\n[rails]\nexclude = "mlx5_0"\n', 3, "list"),
        ('name = "x"\n[recommended_env]\nNCCL_IB_PCI_RELAXED_ORDERING = 1\n', 3, "quote"),
        ('name = "x"\npass_fraction = 9\n', 2, "pass_fraction"),
        ('name = "x"\n[rails\ncount = 8\n', 2, "not valid TOML"),
        ('name = "x"\ncompare = 3\n', 2, "table"),
        ('name = "x"\n[nvlink_targets_gbps]\nallreduce = 3840\n', 3, "'allreduce' is not a collective"),
        ('name = "x"\n[nvlink_targets_gbps]\n\nall_gather = "fast"\n', 4, "positive number"),
        ('name = "x"\n[nvlink_targets_gbps]\nsendrecv = 0\n', 3, "positive number"),
    ],
)
def test_malformed_profile_names_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}:{line}:") and words in message and "\n" not in message


def test_unknown_profile_exits_2_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="lambda-1cc"):
        load_profile("lambda")
    with pytest.raises(UserError, match="does not exist"):
        load_profile(str(tmp_path / "nope.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("transport = 'ib'\n[rails]\nspeed = 400\n")
    proc = railbench(["check", "--profile", str(bad)])
    assert proc.returncode == 2 and f"{bad}:3:" in proc.stderr and proc.stderr.count("\n") == 1
    proc = railbench(["check", "--profile", "nosuch"])
    assert proc.returncode == 2 and "unknown profile 'nosuch'" in proc.stderr
