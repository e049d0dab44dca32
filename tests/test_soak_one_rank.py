"""A soak whose windows have nothing to fill them (one rank: no rail group, no world collective to repeat) still
comes one window every ``--window-s``, on a real rank (``bench.soak.rank.wait_out``).

Found on an H200: ``railbench soak --np 1 --backend nccl --hours 0.02`` read nvidia-smi and wrote a window ten
times a second, 622 windows in 72 s; a day's soak would have written about a million.
"""

from __future__ import annotations

import json
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
