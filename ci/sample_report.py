"""Regenerate the sample report under ``reports/sample/`` (linked from the README).

    python ci/sample_report.py RUN_DIR      # from a real run directory (e.g. a CPU `railbench run`)
    python ci/sample_report.py              # from the synthetic 8-node run directory in tests/report_data.py

Either way the report is drawn by ``railbench report RUN_DIR --out reports/sample``, the same command users
run. ``reports/sample/bars.png`` keeps the ResNet-50-style bar chart for the README: it is refreshed from
the first bar chart the run has, and left as it is when the run has none (a single-node CPU run).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.report_data import ClusterModel, write_run_dir  # noqa: E402
from tests.support import rank_env  # noqa: E402

SAMPLE = REPO / "reports" / "sample"
BAR_CHARTS = ("rails", "nodes", "rail-", "node-")


def synthetic_run_dir(root: Path) -> Path:
    """An 8-node Lambda 1CC-like run with one degraded HCA (node 06, rail 3)."""
    hosts = tuple(f"lambda-1cc-node-{i:02d}" for i in range(1, 9))
    model = ClusterModel(hosts=hosts, bad=(hosts[5], 3), bad_fraction=0.55, cluster="lambda-1cc-sample")
    return write_run_dir(root / "run", model)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", type=Path, help="run directory (default: build a synthetic one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="railbench-sample-") as scratch:
        run_dir = args.run_dir or synthetic_run_dir(Path(scratch))
        cmd = [sys.executable, "-m", "bench", "report", str(run_dir), "--out", str(SAMPLE)]
        proc = subprocess.run(cmd, cwd=REPO, env=rank_env(), check=False)
        if proc.returncode != 0:
            return proc.returncode
    charts = sorted((SAMPLE / "charts").glob("*.png"))
    for prefix in BAR_CHARTS:
        match = [p for p in charts if p.stem == prefix or (prefix.endswith("-") and p.stem.startswith(prefix))]
        if match:
            shutil.copyfile(match[0], SAMPLE / "bars.png")
            print(f"bars.png <- {match[0].relative_to(REPO)}")
            break
    else:
        print("this run has no bar chart: reports/sample/bars.png left as it was")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
