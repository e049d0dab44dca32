"""A soak on one real rank: a window with nothing to fill it (no rail group, no world collective to repeat) still
lasts ``--window-s``, and ``--resume`` refuses an allocation other than the first start's.

A soak whose windows have nothing to fill them (one rank: no rail group, no world collective to repeat) still
comes one window every ``--window-s``, on a real rank (``bench.soak.rank.wait_out``).

Found on an H200: ``railbench soak --np 1 --backend nccl --hours 0.02`` read nvidia-smi and wrote a window ten
times a second, 622 windows in 72 s; a day's soak would have written about a million.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.support import railbench

pytestmark = [pytest.mark.mpi, pytest.mark.slow]

WINDOW_S = 2.0
SOAK_S = 5.4
"""Room for two whole windows and a short remainder, in which no third window fits."""


def test_an_empty_window_lasts_its_length(tmp_path: Path) -> None:
    out = tmp_path / "soak"
    argv = ["soak", "--np", "1", "--hours", str(SOAK_S / 3600), "--window-s", str(WINDOW_S), "--out", str(out)]
    done = railbench([*argv, "--no-history"], timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    windows = [json.loads(line) for line in (out / "windows.jsonl").read_text().splitlines()]
    assert len(windows) == 2, [w["start_s"] for w in windows]
    assert windows[1]["start_s"] - windows[0]["start_s"] >= WINDOW_S
    soak = json.loads((out / "run.json").read_text())["soak"]
    assert soak["windows"] == 2 and soak["stopped"] is None


def test_a_resume_on_other_nodes_is_refused_and_keeps_the_soak(tmp_path: Path) -> None:
    """``--resume`` goes on only with the nodes and ranks per node the soak started with (``check_same_allocation``,
    on rank 0 before run.json is written again): here the first start's run.json says another host ran it, and its
    deadline is an hour away. Exit 2 and one line naming both allocations; the run directory is left as it was."""
    out = tmp_path / "soak"
    argv = ["soak", "--np", "1", "--no-history"]
    first = railbench([*argv, "--hours", str(WINDOW_S / 3600), "--window-s", str(WINDOW_S), "--out", str(out)])
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    doc = json.loads((out / "run.json").read_text())
    doc["soak"]["deadline_utc"] = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat(timespec="seconds")
    doc["hosts"], doc["ranks"][0]["host"] = ["node-gone"], "node-gone"
    (out / "run.json").write_text(json.dumps(doc))
    kept = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    done = railbench([*argv, "--resume", str(out)], timeout=120)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    said = [line for line in done.stderr.splitlines() if line.startswith("railbench: ")]
    assert len(said) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "started on 1 node x 1 rank" in said[0] and "node-gone missing" in said[0], said
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == kept
