"""Issue 42: ``nvidia-smi nvlink -s`` judged as nodes print it (``bench.gpu.nvlink``, the ``nvlink`` check).

The verbatim captures of ``tests/data/wild/nvlink-status`` (each with its URL in the folder's ``cases.toml``) and
the H100 fixtures of ``tests/support/trees/gpu_state_docs.py``: every inactive link on a board whose GPUs all have N
links is a fault on each GPU showing it, whatever its peers show; a PCIe card's links are judged against its peers';
NVML's all-down line fails a GPU that has NVLink and marks a node of bridge-less PCIe cards as having none;
another nvidia-smi output is refused by name; the format is found in any line (srun labels, banners, the
prompt). Each FAIL line names the GPU's index, PCI address and links, and carries the action.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.bounded import InputError
from bench.gpu import nvlink, state
from bench.preflight import checks
from bench.preflight.check_base import Context
from bench.preflight.checks import CheckResult
from bench.profile.cluster import load_profile
from tests.support import railbench_inline
from tests.support.trees import gpu_state_docs as docs
from tests.support.trees import gpudirect_trees
from tests.support.wild import manifest
from tests.support.wild.nvlink_status import read

WILD = manifest.WILD / "nvlink-status"
GOOD_ENV = {"NCCL_IB_HCA": "^=mlx5_0", "NCCL_SOCKET_IFNAME": "=eno1"}


def _judged(text: str) -> nvlink.LinkJudgement:
    return nvlink.judge(nvlink.parse_status(text.splitlines()))


def _faults(text: str) -> list[tuple[int, tuple[int, ...]]]:
    return [(f.index, f.links) for f in _judged(text).faults]


# ---------------------------------------------------------------------------------------------------------
# judge: the rules


def test_a_link_inactive_on_every_h100_fails_every_gpu() -> None:
    """Compared with each other the eight GPUs agree; each still has 17 of its 18 links (Hopper whitepaper)."""
    text = docs.nvlink_status([replace(g, links_inactive=(4,)) for g in docs.healthy()])
    assert _faults(text) == [(k, (4,)) for k in range(8)]
    assert "NVLink 4 inactive (17 of 18 active)" in _judged(text).faults[0].why


def test_the_same_links_down_on_two_gpus_fail_both() -> None:
    gpus = [replace(g, links_inactive=(4, 5)) if k in (2, 5) else g for k, g in enumerate(docs.healthy())]
    assert _faults(docs.nvlink_status(gpus)) == [(2, (4, 5)), (5, (4, 5))]


def test_links_missing_from_a_block_of_a_designed_gpu_fail_it() -> None:
    judged = _judged(docs.nvlink_status(docs.healthy(2), links=16))
    assert [(f.index, f.links) for f in judged.faults] == [(0, (16, 17)), (1, (16, 17))]
    assert "NVLink 16, 17 missing from its block (18 by design)" in judged.faults[0].why


def test_a_pcie_cards_links_are_judged_against_its_peers() -> None:
    """Two bridged H100 PCIe cards use the same 12 links (the corpus file); one of those down on one card is a
    fault, the six unused on both are not."""
    text = (WILD / "h100-pcie-three-bridges.txt").read_text()
    assert _faults(text) == []
    lines = text.splitlines()
    at = lines.index("      GPU 1: NVIDIA H100 PCIe (UUID: GPU-9b1446e2-8a89-4cf6-b68c-a98d99e958d3)") + 4
    assert lines[at].strip() == "Link 3: 26.562 GB/s"
    lines[at] = lines[at].replace("26.562 GB/s", "<inactive>")
    judged = _judged("\n".join(lines))
    assert [(f.index, f.links) for f in judged.faults] == [(1, (3,))]
    assert judged.faults[0].why == "NVLink 3 inactive (11 of 12 active; its peers have them active)"


def test_a_slow_link_fails_its_gpu() -> None:
    text = docs.nvlink_status(docs.healthy(4))
    block = text.index("GPU 2:")
    slow = text[:block] + text[block:].replace("Link 7: 26.562 GB/s", "Link 7: 13.281 GB/s", 1)
    judged = _judged(slow)
    assert [(f.index, f.links) for f in judged.faults] == [(2, (7,))]
    assert judged.faults[0].why == "NVLink 7 below the others' 26.562 GB/s"


def test_nvmls_all_down_line_fails_a_gpu_with_nvlink_by_design() -> None:
    """leptonai/gpud#1085: the line under a B200's header is its 18 links down, not a PCIe GPU."""
    alone = _judged((WILD / "b200-gpu2-nvml-all-down.txt").read_text())
    assert [(f.index, f.links) for f in alone.faults] == [(2, tuple(range(18)))]
    assert alone.faults[0].why == "NVML: all its NVLinks inactive (0 of 18 active)"
    text = docs.nvlink_status([replace(g, name="NVIDIA B200") for g in docs.healthy()])
    block = text.split("GPU 3:")[1].split("GPU 4:")[0]
    header = block.splitlines()[0]
    down = text.replace(block, f"{header}\nNVML: Unable to retrieve NVLink information as all links are inActive\n")
    judged = _judged(down)
    assert [(f.index, f.links) for f in judged.faults] == [(3, tuple(range(18)))] and not judged.every_link_down


def test_nvmls_line_on_every_pcie_card_is_a_node_without_nvlink() -> None:
    judged = _judged((WILD / "a100-pcie-no-bridge.txt").read_text())
    assert judged.faults == () and judged.no_nvlink is not None and "A100-PCIE-40GB" in judged.no_nvlink


@pytest.mark.parametrize(
    ("name", "links"),
    [
        ("Tesla V100-SXM2-32GB", 6),
        ("NVIDIA A100-SXM4-80GB", 12),
        ("NVIDIA H100 80GB HBM3", 18),
        ("NVIDIA H200", 18),
        ("NVIDIA B200", 18),
        ("NVIDIA GB200", 18),
        ("NVIDIA H100 PCIe", None),
        ("NVIDIA H100 NVL", None),
        ("NVIDIA H200 NVL", None),
        ("NVIDIA A100-PCIE-40GB", None),
        ("NVIDIA GH200 480GB", None),
        ("NVIDIA RTX A6000", None),
    ],
)
def test_design_links_by_model_name(name: str, links: int | None) -> None:
    assert nvlink.design_links(name) == links


# ---------------------------------------------------------------------------------------------------------
# what a file holds, wherever its lines are


def test_srun_labels_a_banner_and_blank_lines_read_the_same() -> None:
    """``srun -l`` puts ``0:`` before each line of task 0 (bench.textlines.strip_launcher_label)."""
    path = WILD / "v100-sxm2-gpu3-inactive.txt"
    text = path.read_text()
    labelled = "\n\n=== node07 ===\n" + "".join(f"0: {line}\n" for line in text.splitlines())
    lines = labelled.splitlines()
    assert nvlink.output_kind(lines) == nvlink.STATUS
    assert nvlink.parse_status(lines) == nvlink.parse_status(text.splitlines())
    assert _faults(labelled) == [(3, (3, 5))]


@pytest.mark.parametrize(
    ("line", "named"),
    [
        # each line as the tool prints it (nvidia-smi(1); the DGX-1 guide's -c; the corpus's -i and -R)
        ("\t Link 0: Replay Errors: 0", "nvlink -e"),
        ("\t Link 0, P2P is supported: true", "nvlink -c"),
        ("         NVLE: disabled", "nvlink -i"),
        ("               Link 0: Remote Device 00000000:D5:00.0: Link 0", "nvlink -R"),
        ("Legend:", "topo -m"),
        ("==============NVSMI LOG==============", "nvidia-smi -q"),
    ],
)
def test_another_nvidia_smi_output_is_named(line: str, named: str) -> None:
    header = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5a10e6e5-95f7-2785-ed63-6f6147f304f7)"
    kind = nvlink.output_kind([header, line])
    assert kind is not None and named in kind
    beside_status = [*docs.nvlink_status(docs.healthy(1)).splitlines(), header, line]
    assert nvlink.output_kind(beside_status) == kind


def test_files_of_other_subcommands_are_refused_naming_them(tmp_path: Path) -> None:
    for name, named in (("gb200-nvlink-info.txt", "nvlink -i (--info)"), ("h100-pcie-remote-link-info.txt", "-R")):
        with pytest.raises(InputError, match=r"holds nvidia-smi .*, not nvidia-smi nvlink -s") as raised:
            state.from_files([WILD / name])
        assert named in str(raised.value) and "\n" not in str(raised.value)


def test_the_xml_report_is_found_after_the_command_echoed_before_it(tmp_path: Path) -> None:
    q = tmp_path / "q.txt"
    q.write_text("$ nvidia-smi -q -x\n\n" + docs.smi_xml(docs.healthy()))
    got = state.from_files([q, WILD / "a100-sxm4-p4de-prompt.txt"])
    assert got.report is not None and len(got.report.gpus) == 8
    assert got.links is not None and [len(g.links) for g in got.links] == [12]


# ---------------------------------------------------------------------------------------------------------
# the nvlink check's lines


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gpudirect_trees.build(tmp_path_factory.mktemp("nvlink"), *gpudirect_trees.healthy())


def _nvlink(root: Path, *files: Path) -> list[CheckResult]:
    results = checks.run_checks(
        load_profile("lambda-1cc"), root, env=GOOD_ENV, nvidia_smi=files, kernel_log=None, node="node07"
    )
    return [r for r in results if r.check == "nvlink"]


def test_a_fail_names_the_gpu_its_pci_address_its_links_and_the_action(tree: Path) -> None:
    found = _nvlink(tree, WILD / "v100-sxm2-gpu3-inactive.txt")
    ctx = Context(load_profile("lambda-1cc"), tree, [], GOOD_ENV)
    address = next(p.address for p in ctx.gpu_paths if p.k == 3)
    assert address.startswith("0000:")
    assert [(r.status, r.device, r.gpus) for r in found] == [("fail", "GPU3", (3,))]
    assert found[0].reason == f"GPU 3 ({address}): NVLink 3, 5 inactive (4 of 6 active)"
    assert found[0].action is not None and "node07" in found[0].action and f"GPU 3 ({address})" in found[0].action


def test_a_b200_behind_nvmls_line_fails_with_its_links(tree: Path) -> None:
    found = _nvlink(tree, WILD / "b200-gpu2-nvml-all-down.txt")
    assert [(r.status, r.device) for r in found] == [("fail", "GPU2")]
    assert "NVML: all its NVLinks inactive (0 of 18 active)" in found[0].reason and found[0].action


def test_bridged_pcie_cards_pass_and_bridge_less_ones_skip(tree: Path) -> None:
    bridged = _nvlink(tree, WILD / "h100-pcie-three-bridges.txt")
    assert [r.status for r in bridged] == ["pass"]
    assert "all 24 NVLinks of 2 GPUs up at one speed; link 4, 5, 10, 11, 16, 17 inactive on every GPU" in (
        bridged[0].reason
    )
    none = _nvlink(tree, WILD / "a100-pcie-no-bridge.txt")
    assert [r.status for r in none] == ["skip"] and "NVML: no NVLink active" in none[0].reason


def test_railbench_check_fails_a_corpus_node_with_inactive_links(tree: Path) -> None:
    argv = ["check", "--profile", "lambda-1cc", "--sysfs-root", str(tree), "--nvidia-smi"]
    done = railbench_inline([*argv, str(WILD / "v100-sxm2-gpu3-inactive.txt")], env=GOOD_ENV)
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    at = next(i for i, line in enumerate(lines) if line.lstrip().startswith("FAIL  nvlink"))
    assert "GPU 3 (" in lines[at] and "NVLink 3, 5 inactive" in lines[at]
    assert lines[at + 1].strip().startswith("action: ") and "GPU 3" in lines[at + 1]
    assert lines[-1].startswith("verdict: FAIL")
    refused = railbench_inline([*argv, str(WILD / "gb200-nvlink-info.txt")], env=GOOD_ENV)
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0
    assert "nvidia-smi nvlink -i (--info)" in refused.stderr


def test_every_wild_status_file_reads_without_error() -> None:
    for case in manifest.cases(WILD):
        assert read(case.file)["kind"] != "none", case.id


def test_no_link_up_on_any_gpu_fails_the_node_and_each_gpu() -> None:
    """Links listed but none up (the fabric manager not running on an HGX board; bridges off PCIe cards on an
    older driver): each GPU is named, and the node's one line says every link is down, never "its peers"."""
    judged = _judged(docs.nvlink_status([replace(g, links_inactive=tuple(range(18))) for g in docs.healthy(2)]))
    assert judged.every_link_down and [(f.index, len(f.links)) for f in judged.faults] == [(0, 18), (1, 18)]
    pcie = docs.nvlink_status([replace(g, name="NVIDIA H100 PCIe", links_inactive=(0, 1)) for g in docs.healthy(2)], 2)
    judged = _judged(pcie)
    assert judged.every_link_down and [f.why for f in judged.faults] == ["NVLink 0, 1 inactive (0 of 2 active)"] * 2


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)",
                    "0: GPU 1: NVIDIA H100 PCIe (UUID: GPU-2)",
                    "GPU 2: NVIDIA B200 (UUID: GPU-3)",
                    "\t Link 3: 26.562 GB/s",
                    "\t Link 4: <inactive>",
                    "\t Link 17: 13.281 GB/s",
                    "NVML: Unable to retrieve NVLink information as all links are inActive",
                    "\t Link 0: Replay Errors: 0",
                ]
            ),
            st.text(max_size=30),
        ),
        max_size=40,
    )
)
def test_any_lines_are_named_or_judged_never_an_error(lines: list[str]) -> None:
    """Whatever the lines, the reader names them or judges them: every fault is a GPU that is in the output,
    with links it should have (its model's, or its peers')."""
    kind = nvlink.output_kind(lines)
    gpus = nvlink.parse_status(lines)
    judged = nvlink.judge(gpus)
    indexes = {g.index for g in gpus}
    for fault in judged.faults:
        assert fault.index in indexes and fault.links and fault.why
    if kind is None:
        assert not any(g.links or g.all_down for g in gpus)


def test_a_live_listing_that_ends_non_zero_is_still_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU whose links are all down makes nvidia-smi say so through NVML; whatever the exit status, the listing
    it printed is the finding (the B200 corpus file, printed by a stand-in nvidia-smi that then exits 255), while
    a tool that printed no GPU block stays a tool failure."""
    listing = WILD / "b200-gpu2-nvml-all-down.txt"
    tool = tmp_path / "nvidia-smi"
    tool.write_text(f'#!/bin/sh\n[ "$1" = nvlink ] || exit 9\ncat "{listing}"\nexit 255\n')
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    found = state.from_tool()
    assert found.links is not None and found.links_missing is None
    down = [g for g in found.links if g.all_down]
    assert [g.index for g in down] == [2]
    tool.write_text("#!/bin/sh\necho 'Failed to initialize NVML: Driver/library version mismatch'\nexit 255\n")
    found = state.from_tool()
    assert found.links is None and found.links_missing is not None and "version mismatch" in found.links_missing
