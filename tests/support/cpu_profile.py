"""A pytest plugin that charges every test the CPU time of everything its process started, ranks included.

``ci/suite_cpu.py`` loads it (``-p tests.support.cpu_profile``) to show where the suite's CPU goes. The suite is
CPU-bound on the 2-core CI machine (95% busy over a whole run), so its wall time falls only with the CPU it spends,
and a test's wall time says little of that: a testbed test waits on its shaped links while the other workers run.
``getrusage(RUSAGE_CHILDREN)`` misses most of it too: the ranks under mpirun run in the testbed's namespaces below
``prted``, and a Slurm daemon a fixture started is reaped by no test. So each pytest process (the controller and
every xdist worker) moves itself into a cgroup of its own, which every process it starts inherits whatever namespace
it enters, and each test is charged the cgroup's CPU over its setup, call and teardown.

A module fixture's set-up is charged to the first test that needs it: read the totals per file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

OUT_VAR = "RAILBENCH_CPU_PROFILE_DIR"
"""The folder each pytest process writes its ``<pid>.jsonl`` of tests to; the cgroups' parent comes with it."""
CGROUP_VAR = "RAILBENCH_CPU_PROFILE_CGROUP"
"""The cgroup folder under which each pytest process makes its own (cgroup v1 cpuacct, or v2 with cpu.stat)."""


def _usage_s(group: Path) -> float:
    """CPU seconds the cgroup's processes spent, from cgroup v1's cpuacct.usage or v2's cpu.stat."""
    v1 = group / "cpuacct.usage"
    if v1.is_file():
        return int(v1.read_text()) / 1e9
    for line in (group / "cpu.stat").read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    raise OSError(f"{group} has neither cpuacct.usage nor usage_usec in cpu.stat")


_GROUP = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    parent = os.environ.get(CGROUP_VAR)
    if not parent or not os.environ.get(OUT_VAR):
        return
    group = Path(parent) / f"pytest-{os.getpid()}"
    group.mkdir(exist_ok=True)
    (group / "cgroup.procs").write_text(str(os.getpid()))
    config.stash[_GROUP] = group


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    group = item.config.stash.get(_GROUP, None)
    if group is None:
        yield
        return
    cpu, wall = _usage_s(group), time.monotonic()
    yield
    row = {"test": item.nodeid, "cpu_s": _usage_s(group) - cpu, "wall_s": time.monotonic() - wall}
    with (Path(os.environ[OUT_VAR]) / f"{os.getpid()}.jsonl").open("a") as out:
        out.write(json.dumps(row) + "\n")
