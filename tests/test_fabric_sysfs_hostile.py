"""sysfs trees that are damaged or hostile: each is read without a hang, a traceback or an unbounded read, and
``check`` names the broken path (issue 12's fault campaign, one regression case per bug)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench.fabric import counters
from bench.fabric.sysfs import Sysfs, ib_devices, ib_ports, natural_key, net_devices, nvidia_gpus
from bench.fabric.sysfs_io import MAX_READ_BYTES
from bench.preflight import checks
from bench.profile.cluster import load_profile
from tests.support import railbench_inline
from tests.support.trees import fabric_trees

GOOD_ENV = {"NCCL_IB_HCA": "^=mlx5_0", "NCCL_SOCKET_IFNAME": "=eno1"}
RATE = ("class", "infiniband", "mlx5_3", "ports", "1", "rate")


def _node(tmp_path: Path) -> Path:
    return fabric_trees.build(tmp_path / "sys", fabric_trees.healthy_1cc())


def _replace(root: Path, parts: tuple[str, ...]) -> Path:
    """The real file behind a sysfs path, removed so the test can put something else there."""
    real = Path(os.path.realpath(root.joinpath(*parts)))
    real.unlink()
    return real


def _sysfs_fails(root: Path, *words: str) -> list[checks.CheckResult]:
    results = checks.run_checks(load_profile("lambda-1cc"), root, (), GOOD_ENV)
    broken = [r for r in results if r.check == "sysfs-tree"]
    assert broken and all(r.status == "fail" for r in broken), results
    assert any(all(w in r.reason for w in words) for r in broken), broken
    assert checks.verdict(results) == "fail"
    return broken


def test_symlink_loop_under_class_infiniband_is_named_not_raised(tmp_path: Path) -> None:
    root = _node(tmp_path)
    (root / "class" / "infiniband" / "loopy").symlink_to("loopy")
    assert [d.name for d in ib_devices(Sysfs(root))][:2] == ["mlx5_0", "mlx5_1"]  # the loop is no device
    (broken,) = _sysfs_fails(root, "class/infiniband/loopy", "symlink loop")
    assert broken.device == str(root / "class" / "infiniband" / "loopy")


def test_symlink_loop_under_class_net_is_named_not_raised(tmp_path: Path) -> None:
    root = _node(tmp_path)
    (root / "class" / "net" / "a").symlink_to("b")
    (root / "class" / "net" / "b").symlink_to("a")
    assert "a" not in [n.name for n in net_devices(Sysfs(root))]
    _sysfs_fails(root, "class/net/a", "symlink loop")


def test_loop_in_a_device_link_is_named(tmp_path: Path) -> None:
    root = _node(tmp_path)
    device = root / "class" / "infiniband" / "mlx5_2" / "device"
    real = Path(os.path.realpath(device))
    device.unlink()
    device.symlink_to(device.name)
    tree = Sysfs(root)
    assert tree.resolve("class", "infiniband", "mlx5_2", "device") is None
    assert any("symlink loop" in p.message for p in tree.problems)
    assert real.is_dir()


def test_fifo_in_place_of_a_file_never_blocks(tmp_path: Path) -> None:
    root = _node(tmp_path)
    os.mkfifo(_replace(root, RATE))
    started = time.monotonic()
    tree = Sysfs(root)
    assert tree.read(*RATE) is None
    assert tree.problems[0].message.endswith("is a FIFO, not a regular file: the sysfs tree is damaged")
    _sysfs_fails(root, "mlx5_3/ports/1/rate", "FIFO")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("command", ["check", "hca"])
def test_fifo_tree_through_the_cli_answers_and_names_the_path(tmp_path: Path, command: str) -> None:
    root = _node(tmp_path)
    os.mkfifo(_replace(root, RATE))
    args = ["--profile", "lambda-1cc"] if command == "check" else []
    done = railbench_inline([command, *args, "--sysfs-root", str(root)], env=GOOD_ENV)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "mlx5_3/ports/1/rate is a FIFO" in done.stdout


def test_link_to_dev_zero_is_not_read(tmp_path: Path) -> None:
    root = _node(tmp_path)
    _replace(root, RATE).symlink_to("/dev/zero")
    started = time.monotonic()
    ports = {p.name: p for p in ib_ports(Sysfs(root))}
    assert ports["mlx5_3:1"].rate_gbps is None and ports["mlx5_2:1"].rate_gbps == 400
    assert time.monotonic() - started < 5
    _sysfs_fails(root, "rate", "character device")


def test_a_file_longer_than_a_page_is_refused(tmp_path: Path) -> None:
    root = _node(tmp_path)
    _replace(root, RATE).write_text("4" * (MAX_READ_BYTES + 1))
    tree = Sysfs(root)
    assert tree.read(*RATE) is None
    assert f"more than {MAX_READ_BYTES} bytes" in tree.problems[0].message


def test_a_directory_in_place_of_a_file_is_named(tmp_path: Path) -> None:
    root = _node(tmp_path)
    _replace(root, RATE).mkdir()
    _sysfs_fails(root, "rate is a directory")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("parts", "text", "words"),
    [
        (RATE, "9" * 400 + " Gb/sec (4X NDR)", ("rate", "too long")),
        (RATE, "99999999 Gb/sec (4X NDR)", ("rate", "above the largest plausible")),
        (("bus", "pci", "devices", "0000:13:00.0", "numa_node"), "7" * 4000, ("numa_node", "too long")),
        (("bus", "pci", "devices", "0000:11:00.0", "vendor"), "0x" + "f" * 100, ("vendor", "too long")),
        (("bus", "pci", "devices", "0000:11:00.0", "class"), "0xzz", ("class", "not a hexadecimal")),
        (("class", "net", "docker0", "speed"), "1e999", ("speed", "not a whole number")),
        (("class", "net", "docker0", "statistics", "tx_bytes"), "-5", ("tx_bytes", "negative")),
    ],
    ids=[
        "rate-400-digits",
        "rate-huge",
        "numa-4000-digits",
        "vendor-long-hex",
        "class-bad-hex",
        "speed-inf",
        "negative-counter",
    ],
)
def test_numbers_that_are_not_numbers_are_findings(
    tmp_path: Path, parts: tuple[str, ...], text: str, words: tuple[str, ...]
) -> None:
    root = _node(tmp_path)
    real = Path(os.path.realpath(root.joinpath(*parts)))
    real.write_text(text + "\n")
    tree = Sysfs(root)
    ib_devices(tree), net_devices(tree), nvidia_gpus(tree)
    assert any(all(w in p.message for w in words) for p in tree.problems), tree.problems
    _sysfs_fails(root, *words)


def test_a_sound_tree_adds_no_sysfs_line(tmp_path: Path) -> None:
    results = checks.run_checks(load_profile("lambda-1cc"), _node(tmp_path), (), GOOD_ENV)
    assert not [r for r in results if r.check == "sysfs-tree"]


def test_counter_snapshot_skips_what_it_cannot_read(tmp_path: Path) -> None:
    root = _node(tmp_path)
    counter = ("class", "infiniband", "mlx5_1", "ports", "1", "counters", "port_xmit_data")
    os.mkfifo(_replace(root, counter))
    _replace(root, ("class", "net", "eno1", "statistics", "tx_bytes")).symlink_to("/dev/zero")
    snap = counters.snapshot(root)
    assert "mlx5_1:1" not in snap.readings and "eno1" not in snap.readings
    assert snap.readings["mlx5_2:1"].tx == 0


def test_natural_key_never_calls_int_on_odd_digits() -> None:
    names = ["mlx5_10", "mlx5_2", "eth" + "9" * 5000, "eth0" + "1", "²", "a٣", "mlx5_02"]
    ordered = sorted(names, key=natural_key)
    assert ordered.index("mlx5_2") < ordered.index("mlx5_10")
    assert ordered.index("eth01") < ordered.index("eth" + "9" * 5000)
