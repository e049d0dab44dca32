"""Cluster profiles: the shipped TOML files, loading by name or path, and bad profiles."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.exits import UserError
from bench.fabric.hca import select_hcas
from bench.measure.targets import world_target_gbps
from bench.profile.cluster import list_profiles, load_profile
from bench.sweep.items import collective_items
from tests.support import railbench, railbench_inline

H100 = ["NVIDIA H100 80GB HBM3"] * 8
"""What 8 ranks of an H100 SXM node report (torch.cuda.get_device_name, as nvidia-smi names it)."""


def test_shipped_profiles_load() -> None:
    assert list_profiles() == [
        "gb200-nvl72",
        "generic",
        "h200",
        "hgx-b200",
        "lambda-1cc",
        "local",
        "roce-8x400",
        "runpod-instant",
    ]
    one_cc = load_profile("lambda-1cc")
    assert (one_cc.transport, one_cc.rail_count, one_cc.rail_rate_gbps, one_cc.link_layer) == (
        "ib",
        8,
        400.0,
        "InfiniBand",
    )
    assert one_cc.excluded_hcas == ("mlx5_0",) and one_cc.gpus_per_node == 8
    assert one_cc.for_gpus(H100).node_target_gbps == 3200 == one_cc.rail_count * one_cc.rail_rate_gbps
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


def test_single_node_targets_are_per_collective_and_size() -> None:
    # A healthy 8 x H100 node runs NVLS all_reduce near 480 GB/s but only from GiB sizes, and all_gather and
    # sendrecv well below: one NVLink figure for all of them, or from 256M up, failed healthy nodes.
    one_cc = load_profile("lambda-1cc").for_gpus(H100)
    assert one_cc.nvlink_targets_gbps["all_reduce"] == (
        (256 << 20, 3296),
        (512 << 20, 3448),
        (1 << 30, 3720),
        (2 << 30, 3744),
        (4 << 30, 3784),
    )

    def single(c: str, n: int) -> float | None:
        return world_target_gbps(one_cc, c, 1, nbytes=n)

    assert single("all_reduce", 128 << 20) is None  # below the published curve: measured, not judged
    assert [single("all_reduce", n) for n in (256 << 20, 768 << 20, 8 << 30)] == [3296, 3448, 3784]
    assert single("all_reduce", 256 << 20) == 412 * 8  # nccl-tests#290 at 256 MiB, not the 4 GiB peak
    # all_gather: Voltage Park's 183 GB/s at 256 MiB, the 350 GB/s of NVIDIA/nccl#1281 from 4 GiB
    assert [single("all_gather", n) for n in (256 << 20, 2 << 30, 4 << 30)] == [1464, 1464, 2800]
    assert single("reduce_scatter", 16 << 30) == 2880 and single("alltoall", 1 << 30) is None
    assert single("sendrecv", 1 << 20) == 2880 and single("reduce", 1 << 30) == one_cc.nvlink_target_gbps
    text = (Path(one_cc.source)).read_text()
    for source in ("nccl-tests#290", "nccl-tests#212", "nccl#1281", "nccl-tests#326", "Voltage Park", "nccl-tests#267"):
        assert source in text, f"the published source {source} is named"
    assert load_profile("generic").nvlink_targets_gbps == {}


def test_multi_node_targets() -> None:
    one_cc = load_profile("lambda-1cc").for_gpus(H100 * 2)
    # measured on healthy 4-node H100 clusters (Voltage Park), not the NICs' 3200 aggregate
    assert world_target_gbps(one_cc, "all_reduce", 2, nbytes=1 << 30, nranks=16) == 2640
    assert world_target_gbps(one_cc, "all_gather", 4, nbytes=1 << 30, nranks=32) == 2584
    assert world_target_gbps(one_cc, "sendrecv", 2, nbytes=1 << 30, nranks=16) == 400  # one GPU, one NIC
    # alltoall cannot spread one GPU's traffic over other NICs: 400 x (n-1)/n, not the 3200 node aggregate
    assert world_target_gbps(one_cc, "alltoall", 2, nbytes=1 << 30, nranks=16) == 375
    assert world_target_gbps(one_cc, "alltoall", 10, nbytes=8 << 30, nranks=80) == 395
    # 10 nodes x 8 H100 measured 50.38 GB/s at 8 GiB (the corpus log): it meets the target at 90%
    assert 50.38 * 8 >= 0.9 * 395
    # ranks sharing a node's NICs get their share of them
    assert world_target_gbps(one_cc, "alltoall", 2, nbytes=1 << 30, nranks=32) == 200 * 31 / 32


def test_targets_are_chosen_per_gpu_generation_and_a_b200_never_meets_h100_figures() -> None:
    """Issue 33 item 25: lambda-1cc says H100 or B200, and every NVLink and node figure in it was an H100's."""
    one_cc = load_profile("lambda-1cc")
    assert [g.name for g in one_cc.generations] == ["H100", "B200"]
    assert world_target_gbps(one_cc, "all_reduce", 1, nbytes=4 << 30) is None  # no GPU seen: nothing judged
    b200 = one_cc.for_gpus(["NVIDIA B200"] * 16)
    assert b200.generation == "B200" and b200.choice.gpus == ("NVIDIA B200",)

    def single(c: str, n: int) -> float | None:
        return world_target_gbps(b200, c, 1, nbytes=n)

    # NVLink 5: 830 GB/s NVLS all_reduce from 4 GiB (NVIDIA/nccl#1807), the NVL72 curve below it
    assert [single("all_reduce", n) for n in (256 << 20, 512 << 20, 1 << 30, 2 << 30, 8 << 30)] == [
        None,
        4688,
        5448,
        6056,
        6640,
    ]
    assert single("all_gather", 4 << 30) == 5560 == single("reduce_scatter", 16 << 30)  # 695 GB/s, nccl#2140
    # no published B200 figure: measured, never the H100's 2880 or 3600
    assert single("sendrecv", 1 << 30) is None and single("broadcast", 1 << 30) is None
    assert single("reduce", 1 << 30) is None
    # across nodes: no B200 figure for all_reduce, one NIC's rate for sendrecv and alltoall (any GPU)
    assert world_target_gbps(b200, "all_reduce", 2, nbytes=1 << 30, nranks=16) is None
    assert world_target_gbps(b200, "sendrecv", 2, nbytes=1 << 30, nranks=16) == 400
    assert world_target_gbps(b200, "alltoall", 2, nbytes=1 << 30, nranks=16) == 375
    chosen = b200.choice.generation
    assert chosen is not None and "NVIDIA/nccl#1807" in chosen.source
    assert "B200 targets of profile lambda-1cc" in b200.targets_line()
    h200 = one_cc.for_gpus(["NVIDIA H200"] * 8)
    assert h200.generation == "H100" and world_target_gbps(h200, "all_reduce", 1, nbytes=4 << 30) == 3784


@pytest.mark.parametrize(
    ("gpus", "said"),
    [
        (["NVIDIA H100 PCIe"] * 8, "the NVIDIA H100 PCIe is of no GPU generation profile lambda-1cc has targets for"),
        (["NVIDIA GB300"] * 4, "the NVIDIA GB300 is of no GPU generation"),
        (["NVIDIA B200"] * 8 + ["NVIDIA H100 80GB HBM3"] * 8, "GPUs of 2 generations (B200, H100) in one run"),
        (["", ""], "no GPU: profile lambda-1cc's NVLink and node targets are per GPU generation (H100, B200)"),
    ],
    ids=["pcie-h100", "unknown", "mixed", "cpu"],
)
def test_a_gpu_of_no_known_generation_is_judged_by_nothing_and_says_why(gpus: list[str], said: str) -> None:
    chosen = load_profile("lambda-1cc").for_gpus(gpus)
    assert chosen.generation is None and said in chosen.choice.why_none
    for collective in ("all_reduce", "all_gather", "sendrecv", "broadcast"):
        assert world_target_gbps(chosen, collective, 1, nbytes=8 << 30) is None
        assert world_target_gbps(chosen, collective, 2, nbytes=8 << 30, nranks=16) in (None, 400)
    items = collective_items(
        [{"scope": "world", "collective": "all_reduce", "bytes": 8 << 30, "nranks": 8, "wrong": 0}],
        256 << 20,
        0.9,
        "lambda-1cc",
        chosen.choice.why_none,
    )
    assert [(i.state, i.reason) for i in items] == [("measured", f"no busbw target: {chosen.choice.why_none}")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('node_target_gbps = 3200\n[gpu.X]\nmatch = ["A"]\nsource = "s"\n', "set at the top level and the profile has"),
        ('[gpu.X]\nsource = "s"\n', "[gpu.X] match must list the GPU names it judges"),
        ('[gpu.X]\nmatch = ["A"]\n', "[gpu.X] source must say where its figures come from"),
        ('[gpu.X]\nmatch = ["A"]\nsource = "s"\nspeed = 1\n', "unknown [gpu.X] key 'speed'"),
        ('[gpu.X]\nmatch = ["A"]\nsource = "s"\n[gpu.X.nvlink_targets_gbps]\nallreduce = 1\n', "not a collective"),
        ("[gpu]\nX = 3\n", "[gpu] X must be a table"),
    ],
)
def test_bad_generation_tables_are_one_line_with_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "gens.toml"
    path.write_text('name = "gens"\n' + text)
    with pytest.raises(UserError, match=re.escape(message)):
        load_profile(str(path))


def test_load_by_path_types_the_compare_table_at_load(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        'description = "two rails"\ntransport = "roce"\n[rails]\ncount = 2\nrate_gbps = 200\n'
        'link_layer = "Ethernet"\n[compare]\ndefault_threshold = 0.05\nnoise_k = 3\n'
        '[[compare.rule]]\npattern = "all_reduce*"\nthreshold = 0.1\n'
    )
    profile = load_profile(str(path))
    assert profile.name == "mine" and profile.transport == "roce" and profile.rail_count == 2
    assert profile.compare.rules[0].pattern == "all_reduce*" and profile.compare.default_threshold == 0.05
    assert profile.source == str(path)
    # a table nothing reads is refused, not kept untyped
    path.write_text('description = "x"\n[report]\nunit = "GB/s"\n')
    with pytest.raises(UserError, match=r"mine.toml:2: unknown key 'report'"):
        load_profile(str(path))


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
        ('name = "x"\n[nvlink_targets_gbps]\nall_reduce = { "1Q" = 3000 }\n', 3, "all_reduce"),
        ('name = "x"\n[node_targets_gbps]\nall_reduce = { "1G" = -1 }\n', 3, "positive number"),
        ('name = "x"\n[nvlink_targets_gbps]\nall_reduce = {}\n', 3, "empty table"),
        ('name = "x"\nnode_target_gbps = 3200\ndefault_max_bytes = "64M"\n', 3, "judge nothing"),
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
    proc = railbench_inline(["check", "--profile", str(bad)])
    assert proc.returncode == 2 and f"{bad}:3:" in proc.stderr and proc.stderr.count("\n") == 1
    proc = railbench_inline(["check", "--profile", "nosuch"])
    assert proc.returncode == 2 and "unknown profile 'nosuch'" in proc.stderr


def test_gpu_profiles_sweep_to_their_judged_sizes_by_default() -> None:
    """nccl-tests users test to 8-16 GiB; a default run or accept that stops at 64M judged nothing."""
    import argparse

    from bench.commands import accept, run
    from bench.sweep.config import RunConfig, default_max_bytes, sized

    for name in list_profiles():
        profile = load_profile(name)
        if profile.gpus_per_node:
            assert default_max_bytes(profile) >= profile.judge_min_bytes, name
    assert default_max_bytes(load_profile("lambda-1cc")) == 8 << 30
    assert default_max_bytes(load_profile("local")) == 64 << 20 and RunConfig.max_bytes is None
    for module, argv in ((run, ["--profile", "lambda-1cc"]), (accept, ["--profile", "lambda-1cc"])):
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        config = module.config_from_args(parser.parse_args(argv))
        sweep = sized(config if isinstance(config, RunConfig) else config.sweep, load_profile("lambda-1cc"))
        assert sweep.max_bytes == 8 << 30 and 256 << 20 in sweep.sizes
        explicit = module.config_from_args(parser.parse_args([*argv, "-e", "4M"]))
        assert (explicit if isinstance(explicit, RunConfig) else explicit.sweep).max_bytes == 4 << 20


@pytest.mark.mpi
def test_a_run_on_cpu_under_a_profile_with_generations_is_judged_by_none_of_them(tmp_path: Path) -> None:
    """The frame gathers every rank's GPU name before the job prepares: on CPU ranks there is none, so the
    generation's figure (which this sweep would fail by far) judges nothing, and every output says why."""
    profile = tmp_path / "gens.toml"
    profile.write_text(
        'name = "gens"\ntransport = "loopback"\njudge_min_bytes = "1K"\n[network]\nsocket_ifnames = "lo"\n'
        'oob_ifname = "lo"\n[gpu.H100]\nmatch = ["NVIDIA H100 80GB HBM3"]\nsource = "a published run"\n'
        "nvlink_target_gbps = 1000000\n"
    )
    out = tmp_path / "run"
    sweep = ["-b", "4K", "-e", "8K", "-n", "2", "-w", "0", "--collectives", "all_reduce"]
    done = railbench(
        ["run", "--np", "2", *sweep, "--profile", str(profile), "--out", str(out), "--no-history"],
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    why = "no GPU: profile gens's NVLink and node targets are per GPU generation (H100)"
    assert f"# targets: no NVLink or node target applies: {why}" in done.stdout
    assert "# run verdict: MEASURED" in done.stdout and f"#   no busbw target: {why}" in done.stdout
    judged = json.loads((out / "run.json").read_text())["judged_by"]
    assert (judged["gpu_models"], judged["gpu_generation"], judged["targets_note"]) == ([], None, why)
    assert f"| GPU targets | none: {why} |" in (out / "report.md").read_text()
