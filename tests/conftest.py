"""Fixtures shared by every test module."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import CORPUS, REPO, railbench


def _reports_state() -> dict[str, float]:
    root = REPO / "reports"
    return (
        {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*") if p.is_file()} if root.is_dir() else {}
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that builds the namespace testbed (the Slurm ones too) runs on one xdist worker, one after
    another: two clusters at once would double the load on the rates those tests judge, and their module-scoped
    clusters are built once, not once per worker."""
    for item in items:
        if item.get_closest_marker("netns"):
            item.add_marker(pytest.mark.xdist_group("testbed"))
        elif item.get_closest_marker("gpu"):
            # The GPU tests time the node's GPUs: two at once would each measure half of them.
            item.add_marker(pytest.mark.xdist_group("gpu"))


@pytest.fixture(scope="session", autouse=True)
def reports_left_alone() -> Iterator[None]:
    """No test writes into the repository's reports/ (the user's history and the committed sample)."""
    before = _reports_state()
    yield
    after = _reports_state()
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"tests wrote into the repository's reports/: {changed[:5]}"


@pytest.fixture
def corpus() -> Path:
    """../shared/corpus, or a clean skip where it is absent (CI has shared/ beside the checkout)."""
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def accept_local_np4(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One ``accept --profile local --np 4`` with real ranks, read by every test that checks what accept writes
    (none of them writes into its run directory): the default sweep's sizes (``-b 8``, ``-f 2``, so 4 ranks give
    a 0-byte all_gather row) up to 16M, three timed iterations a size (what is checked does not depend on more).
    Returns the finished process and the run directory."""
    out = tmp_path_factory.mktemp("accept-local-np4") / "run"
    done = railbench(
        [
            "accept",
            "--profile",
            "local",
            "--np",
            "4",
            "-e",
            "16M",
            "-n",
            "3",
            "-w",
            "1",
            "--out",
            str(out),
            "--no-history",
        ],
        cwd=out.parent,
    )
    return done, out


@pytest.fixture(scope="session")
def one_host_rails(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One ``rails --np 2`` on this single host (the rails are skipped, honestly: one node), read by the tests
    of that skip and of the record it still writes. Returns the finished process and the run directory."""
    root = tmp_path_factory.mktemp("one-host-rails")
    out = root / "run"
    history = ["--history", str(root / "history.sqlite")]  # never the repository's reports/
    done = railbench(
        ["rails", "--np", "2", "--out", str(out), "--rail-bytes", "64K", "--pair-bytes", "64K", *history], cwd=root
    )
    return done, out


@pytest.fixture(scope="session")
def first_run_np2(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One short checked ``run --np 2 --cluster lab`` with neither --out nor --history, from a directory of its
    own, as a user's first run: the run directory goes under ./reports/runs/ and the run into
    ./reports/history.sqlite there. Returns the finished process and that working directory."""
    cwd = tmp_path_factory.mktemp("first-run-np2")
    done = railbench(
        ["run", "--np", "2", "-b", "1K", "-e", "4K", "-n", "2", "-w", "1", "-c", "--cluster", "lab"], cwd=cwd
    )
    return done, cwd
