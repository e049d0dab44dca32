"""Regenerate the sample report under ``reports/sample/`` (linked from docs/reports.md).

    python ci/sample_report.py --update-sample --testbed  # a real `railbench accept` on the namespace cluster
    python ci/sample_report.py --update-sample RUN_DIR    # from a real run directory (e.g. a CPU `railbench run`)
    python ci/sample_report.py --update-sample reports/sample/run  # the committed run, drawn by today's renderer
    python ci/sample_report.py --update-sample            # the synthetic 8-node run (tests/support/report_data.py)
    python ci/sample_report.py --out DIR                  # draw it elsewhere; the committed sample is left alone
    python ci/sample_report.py --nodes 64 --out DIR       # a synthetic 64-node x 8-rail acceptance run
    python ci/sample_report.py --tiny                     # the sample drawn into a temporary folder (CI)

Without ``--update-sample`` or ``--out`` it refuses: the committed sample is only rewritten when asked.

``--testbed`` builds the 4-node x 2-rail network-namespace cluster of the tests, slows node03's rail 1 to
300 Mbit/s with tc, runs ``railbench accept`` across it for real (gloo on CPU), and draws that run. veth
rails have no line rate, so the sample treats them as 0.5 Gb/s links (``--rail-rate-gbps 0.5``): every healthy
rail clears that, the shaped one does not.

Either way the run's inputs (run.json, results.csv, rails.json, checks.json, ...) are kept in
``reports/sample/run/`` and the report is drawn from them by ``railbench report reports/sample/run --out
reports/sample``, the same command users run. ``tests/test_report_sample.py`` draws them again with the current
renderer and fails when the committed pages differ: the sample cannot go stale unseen.
``reports/sample/bars.png`` keeps the ResNet-50-style bar chart for docs/reports.md: it is refreshed from the
first bar chart the run has, and left as it is when the run has none (a single-node CPU run).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import rank_env  # noqa: E402
from tests.support.report_data import ClusterModel, write_run_dir  # noqa: E402

SAMPLE = REPO / "reports" / "sample"
REPORT_INPUTS = ("run.json", "results.csv", "rails.json", "checks.json", "compare.json", "trend.csv")
"""What ``railbench report`` reads from a run directory (``bench.report.inputs``, ``bench.report.badge``)."""
BAR_CHARTS = ("nodes", "rails", "rail-", "node-")


def synthetic_run_dir(root: Path, nodes: int = 8) -> Path:
    """A Lambda 1CC-like run with one degraded HCA (node 06, rail 3); from 16 nodes on also a slow GPU, a
    transient pair and a node whose rail firmware differs (the 64-node certificate of the report tests)."""
    hosts = tuple(f"lambda-1cc-node-{i:02d}" for i in range(1, nodes + 1))
    more: dict[str, Any] = {}
    if nodes >= 16:
        firmware = "mlx5_4 runs 28.36.1010, the other rails 28.39.1002"
        more = {
            "bad_gpu": (hosts[nodes * 5 // 8], 5),
            "transient": (hosts[2], hosts[9], 6),
            "failed_check": (hosts[nodes * 13 // 16], "rail-firmware", firmware),
            "min_bytes": 8,
            "max_bytes": 1 << 34,
        }
    model = ClusterModel(hosts=hosts, bad=(hosts[5], 3), bad_fraction=0.55, cluster=f"lambda-1cc-{nodes}", **more)
    return write_run_dir(root / "run", model, trend=nodes < 16)


def testbed_run_dir(root: Path) -> Path:
    """A real `railbench accept` on the namespace cluster with one shaped link (node03, rail 1).

    accept runs the preflight checks on every node, the world sweep and the rails test in one set of ranks,
    so the sample shows every section of the acceptance certificate.
    """
    from tests.support.testbeds.netns_testbed import PROFILE, build_cluster

    out = root / "run"
    with build_cluster(nodes=4, rails=2) as bed:
        (bed.workdir / "netns.toml").write_text(PROFILE)
        bed.shape("node03", 1, 300)
        done = bed.run(
            2,
            [
                sys.executable,
                "-m",
                "bench",
                "accept",
                "--profile",
                str(bed.workdir / "netns.toml"),
                "--out",
                str(out),
                "--cluster",
                "netns-testbed",
                "--no-history",
                "--timeout",
                "90",
                "-b",
                "1K",
                "-e",
                "4M",
                "--rail-rate-gbps",
                "0.5",
            ],
            timeout=400,
        )
        print(done.stdout)
        if done.returncode not in (0, 1):  # 1: the shaped link fails acceptance, as it should
            print(done.stderr, file=sys.stderr)
            raise SystemExit(f"accept on the testbed exited {done.returncode}")
    return out


def screenshot(page: Path, png: Path, height: int = 2600) -> None:
    """The top ``height`` px of ``page`` at 1280 px wide as headless Chromium draws it (Debian's chromium; no
    browser download)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print(f"no chromium: {png} left as it was")
        return
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--window-size=1280,{height}",
        "--virtual-time-budget=5000",
        f"--screenshot={png}",
    ]
    subprocess.run([browser, *flags, page.resolve().as_uri()], check=True, capture_output=True, timeout=120)
    print(f"{png.name} <- {page}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", type=Path, help="run directory (default: build a synthetic one)")
    parser.add_argument("--testbed", action="store_true", help="measure a real run on the namespace cluster")
    parser.add_argument("--nodes", type=int, default=8, help="nodes of the synthetic run (default: 8)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--update-sample", action="store_true", help="overwrite the committed reports/sample/")
    where.add_argument("--out", type=Path, help="draw the sample into DIR instead")
    where.add_argument("--tiny", action="store_true", help="the 8-node sample into a temporary folder, no screenshots")
    args = parser.parse_args()
    if args.tiny:
        with tempfile.TemporaryDirectory(prefix="railbench-sample-tiny-") as scratch:
            return draw(args.run_dir, Path(scratch) / "sample", testbed=args.testbed, nodes=8, shots=False)
    if not args.update_sample and args.out is None:
        parser.error("pass --update-sample to overwrite the committed reports/sample/, or --out DIR")
    sample = SAMPLE if args.update_sample else args.out
    return draw(args.run_dir, sample, testbed=args.testbed, nodes=args.nodes, shots=True, first=not args.update_sample)


def keep_inputs(run_dir: Path, inputs: Path) -> None:
    """The files ``railbench report`` reads from ``run_dir``, copied into ``inputs`` (emptied first), so the
    sample can be drawn again from them by any later renderer (``tests/test_report_sample.py`` does)."""
    if inputs.exists():
        shutil.rmtree(inputs)
    inputs.mkdir(parents=True)
    for name in REPORT_INPUTS:
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, inputs / name)


def draw(run_dir: Path | None, sample: Path, *, testbed: bool, nodes: int, shots: bool, first: bool = True) -> int:
    """Draw the sample into ``sample`` from ``run_dir``, the testbed or a synthetic run of ``nodes`` nodes (its
    inputs kept in ``sample/run``; ``run_dir`` may be that folder itself, to draw the committed run again);
    with ``shots`` the certificate's screenshots too (and the first screen, unless the committed sample is
    drawn)."""
    inputs = sample / "run"
    with tempfile.TemporaryDirectory(prefix="railbench-sample-") as scratch:
        scratch_dir = Path(scratch)
        source = testbed_run_dir(scratch_dir) if testbed else run_dir or synthetic_run_dir(scratch_dir, nodes)
        if not inputs.exists() or source.resolve() != inputs.resolve():
            keep_inputs(source, inputs)
        cmd = [sys.executable, "-m", "bench", "report", str(inputs), "--out", str(sample)]
        proc = subprocess.run(cmd, cwd=REPO, env=rank_env(), check=False)
        if proc.returncode != 0:
            return proc.returncode
    charts = sorted((sample / "charts").glob("*.png"))
    for prefix in BAR_CHARTS:
        match = [p for p in charts if p.stem == prefix or (prefix.endswith("-") and p.stem.startswith(prefix))]
        if match:
            shutil.copyfile(match[0], sample / "bars.png")
            print(f"bars.png <- {match[0]}")
            break
    else:
        print(f"this run has no bar chart: {sample / 'bars.png'} left as it was")
    if shots:
        screenshot(sample / "report.html", sample / "certificate.png")
    if shots and first:  # what a laptop shows first: the summary must be all there
        screenshot(sample / "report.html", sample / "first-screen.png", height=800)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
