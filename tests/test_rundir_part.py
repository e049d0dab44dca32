"""One address for what railbench names (``bench.rundir.part``): which node and rail a part covers, decided by its
fields, and the words that say where it is, made once for the rails test's, the intra-node matrix's and the
checks' lines."""

from __future__ import annotations

import pytest

from bench.rundir.finding_words import describe, describe_gpu
from bench.rundir.part import LocalGpu, Part
from bench.rundir.rails_records import Conviction, GpuDefect, NamedGpu, NamedPart, RailDefect

SLOW = Conviction(measured_Gbps=212.0, expected_Gbps=400.0, basis="line rate", symptom="slow", slow_pairs=7, pairs=7)


@pytest.mark.parametrize(
    ("part", "where"),
    [
        (Part(kind="link", node="node07", rail=3, device="mlx5_4"), "node07 rail 3 (mlx5_4)"),
        (Part(kind="rail", rail=3, device="mlx5_4"), "rail 3 (mlx5_4, every node)"),
        (Part(kind="node", node="node07"), "node07 (every rail)"),
        (Part(kind="pair", node="node02", peer="node05", rail=1), "node02-node05 rail 1"),
        (
            Part(kind="cable", node="node07", rail=3, device="mlx5_4", ports=("leaf-r3 port 7",)),
            "node07 rail 3 (cable node07 mlx5_4 <-> leaf-r3 port 7)",
        ),
        (Part(kind="leaf", rail=3, switches=("leaf-su1-r3",), unit="unit 1"), "leaf leaf-su1-r3 (rail 3, unit 1)"),
        (Part(kind="uplink", rail=3, switches=("a", "b")), "uplinks between a and b (rail 3)"),
        (Part(kind="spine", switches=("s1", "s2", "s3")), "spines s1..s3 (every rail, between units)"),
        (Part(kind="gpu", node="n3", gpu=LocalGpu(5, "0000:9a:00.0"), intra=True), "n3 GPU 5 (0000:9a:00.0)"),
        (Part(kind="gpu-pair", node="n3", gpu=LocalGpu(1), peer_gpu=LocalGpu(5), intra=True), "n3 GPU 1 - GPU 5"),
        (Part(kind="node", node="n3", intra=True), "n3 (every local pair)"),
    ],
)
def test_the_where_words_are_made_from_the_fields(part: Part, where: str) -> None:
    assert part.where == where


def test_a_part_covers_its_node_and_rail_from_its_fields() -> None:
    link = Part(kind="link", node="node07", rail=3)
    assert link.covers(node="node07") and link.covers(rail=3) and link.covers(node="node07", rail=3)
    assert not link.covers(node="node17") and not link.covers(rail=13)  # never by a name's prefix
    pair = Part(kind="pair", node="node02", peer="node05", rail=1)
    assert pair.covers(node="node05", rail=1) and not pair.covers(node="node0")
    assert Part(kind="node", node="node07").covers(node="node07", rail=6)  # every rail of its node
    assert Part(kind="spine").covers(rail=6) and not Part(kind="spine").covers(node="node07")


def test_the_lines_open_with_the_parts_where() -> None:
    link = RailDefect(
        named=NamedPart(kind="link", node="node07", rail=3, device="mlx5_4", conviction=SLOW), action="reseat"
    )
    assert describe(link) == (
        "node07 rail 3 (mlx5_4): 212 Gb/s = 53% of 400 Gb/s in 7/7 pairs → link fault; action: reseat"
    )
    gpu = GpuDefect(
        named=NamedGpu(
            kind="gpu",
            node="n3",
            gpu=5,
            bus_id="0000:9a:00.0",
            conviction=Conviction(measured_Gbps=120.0, expected_Gbps=480.0, basis="peers", symptom="slow"),
        ),
        action="",
    )
    assert describe_gpu(gpu).startswith(f"{gpu.address.where}: 120 Gb/s = 25% of peers' 480 Gb/s")
    assert gpu.part == "GPU 5 (0000:9a:00.0)"
