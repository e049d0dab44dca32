"""Synthetic soak windows for the judges' tests (``bench.soak.judge``): every (node, rail) link of a few nodes at
the line rate with noise, and a fault planted in one link's line of one window."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.frame.decide import Item
from bench.profile.cluster import Profile, load_profile
from bench.rundir.findings import Finding
from bench.rundir.soak_windows import LinkWindow, SoakWindow
from bench.soak.judge import soak_items

NODES = tuple(f"node{i:02d}" for i in range(4))
RAILS = 8
RATE = 400.0
WINDOW_S = 600.0
PROFILE = load_profile("lambda-1cc")


def link(node: str, rail: int, busbw: float | None = RATE, **kw: object) -> LinkWindow:
    return LinkWindow(node, rail, device=f"mlx5_{rail}:1", busbw_Gbps=busbw, cells=3, **kw)  # type: ignore[arg-type]


def window(index: int, links: Sequence[LinkWindow], **kw: object) -> SoakWindow:
    return SoakWindow(index, index * WINDOW_S, (index + 1) * WINDOW_S, links=tuple(links), **kw)  # type: ignore[arg-type]


def clean(n: int, seed: int = 0, heavy: bool = False, nodes: Sequence[str] = NODES) -> list[SoakWindow]:
    """n windows of every link at the line rate with 2% noise: normal, or Student's t with 2 degrees of freedom
    (infinite variance: heavier tails than any measurement's, the hardest case for the judges)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        noise = rng.standard_t(2, len(nodes) * RAILS) if heavy else rng.normal(size=len(nodes) * RAILS)
        rates = RATE * (1 + 0.02 * noise)
        cells = [(node, rail) for node in nodes for rail in range(RAILS)]
        out.append(window(i, [link(node, rail, float(r)) for (node, rail), r in zip(cells, rates, strict=True)]))
    return out


def planted(windows: list[SoakWindow], index: int, node: str, rail: int, **kw: object) -> list[SoakWindow]:
    """``windows`` with (node, rail)'s line of window ``index`` given ``kw``."""
    w = windows[index]
    (old,) = [lw for lw in w.links if (lw.node, lw.rail) == (node, rail)]
    said = {"busbw": old.busbw_Gbps, **kw}
    links = [link(node, rail, **said) if (lw.node, lw.rail) == (node, rail) else lw for lw in w.links]  # type: ignore[arg-type]
    return [*windows[:index], window(index, links, gpus=w.gpus, collectives=w.collectives), *windows[index + 1 :]]


def items_by_name(windows: Sequence[SoakWindow], profile: Profile = PROFILE) -> dict[str, Item]:
    return {i.name: i for i in soak_items(windows, profile)}


def only(findings: Sequence[Finding], record: type) -> list[Finding]:
    return [f for f in findings if isinstance(f.evidence, record)]
