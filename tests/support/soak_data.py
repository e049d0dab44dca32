"""Soak run directories for the outputs' tests: windows.jsonl through ``append_window`` and run.json as
``tests.support.report_data`` writes it, with the ``soak`` section, its findings and one item per gate as
railbench's own judges decide them over the windows.

The model follows the faults issue 46 names (a cable that flaps now and then, a port whose symbol errors rise
in one window, a link that slows): the rates are those of ``report_data``'s NDR rail (~384 Gb/s of pair
traffic), and a window's own judgement names a link where it flapped or ran below half of that, as the rails
judge's per-window conviction would. Pure functions make the records; ``write_soak_dir`` puts them on disk.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import codec
from bench.frame.decide import Item, decide, item_entries
from bench.profile.cluster import load_profile
from bench.rundir.part import Part
from bench.rundir.soak_windows import (
    CollectiveWindow,
    GpuWindow,
    LinkWindow,
    NamedInWindow,
    SoakSection,
    SoakWindow,
    append_window,
)
from bench.soak.judge import kept_findings, soak_items
from tests.support.report_data import ClusterModel, device, run_json, write_run_dir

LINK_GBPS = 384.0
"""A healthy NDR rail's pair rate (report_data's model)."""
PROFILE = load_profile("lambda-1cc")
WORLD_GBPS = 2968.0
"""all_reduce at 1G on 4 x 8 H100s: 371 GB/s of busbw (report_data's world curve), in Gb/s."""


@dataclass(frozen=True)
class SoakModel:
    """A soak of ``windows`` windows of ``window_s`` seconds, and where it is broken."""

    hosts: tuple[str, ...] = ("gpu-node-01", "gpu-node-02", "gpu-node-03", "gpu-node-04")
    rails: int = 8
    windows: int = 9
    window_s: float = 60.0
    flapping: tuple[str, int] | None = ("gpu-node-02", 3)
    """(node, rail) whose cable flaps in every third window (windows 1, 4, 7...)."""
    rising: tuple[str, int, int] | None = ("gpu-node-04", 6, 5)
    """(node, rail, window): its port's symbol_error rises by 12 in that window only."""
    gpus: bool = False
    """Whether the windows read the GPUs' state."""
    stopped: str | None = None
    resumed: tuple[int, ...] = ()


def _link(model: SoakModel, index: int, node: str, rail: int) -> LinkWindow:
    flaps = 1 if model.flapping == (node, rail) and index % 3 == 1 else 0
    errors = {"symbol_error": 12} if model.rising == (node, rail, index) else {}
    # a flapping cable's window runs at a third of its rate: the pairs stall while the link retrains
    wobble = 1.0 + 0.004 * math.sin(index * 1.3 + rail)
    rate = LINK_GBPS * wobble / (3.0 if flaps else 1.0)
    return LinkWindow(node, rail, device(rail) + ":1", round(rate, 2), 3, named=bool(flaps), errors=errors, flaps=flaps)


def window(model: SoakModel, index: int) -> SoakWindow:
    """Window ``index`` of the model."""
    links = tuple(_link(model, index, node, rail) for node in model.hosts for rail in range(model.rails))
    named = tuple(
        NamedInWindow(Part(kind="link", node=link.node, rail=link.rail, device=link.device), "flaky")
        for link in links
        if link.named
    )
    gpus = (
        tuple(GpuWindow(node, g, sm_clock_MHz=1980.0, temperature_C=61.0) for node in model.hosts for g in range(2))
        if model.gpus
        else ()
    )
    start = index * model.window_s
    return SoakWindow(
        index=index,
        start_s=start,
        end_s=start + model.window_s - 0.5,
        rounds=(index % 3,),
        links=links,
        collectives=(CollectiveWindow("all_reduce", 1 << 30, WORLD_GBPS * (1.0 + 0.003 * math.cos(index)), 3200.0),),
        gpus=gpus,
        named=named,
    )


def judged(model: SoakModel) -> list[Item]:
    """The soak's gates over the model's windows, by railbench's own judges (``bench.soak.judge``), with the
    lambda-1cc profile's limits: what the soak's verdict writes."""
    return soak_items((window(model, index) for index in range(model.windows)), PROFILE)


def soak_run_json(model: SoakModel) -> dict[str, Any]:
    """run.json of a finished soak: its items, verdict and ``soak.findings`` as the soak job writes them."""
    run = run_json(ClusterModel(hosts=model.hosts, bad=None, intra_node=False), command="soak")
    for key in ("accept", "plan", "rails_test"):
        run.pop(key, None)
    items = judged(model)
    verdict = decide(items)
    planned = model.windows * model.window_s * (1 if model.stopped is None else 2)
    section = SoakSection(
        planned_s=planned,
        window_s=model.window_s,
        cover_every=3,
        windows=model.windows,
        elapsed_s=model.windows * model.window_s,
        resumed=model.resumed,
        stopped=model.stopped,
        findings=kept_findings(items),
    )
    run.update(
        verdict=verdict.word,
        exit_status=verdict.exit_status,
        reasons=list(verdict.reasons),
        items=codec.encode(item_entries(items)),
        soak=codec.encode(section),
    )
    return run


def write_soak_dir(path: Path, model: SoakModel | None = None) -> Path:
    """A soak's run directory at ``path``: run.json, an empty results.csv and ``model.windows`` windows."""
    model = model or SoakModel()
    write_run_dir(path, rails=False, checks=False, trend=False, rows=[])
    (path / "run.json").write_text(json.dumps(soak_run_json(model), indent=2) + "\n", encoding="utf-8")
    for index in range(model.windows):
        append_window(path, window(model, index))
    return path
