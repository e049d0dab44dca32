"""Issue 28 item 7 and issue 33 items 20-21: the cabling reader takes the files real fabrics give.

The fixtures are the project's own, in ibnetdiscover's output format (``tests/data/topology/``); the variants
here are made from them as the wild makes them: the CA blocks left out, the file cut inside a section or inside
a block, MLNX_OFED's ``<host> HCA-<n>`` NodeDescriptions, an adapter's factory description on every CA,
NodeDescriptions holding terminal escapes, and a hostile file whose one host sits on thousands of leaves.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.exits import UserError
from bench.fabric import cabling_links, cabling_plan, ibnetdiscover
from bench.fabric.cabling import MAX_RAILS, Cable, Cabling, HostPort, SwitchPort
from bench.fabric.topology_file import load_cabling
from bench.rails.plan.fabric_map import Topology, device_hca, place
from tests.support import CORPUS, railbench_inline

DATA = Path(__file__).resolve().parent / "data" / "topology"
RAILS = ("mlx5_1", "mlx5_2")


def _blocks(text: str) -> list[str]:
    return [block.strip("\n") for block in text.split("\n\n") if block.strip()]


def _is_ca(block: str) -> bool:
    return any(line.startswith("Ca\t") for line in block.splitlines())


def _parse(text: str, where: str = "fabric.txt") -> Cabling:
    return ibnetdiscover.parse([(i + 1, line) for i, line in enumerate(text.splitlines())], where)


def _cables(cabling: Cabling) -> set[tuple[str, str, str | None]]:
    return {(str(c.a), str(c.b), c.link) for c in cabling.cables}


def test_real_output_reads_whole_with_its_grouping_routers_and_vendor_names() -> None:
    cabling = load_cabling(DATA / "grouped-ndr.ibnet")
    assert cabling.cable_of("gpu-a002", "mlx5_2") == Cable(
        HostPort("gpu-a002", "mlx5_2"), SwitchPort("MF0;gpu-leaf-r1:MQM9700/U1", 2), "4xNDR"
    )
    fabric, found = cabling_plan.check(cabling, cabling_plan.rail_order(cabling, (*RAILS, "mlx5_3")))
    assert found == []
    # Two spines share the vendor's default NodeDescription: each is named by its GUID id; the router is no end.
    assert fabric.spines == ("S-b83fd20300aa0a00", "S-b83fd20300aa0900")
    assert len(cabling.cables) == 8


def test_hosts_are_read_from_the_switch_side_when_the_ca_blocks_are_absent() -> None:
    text = (DATA / "two-units.ibnet").read_text()
    switches_only = "\n\n".join(b for b in _blocks(text) if not _is_ca(b))
    assert "Ca\t" not in switches_only
    assert _cables(_parse(switches_only)) == _cables(_parse(text))  # the same 20 cables, links and names


@pytest.mark.parametrize(
    ("where", "said"),
    [
        ("a whole CA block", "the file ends inside its host section: 1 channel adapter(s) the switches name"),
        ("a CA block's port line", "whose block (line"),
        ("the middle of a line", "a port line that is cut short or damaged"),
        ("the switch section", "is cabled to but has no block of its own: the file is cut or filtered"),
    ],
)
def test_a_file_cut_short_is_refused_never_read_as_a_smaller_fabric(where: str, said: str) -> None:
    text = (DATA / "two-units.ibnet").read_text()
    blocks = _blocks(text)
    if where == "a whole CA block":
        cut = "\n\n".join(blocks[:-1])
    elif where == "a CA block's port line":
        cut = "\n\n".join(blocks[:-1]) + "\n\n" + blocks[-1].rsplit("\n", 1)[0]
    elif where == "the middle of a line":
        cut = text.rstrip("\n")[:-40]
    else:
        first_ca = next(i for i, b in enumerate(blocks) if _is_ca(b))
        cut = "\n\n".join(blocks[: first_ca - 2])  # the last spine and the storage switch are lost
    with pytest.raises(UserError) as caught:
        _parse(cut)
    message = str(caught.value)
    assert said in message and "give ibnetdiscover's whole output" in message and "\n" not in message


def _hca_n(text: str) -> str:
    """The NodeDescriptions MLNX_OFED's openibd writes: ``<host> HCA-<n>``, numbered in device order."""
    for name, label in (("mlx5_0", "HCA-1"), ("mlx5_1", "HCA-2"), ("mlx5_2", "HCA-3")):
        text = text.replace(f' {name}"', f' {label}"')
    return text


def test_hca_n_descriptions_are_rails_by_position_when_the_count_matches_the_profile() -> None:
    text = _hca_n((DATA / "two-units-broken.ibnet").read_text())
    storage = [b for b in _blocks(text) if "storage-1" in b or 'HCA-1"' in b]
    rails_only = "\n\n".join(b for b in _blocks(text) if b not in storage)
    cabling = _parse(rails_only)
    order = cabling_plan.rail_order(cabling, RAILS, ("mlx5_0",))
    assert order == ("HCA-2", "HCA-3")
    fabric, found = cabling_plan.check(cabling, order)
    kinds = {f.kind: f for f in found}
    assert kinds["miswired"].node_port == "node02 HCA-3 port 1" and "(rail 1)" in kinds["miswired"].line
    assert kinds["missing"].node_port == "node04 HCA-2 port 1"
    note = cabling_plan.by_position(fabric, RAILS)
    assert note is not None and "HCA-2..HCA-3 are rails 0-1 (mlx5_1..mlx5_2)" in note
    # rails --topology: the counters name mlx5_2 for rail 1, a name the cabling never uses: the plan's HCA-3.
    topology = Topology(cabling, order)
    devices = {(node, k): f"mlx5_{k + 1}:1" for node in ("node01", "node02", "node03") for k in range(2)}
    placed = place(topology, ("node01", "node02", "node03"), 2, device_hca(devices))
    assert placed.node_port[(1, 0)] == "node01 HCA-3 port 1"
    assert placed.leaf_port[(0, 2)] == "leaf-su2-r0 port 1"


def test_hca_n_descriptions_that_cannot_be_told_apart_are_refused_with_the_fix(tmp_path: Path) -> None:
    text = _hca_n((DATA / "two-units.ibnet").read_text())  # storage's mlx5_0 is HCA-1 on the same fabric
    cabling = _parse(text)
    with pytest.raises(UserError) as caught:
        cabling_plan.rail_order(cabling, RAILS, ("mlx5_0",))
    message = str(caught.value)
    assert "named HCA-1..HCA-3 (3 per node at most), not the profile's 2 rails (mlx5_1..mlx5_2)" in message
    assert "rdma-ndd" in message and "rails = [...]" in message
    path = tmp_path / "fabric.txt"
    path.write_text(text)
    proc = railbench_inline(["check", "--profile", "lambda-1cc", "--topology", str(path)])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not the profile's 8 rails" in proc.stderr


def test_a_factory_node_description_on_every_ca_is_refused_with_the_fix() -> None:
    text = (DATA / "two-units.ibnet").read_text()
    for node in ("node01", "node02", "node03", "node04"):
        for hca in ("mlx5_0", "mlx5_1", "mlx5_2"):
            text = text.replace(f'"{node} {hca}"', '"MT4129 ConnectX7   Mellanox Technologies"')
    with pytest.raises(UserError, match="share the NodeDescription 'MT4129 ConnectX7   Mellanox Technologies'"):
        _parse(text)


def test_node_descriptions_with_terminal_escapes_reach_no_output_raw(tmp_path: Path) -> None:
    """Any root on any host sets its NodeDescription: a window title (OSC 0), a screen clear (CSI 2J), a C1 CSI and
    a bidirectional override must not reach the terminal or checks.json as they are."""
    text = (DATA / "two-units-broken.ibnet").read_text()
    text = text.replace('"node02 mlx5_2"', '"node02\x1b]0;pwned\x07 mlx5_2\x1b[2J"')
    text = text.replace('"leaf-su1-r0"', '"leaf\x9b2J-su1-r0\u202e"')
    path = tmp_path / "fabric.txt"
    path.write_bytes(text.encode("utf-8"))
    for args in ([], ["--json"]):
        proc = railbench_inline(["check", "--profile", "generic", "--topology", str(path), *args])
        shown = proc.stdout + proc.stderr
        assert proc.returncode == 1, shown
        for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
            assert raw not in shown
        said = json.loads(proc.stdout)["cabling"][0]["reason"] if args else shown
        assert "leaf\\x9b2J-su1-r0\\u202e port 3" in said


def test_a_host_on_thousands_of_leaves_costs_its_rails_not_its_ports() -> None:
    """The unit grouping counted every pair of one host's leaves: a 0.8 MB file cabling one host's HCA ports to
    3,000 switches took minutes. A node sits on one leaf per rail, and a file naming more rails than any node
    has is refused."""
    many_hcas = tuple(Cable(HostPort("x", f"mlx5_{i}"), SwitchPort(f"leaf-{i}", 1)) for i in range(3000))
    with pytest.raises(UserError, match=f"3000 different HCA names, more rails than any node has \\({MAX_RAILS}\\)"):
        cabling_plan.rail_order(Cabling(many_hcas, "hostile"))
    fabric = cabling_plan.shape(Cabling(many_hcas, "hostile"), ("mlx5_1", "mlx5_2"))
    assert sorted(fabric.leaves) == ["leaf-1", "leaf-2"]
    many_ports = tuple(Cable(HostPort("x", "mlx5_1", p), SwitchPort(f"sw-{p}", 1)) for p in range(1, 4001))
    assert list(cabling_plan.shape(Cabling(many_ports, "hostile"), ("mlx5_1",)).leaves) == ["sw-1"]
    with pytest.raises(UserError, match="more than any node has"):
        cabling_plan.rail_order(Cabling(many_hcas, "hostile", tuple(f"mlx5_{i}" for i in range(100))))


def test_uplink_findings_count_only_the_leaves_that_reach_a_spine() -> None:
    """2,000 leaves of one rail, each with its own spine: no spine is the usual one, nothing is missing."""
    cables = [Cable(HostPort(f"n{i}", "mlx5_1"), SwitchPort(f"leaf-{i}", 1)) for i in range(2000)]
    cables += [Cable(SwitchPort(f"leaf-{i}", 33), SwitchPort(f"spine-{i}", 1)) for i in range(2000)]
    _, found = cabling_plan.check(Cabling(tuple(cables), "hostile"), ("mlx5_1",))
    assert [f.kind for f in found] == []


# Issue 42: rails only where the fabric is rail-optimised; redacted ids, older output, lone adapters.
WILD = Path(__file__).resolve().parent / "data" / "wild" / "ibnetdiscover"


def _fat_tree(uplink_link: str) -> Cabling:
    """A two-level fat tree of one HCA per host (MLNX_OFED's ``HCA-1``): 2 leaves of 3 hosts, 2 spines, each leaf
    two cables to each spine at 4xEDR, one of them at ``uplink_link``."""
    cables = [
        Cable(HostPort(f"n{leaf}{i}", "HCA-1"), SwitchPort(f"leaf{leaf}", i), "4xEDR")
        for leaf in (1, 2)
        for i in (1, 2, 3)
    ]
    for leaf in (1, 2):
        for spine in (1, 2):
            for k in (1, 2):
                link = uplink_link if (leaf, spine, k) == (2, 1, 2) else "4xEDR"
                cables.append(
                    Cable(
                        SwitchPort(f"leaf{leaf}", 30 + 2 * spine + k), SwitchPort(f"spine{spine}", 2 * leaf + k), link
                    )
                )
    return Cabling(tuple(cables), "fat-tree")


def test_a_fat_tree_of_one_hca_per_host_is_judged_without_rails() -> None:
    cabling = _fat_tree("4xEDR")
    # the profile's 8 rails named otherwise are no reason to refuse: there are no rails to tell apart
    order = cabling_plan.rail_order(cabling, tuple(f"mlx5_{k}" for k in range(8)), ("mlx5_0",))
    fabric, found = cabling_plan.check(cabling, order)
    assert not fabric.rail_optimised and found == []
    assert cabling_plan.summary(fabric, 6) == "6 nodes on 2 leaves, 2 spines, not rail-optimised"


def test_a_degraded_uplink_of_a_fat_tree_is_still_named() -> None:
    _, found = cabling_plan.check(_fat_tree("4xDDR"), ("HCA-1",))
    assert [(f.kind, f.switch_port) for f in found] == [("degraded", "leaf2 port 34 and spine1 port 6")]
    assert "runs at 4xDDR, the fabric's other switch links at 4xEDR" in found[0].line


def test_link_speeds_compare_by_what_they_carry_not_their_letters() -> None:
    assert cabling_links.bandwidth("2xNDR") == cabling_links.bandwidth("4xHDR") == 212.5
    assert cabling_links.usual(["4xQDR", "4xFDR", "4xFDR", "4xQDR", "4xSDR"]) == "4xQDR"  # a tie: the lower
    cables = [
        Cable(HostPort(f"h{i}", "mlx5_0"), SwitchPort("s", i), link)
        for i, link in enumerate(["4xQDR", "4xFDR", "4xQDR"])
    ]
    assert cabling_links.below(cables) == ("4xQDR", [])  # FDR is faster than QDR, whatever its letters say


def test_redacted_ids_are_read_by_name_or_refused_as_partial() -> None:
    cabling = load_cabling(WILD / "charlie-ndr200-redacted-guids.txt")
    assert sorted(cabling.hosts) == [f"tj01-4090-node00{n}" for n in (4, 5, 6, 7, 9)]
    text = (WILD / "charlie-ndr200-redacted-guids.txt").read_text().replace("...omitted\n", "")
    block = (
        'Ca\t1 "H-946d<redacted>"\t\t# "tj01-4090-node004 mlx5_2"\n'
        '[1](946d<redacted>) \t"S-9c05<redacted>"[2]\t\t# lid 27 lmc 0 "x" lid 1 2xNDR\n'
    )
    with pytest.raises(
        UserError, match=r"names 3 different adapters .* redacted or shared, so the file cannot be read whole"
    ):
        _parse(text + "\n" + block)


def test_older_output_without_link_speeds_is_read_and_a_bare_line_among_linked_ones_is_cut() -> None:
    cabling = load_cabling(WILD / "ompi-2009-sdr-infiniscale-iii-single-switch.txt")
    assert len(cabling.hosts) == 24 and {c.link for c in cabling.cables} == {None}
    text = (DATA / "two-units.ibnet").read_text()
    line = next(
        i for i, text_line in enumerate(text.splitlines()) if text_line.startswith("[1]") and "4xNDR" in text_line
    )
    lines = text.splitlines()
    lines[line] = lines[line].rsplit(" ", 1)[0]
    with pytest.raises(UserError, match=f":{line + 1}: a port line that is cut short or damaged"):
        _parse("\n".join(lines))


def test_a_dump_whose_port_reached_no_switch_says_so() -> None:
    with pytest.raises(UserError, match="channel adapters but no switch: the port ibnetdiscover ran from reaches none"):
        load_cabling(WILD / "gb200-lone-ca.txt")


def test_hca_n_and_mlx5_names_of_one_fabric_are_one_set_of_rails() -> None:
    cabling = load_cabling(WILD / "h100-ndr-superpod-rail-optimised.txt")
    order = cabling_plan.rail_order(cabling)
    assert order == ("mlx5_0", "mlx5_1", "mlx5_4", "mlx5_5")  # HCA-1, HCA-2, HCA-5, HCA-6 elsewhere
    assert cabling.hosts["a06-p1-dgx-02-c01"] == order
    fabric, found = cabling_plan.check(cabling, order)
    assert fabric.rail_optimised
    assert not [f for f in found if f.node_port and f.node_port.startswith(("ubuntu ", "B11-P1-CUFM-02 "))]
    unnamed = [f for f in found if f.kind == "unnamed"]
    assert len(unnamed) == 1 and unnamed[0].line.startswith("unnamed adapters: 69 channel adapter(s) share")


def test_another_tools_output_is_named_not_read_as_a_fabric() -> None:
    devinfo_capture = (
        Path(__file__).resolve().parent / "data" / "wild" / "ibv-devinfo" / "cx6dx-roce-port-down-1024-deepep60.txt"
    )
    with pytest.raises(UserError, match="ibv_devinfo's output, not ibnetdiscover's topology"):
        load_cabling(devinfo_capture)
    ibstat = CORPUS / "ibstat_a100_8xHDR_ibpanic_gpud.txt"
    if ibstat.is_file():  # the shared corpus, where this machine has it
        with pytest.raises(UserError, match="ibstat's output, not ibnetdiscover's topology"):
            load_cabling(ibstat)


def test_hca_n_is_never_merged_into_an_adapter_its_host_already_names(tmp_path: Path) -> None:
    """node2's "HCA-1" beside its own "mlx5_0" are two adapters (two GUIDs): neither is renamed; where only
    another host says mlx5_k, node2's "HCA-1" is its first adapter, mlx5_0."""
    text = (WILD / "ompi-2009-sdr-infiniscale-iii-single-switch.txt").read_text()
    text = text.replace('"node1 HCA-1" lid 9', '"node2 mlx5_0" lid 9')
    cabling = _parse(text)
    assert cabling.hosts["node2"] == ("HCA-1", "mlx5_0")
    text = text.replace('"node2 mlx5_0" lid 9', '"node1 mlx5_0" lid 9')
    assert _parse(text).hosts["node2"] == ("mlx5_0",)


def test_check_passes_a_healthy_fat_tree_and_says_it_is_one(tmp_path: Path) -> None:
    path = WILD / "ompi-2009-sdr-infiniscale-iii-single-switch.txt"
    proc = railbench_inline(["check", "--profile", "lambda-1cc", "--topology", str(path), "--json"])
    said = [r for r in json.loads(proc.stdout)["cabling"]]
    assert [(r["status"], r["reason"]) for r in said] == [
        ("pass", "24 nodes on 1 leaves, 0 spines, not rail-optimised: cabled as a fat tree: no link below its peers")
    ]
