"""Fixtures shared by every test module."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import CORPUS, REPO, railbench
from tests.support.testbeds import SECOND_TESTBED, TESTBED

if TYPE_CHECKING:
    from xdist.remote import Producer
    from xdist.scheduler import LoadGroupScheduling
    from xdist.workermanage import WorkerController


def _reports_state() -> dict[str, float]:
    root = REPO / "reports"
    return (
        {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*") if p.is_file()} if root.is_dir() else {}
    )


GROUPS_FOLDER = "railbench_xdist_groups"
"""The key, in each xdist worker's input, of the folder where it writes every test's group for the controller."""
_GROUPS_FOLDER_KEY = pytest.StashKey[Path]()


def xdist_group_of(item: pytest.Item) -> str | None:
    """The tests that build the namespace testbed run in two groups, each on one worker, one test after another: the
    Slurm cluster's tests and the testbed modules that name :data:`SECOND_TESTBED` in one, the other testbed tests
    in the other. Each testbed is named by its test process's pid (its namespaces, its Slurm folder and munge
    socket), so the two groups' clusters never meet, and each group's module-scoped clusters are built once, not
    once per worker. xdist starts the biggest groups first, one a worker, and the unit, mpi and browser tests fill
    both workers after them; at most two clusters run at once, one a worker, each beside nothing heavier than the
    other worker: the rails tests' peer comparisons hold at load 9-13 (ci/loaded_rails.py). Which testbed modules
    join the Slurm worker is chosen by their run time only: with every other testbed test in one group, that group's
    tests took 1,280 s of a 1,420 s suite on the 2-core CI machine (``--durations=0``, load 16-20), the Slurm
    group's 449 s; with the soak's and the campaign's modules moved, 941 s and 788 s; on the same machine beside other
    work (load 7-15), 997 s and 704 s, the switch layer's one test the longest at 163 s; with its two runs two tests and
    its shaped uplink's (87-95 s) on the Slurm worker, 815 s and 751 s (load 6-14). The GPU tests time the node's GPUs:
    two at once would each measure half of them. A test may name its own group (``xdist_group``): tests that share a
    module fixture which runs their waits at once (tests/test_runtime_parent_deadlines.py)."""
    named = item.get_closest_marker("xdist_group")
    group = str(named.args[0]) if named is not None and named.args else None
    if item.get_closest_marker("slurm"):
        return SECOND_TESTBED
    if item.get_closest_marker("netns"):
        # A testbed test joins one of the two testbed workers and no third: at most two clusters at once.
        return SECOND_TESTBED if group == SECOND_TESTBED else TESTBED
    if item.get_closest_marker("gpu"):
        return "gpu"
    return group


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test's group, as an ``xdist_group`` mark and, on an xdist worker, in a file for the controller's
    scheduler (:func:`pytest_xdist_make_scheduler`): pytest 9.2 keeps a node's id in a new field, so xdist
    3.8's own way of passing the mark on (a suffix written into the old one) is lost and ``--dist=loadgroup``
    groups nothing (pytest-dev/pytest-xdist#1386): every testbed test ran on whichever worker was free."""
    groups = {item.nodeid: group for item in items if (group := xdist_group_of(item)) is not None}
    for item in items:
        if item.nodeid in groups:
            item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
    worker = getattr(config, "workerinput", {})
    if GROUPS_FOLDER in worker:
        (Path(worker[GROUPS_FOLDER]) / f"{worker['workerid']}.json").write_text(json.dumps(groups))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: WorkerController) -> None:
    """The controller gives every worker the one folder where workers write their tests' groups."""
    config = node.config
    if _GROUPS_FOLDER_KEY not in config.stash:
        config.stash[_GROUPS_FOLDER_KEY] = Path(tempfile.mkdtemp(prefix="railbench-xdist-groups-"))
    node.workerinput[GROUPS_FOLDER] = str(config.stash[_GROUPS_FOLDER_KEY])


def pytest_unconfigure(config: pytest.Config) -> None:
    if _GROUPS_FOLDER_KEY in config.stash:
        shutil.rmtree(config.stash[_GROUPS_FOLDER_KEY], ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``--numprocesses=auto``: one worker per core, and one more. Measured with every process a test starts charged
    to it (``ci/suite_cpu.py``, 2-core machine, 2026-11-28): the whole suite in 1,162 s with three workers, the
    machine 95% busy, against 1,217 s with two, 83% busy (their tests spent 9% less CPU, less contended, but waits on
    token buckets, soak windows and step timeouts left a core idle). ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides
    where it is set."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own reading of it
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores + 1


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> LoadGroupScheduling | None:
    """``--dist=loadgroup`` with each test's group read from what the workers wrote (every worker collects
    the same tests, so any one's file serves); a test none of them grouped is its own unit, as in xdist."""
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class WrittenGroups(LoadGroupScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None and _GROUPS_FOLDER_KEY in config.stash:
                # Read when the scheduling starts, once every worker has collected (and written).
                written = sorted(config.stash[_GROUPS_FOLDER_KEY].glob("*.json"))
                self.groups = json.loads(written[0].read_text()) if written else None
            group = (self.groups or {}).get(nodeid)
            return group if group is not None else super()._split_scope(nodeid)

    return WrittenGroups(config, log)


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
