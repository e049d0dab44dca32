"""NCCL_IB_HCA / NCCL_SOCKET_IFNAME semantics (NCCL's parseStringList/matchIfList) and ``railbench hca``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import bench
from bench.exits import UserError
from bench.fabric import hca
from tests.support import REPO, railbench_inline
from tests.support.trees import fabric_trees

ONE_CC = ["mlx5_0:1", *(f"mlx5_{k}:1" for k in range(1, 9))]
WIDE = [f"mlx5_{k}:1" for k in range(16)]  # a node with mlx5_10+ (e.g. the deepep H100 with mlx5_13)
TWO_PORT = ["mlx5_0:1", "mlx5_0:2", "mlx5_1:1", "mlx5_bond_0:1"]

# (value, available, selected): each row is one rule of NCCL's source (src/misc/utils.cc).
SEMANTICS = [
    # unset, empty and entry-less lists select everything; '^' with nothing excludes everything
    (None, ONE_CC, ONE_CC),
    ("", ONE_CC, ONE_CC),
    (",", ONE_CC, ONE_CC),
    (",,,", ONE_CC, ONE_CC),
    ("=", ONE_CC, ONE_CC),
    ("^", ONE_CC, []),
    ("^=", ONE_CC, []),
    # the Lambda values
    ("^=mlx5_0", ONE_CC, ONE_CC[1:]),
    ("^mlx5_0", ONE_CC, ONE_CC[1:]),
    ("=mlx5_1,mlx5_2,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_7,mlx5_8", ONE_CC, ONE_CC[1:]),
    # prefix vs exact
    ("^mlx5_1", WIDE, [d for d in WIDE if not d.startswith("mlx5_1")]),
    ("^=mlx5_1", WIDE, [d for d in WIDE if d != "mlx5_1:1"]),
    ("mlx5_1", WIDE, ["mlx5_1:1", *(f"mlx5_{k}:1" for k in range(10, 16))]),
    ("=mlx5_1", WIDE, ["mlx5_1:1"]),
    ("mlx5", TWO_PORT, TWO_PORT),
    ("=mlx5", TWO_PORT, []),
    # '^' and '=' only at the very start
    ("^=mlx5_8,^=mlx5_14", WIDE, [d for d in WIDE if d != "mlx5_8:1"]),
    ("=^mlx5_0", ONE_CC, []),
    ("=mlx5_0,=mlx5_1", ONE_CC, ["mlx5_0:1"]),
    ("^^mlx5_0", ONE_CC, ONE_CC),
    ("=^=mlx5_0", ONE_CC, []),
    # ports
    ("mlx5_0:1", TWO_PORT, ["mlx5_0:1"]),
    ("mlx5_0:2", TWO_PORT, ["mlx5_0:2"]),
    ("^mlx5_bond_0:1", TWO_PORT, ["mlx5_0:1", "mlx5_0:2", "mlx5_1:1"]),
    ("mlx5_0:", TWO_PORT, ["mlx5_0:1", "mlx5_0:2"]),  # empty port = any port (NCCL >= 2.30.7)
    ("mlx5_0:abc", TWO_PORT, []),  # atoi("abc") = 0
    ("mlx5_0:0", TWO_PORT, []),
    ("mlx5_0:2x", TWO_PORT, ["mlx5_0:2"]),  # atoi stops at the first non-digit
    ("mlx5_0: 2", TWO_PORT, ["mlx5_0:2"]),  # atoi skips leading whitespace
    ("mlx5_0:-1", TWO_PORT, ["mlx5_0:1", "mlx5_0:2"]),  # -1 is NCCL's "any port"
    ("mlx5_0:99999999999999999999", TWO_PORT, ["mlx5_0:1", "mlx5_0:2"]),  # strtol saturates, int cast -> -1
    ("mlx5_0:4294967298", TWO_PORT, ["mlx5_0:2"]),  # low 32 bits of 2**32 + 2
    ("mlx5_0:1:0:1", TWO_PORT, ["mlx5_0:1"]),  # rail and plane fields do not change the match
    # empty entries and empty names are dropped
    ("mlx5_1,,mlx5_0:2", TWO_PORT, ["mlx5_0:2", "mlx5_1:1"]),
    (":1,mlx5_1", TWO_PORT, ["mlx5_1:1"]),
    ("^:1", TWO_PORT, []),  # only a dropped entry: empty exclude list excludes everything
    # no whitespace trimming, no fullwidth commas
    ("mlx5_0, mlx5_1", ONE_CC, ["mlx5_0:1"]),
    ("mlx5_1:1，mlx5_2:1", ONE_CC, ["mlx5_1:1"]),  # one entry: port "1，mlx5_2:1" is atoi 1
    ("mlx5_1，mlx5_2", ONE_CC, []),
]


@pytest.mark.parametrize(("value", "available", "selected"), SEMANTICS, ids=[repr(row[0]) for row in SEMANTICS])
def test_select_hcas_follows_nccl(value: str | None, available: list[str], selected: list[str]) -> None:
    assert hca.select_hcas(value, available) == selected


def test_select_hcas_keeps_the_order_of_available_and_is_exported_by_bench() -> None:
    shuffled = ["mlx5_10:1", "mlx5_2:1", "mlx5_0:1", "mlx5_1:1"]
    assert bench.select_hcas("^=mlx5_0", shuffled) == ["mlx5_10:1", "mlx5_2:1", "mlx5_1:1"]
    with pytest.raises(UserError, match="NAME:PORT"):
        hca.select_hcas("mlx5_0", ["mlx5_0"])


def test_entry_limits_are_ncclS() -> None:
    many = ",".join(f"=mlx5_{k}" if k == 0 else f"mlx5_{k}" for k in range(40))
    parsed = hca.parse_list("=" + many)
    assert len(parsed.entries) == hca.MAX_IB_DEVS and len(parsed.ignored) == 8
    assert hca.select_hcas("=" + ",".join(f"mlx5_{k}" for k in range(40)), ["mlx5_33:1"]) == []
    long_name = "x" * 100
    assert hca.parse_list(long_name).entries[0].name == "x" * 63
    assert hca.select_hcas("=" + long_name, ["x" * 63 + ":1"]) == ["x" * 63 + ":1"]


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", 1), ("", 0), ("abc", 0), ("  7z", 7), ("+3", 3), ("-2", -2), ("4294967296", 0), ("2147483648", -(2**31))],
)
def test_c_atoi(text: str, value: int) -> None:
    assert hca.c_atoi(text) == value


def test_socket_ifname_grammar_has_no_ports_and_nccl_default_order() -> None:
    ifs = ["lo", "docker0", "eth0", "eth1", "eth10", "ib0"]
    assert hca.select_ifnames("eth1", ifs) == ["eth1", "eth10"]
    assert hca.select_ifnames("=eth1", ifs) == ["eth1"]
    assert hca.select_ifnames("^docker,lo", ifs) == ["eth0", "eth1", "eth10", "ib0"]
    assert hca.select_ifnames("^=docker0", ifs) == ["lo", "eth0", "eth1", "eth10", "ib0"]
    assert hca.select_ifnames("eth0:5", ifs) == ["eth0"]
    assert hca.nccl_default_ifnames(ifs) == ["ib0"]
    assert hca.nccl_default_ifnames(["lo", "docker0", "eno1"]) == ["eno1"]
    assert hca.nccl_default_ifnames(["lo"]) == ["lo"]


def _codes(value: str | None, candidates: list[hca.Candidate]) -> set[str]:
    return {w.code for w in hca.explain(value, candidates).warnings}


def test_explain_reasons_and_warnings() -> None:
    ports = [
        hca.Candidate("mlx5_0", 1, "ACTIVE", "Ethernet"),
        hca.Candidate("mlx5_1", 1, "ACTIVE", "InfiniBand"),
        hca.Candidate("mlx5_2", 1, "DOWN", "InfiniBand"),
        hca.Candidate("mlx5_10", 1, "ACTIVE", "InfiniBand"),
    ]
    result = hca.explain("^mlx5_1", ports)
    reasons = {d.name: d.reason for d in result.decisions}
    assert result.selected == ["mlx5_0:1"]
    assert "prefix entry 'mlx5_1'" in reasons["mlx5_10:1"]
    assert "not ACTIVE" in reasons["mlx5_2:1"]
    assert [d.index for d in result.decisions] == [0, None, None, None]
    assert "prefix-catches-more" in {w.code for w in result.warnings} and result.verdict == "warn"
    assert hca.explain("^=mlx5_0", ports).verdict == "ok"
    assert _codes("^=mlx5_8,^=mlx5_14", ports) >= {"modifier-in-entry", "matches-nothing"}
    assert _codes("=^mlx5_0", ports) >= {"modifier-order", "no-device"}
    assert _codes("mlx5_1:abc", ports) >= {"port-zero", "no-device"}
    assert _codes("=mlx5_1:1x", ports) == {"port-atoi"}
    assert _codes("mlx5_1:", ports) >= {"empty-port"}
    assert _codes("^", ports) == {"empty-exclude", "no-device"}
    assert _codes(",", ports) == {"empty-list", "mixed-link-layers"}  # every port: mlx5_0 is Ethernet
    assert _codes("mlx5_1, mlx5_0", ports) >= {"whitespace"}
    assert _codes("mlx5_1，mlx5_0", ports) >= {"non-ascii", "no-device"}
    assert _codes(None, []) == {"no-device"}
    assert hca.explain("mlx5_0", [hca.Candidate("mlx5_0", 1, "ACTIVE", "Omni-Path")]).verdict == "none"


@pytest.fixture(scope="module")
def bond_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fabric_trees.build(tmp_path_factory.mktemp("sysfs") / "bond", fabric_trees.bond_node())


def test_hca_command_reads_sysfs_and_says_why(bond_tree: Path) -> None:
    proc = railbench_inline(["hca", "--nccl-ib-hca", "^=mlx5_0", "--sysfs-root", str(bond_tree), "--json"])
    # the RoCE bond stays in use beside the 8 IB rails: a warning that names it and the value that leaves it out
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    (mixed,) = [w for w in doc["warnings"] if w["code"] == "mixed-link-layers"]
    assert mixed["message"].startswith("NCCL uses ports of two link layers: mlx5_bond_0:1 is Ethernet (RoCE) beside 8")
    assert mixed["message"].endswith("add it to the exclude list: NCCL_IB_HCA=^=mlx5_0,mlx5_bond_0")
    clean = railbench_inline(["hca", "--nccl-ib-hca", "^=mlx5_0,mlx5_bond_0", "--sysfs-root", str(bond_tree)])
    assert clean.returncode == 0 and "verdict: OK" in clean.stdout, clean.stdout
    assert doc["selected"] == [f"mlx5_{k}:1" for k in range(1, 9)] + ["mlx5_bond_0:1"]
    ports = {p["device"]: p for p in doc["ports"]}
    assert ports["mlx5_0:1"]["reason"] == "excluded by exact name entry 'mlx5_0'"
    assert ports["mlx5_bond_0:1"]["link_layer"] == "Ethernet" and ports["mlx5_bond_0:1"]["index"] == 8


def test_hca_command_env_unset_flag_and_devices(bond_tree: Path) -> None:
    from_env = railbench_inline(["hca", "--sysfs-root", str(bond_tree)], env={"NCCL_IB_HCA": "^=mlx5_8,^=mlx5_14"})
    assert from_env.returncode == 1 and "(environment)" in from_env.stdout
    assert "'^=mlx5_14' is a literal name" in from_env.stdout
    unset = railbench_inline(["hca", "--nccl-ib-hca", "--devices", "mlx5_0,mlx5_1:1"], env={"NCCL_IB_HCA": "^"})
    assert unset.returncode == 0, unset.stdout
    assert "NCCL_IB_HCA is unset" in unset.stdout and "use [1]" in unset.stdout
    bad = railbench_inline(["hca", "--devices", "mlx5_0:x"])
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "NAME:PORT" in bad.stderr


@pytest.mark.parametrize("value", [",", "^", "x" * 10_000, "mlx5_0，mlx5_1", "mlx5_é:1", "\x01\x7f"])
def test_hca_command_bad_values_get_a_verdict_not_a_traceback(bond_tree: Path, value: str) -> None:
    proc = railbench_inline(["hca", f"--nccl-ib-hca={value}", "--sysfs-root", str(bond_tree)])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr == ""
    assert proc.stdout.splitlines()[-1].startswith("verdict: ")
    assert max(len(line) for line in proc.stdout.splitlines()) < 400


def test_hca_unset_on_a_1cc_node_warns_of_the_ethernet_port_beside_the_ib_rails(tmp_path: Path) -> None:
    """NCCL_IB_HCA unset on a node whose mlx5_0 is a front-end Ethernet (RoCE) port beside 8 InfiniBand rails:
    NCCL would use mlx5_0 too. ``check --profile lambda-1cc`` fails it; ``hca`` alone must not say OK."""
    root = fabric_trees.build(tmp_path / "node", fabric_trees.healthy_1cc())
    proc = railbench_inline(["hca", "--nccl-ib-hca", "--sysfs-root", str(root)])
    assert proc.returncode == 1 and "verdict: WARN" in proc.stdout, proc.stdout
    assert (
        "mlx5_0:1 is Ethernet (RoCE) beside 8 InfiniBand ports, a separate fabric that no InfiniBand port reaches "
        "(often a front-end port not meant for RDMA): leave it out with NCCL_IB_HCA=^=mlx5_0"
    ) in proc.stdout
    fixed = railbench_inline(["hca", "--nccl-ib-hca", "^=mlx5_0", "--sysfs-root", str(root)])
    assert fixed.returncode == 0 and "verdict: OK" in fixed.stdout, fixed.stdout


def test_hca_never_imports_torch(bond_tree: Path) -> None:
    # How fast it answers is shown by ci/bench_hca.py (speed targets are printed, not asserted).
    code = (
        "import sys; from bench.cli import main; "
        f"rc = main(['hca', '--nccl-ib-hca', '^=mlx5_0,mlx5_bond_0', '--sysfs-root', {str(bond_tree)!r}]); "
        "sys.exit(rc if 'torch' not in sys.modules else 99)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
