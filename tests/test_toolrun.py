"""Every tool railbench runs is bounded in time and output, and leaves nothing behind (bench/toolrun.py): real
processes, a tool that never stops writing, a wrapper whose child hangs, a tool that leaves a child running."""

from __future__ import annotations

import os
import resource
import threading
import time
from pathlib import Path

import pytest

from bench import toolrun


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for every purpose here; /proc says which
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" not in status.read_text()


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_a_tool_that_never_stops_writing_is_stopped_at_the_cap_with_memory_bounded() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    done = toolrun.run_tool(["yes"], timeout_s=30, max_bytes=1 << 20)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert done.over_cap and done.returncode is None and not done.timed_out and not done.ok
    assert len(done.stdout) == 1 << 20 and done.stdout.startswith(b"y\ny\n")
    assert grown_kib < 64 * 1024, f"rss grew by {grown_kib} KiB for a 1 MiB cap"
    assert done.why_not(30, 1 << 20) == "yes wrote over 1 MiB and was stopped"


def test_the_tail_of_a_long_log_is_kept_and_the_tool_runs_to_its_end() -> None:
    done = toolrun.run_tool(["seq", "1", "200000"], timeout_s=30, max_bytes=1000, keep="tail")
    assert done.ok and done.over_cap and len(done.stdout) == 1000
    assert done.stdout.endswith(b"199999\n200000\n")


def test_a_wrappers_hung_child_dies_with_it_at_the_deadline(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # The wrapper waits on its child, as a vendor's nvidia-smi wrapper does; the child never answers.
    wrapper = _script(tmp_path, "nvidia-smi", f"sleep 300 &\necho $! > {pidfile}\nwait\n")
    started = time.monotonic()
    done = toolrun.run_tool([str(wrapper), "-q", "-x"], timeout_s=1.0, max_bytes=1 << 20)
    assert done.timed_out and done.returncode is None and time.monotonic() - started < 10
    assert done.why_not(1.0, 1 << 20) == f"{wrapper} -q -x gave no answer in 1 s"
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the wrapper's child outlived railbench's call"


def test_a_child_left_running_by_a_tool_that_answered_is_ended(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    tool = _script(
        tmp_path, "sinfo", f"(exec sleep 300 >/dev/null 2>&1 </dev/null) &\necho $! > {pidfile}\necho node01\n"
    )
    done = toolrun.run_tool([str(tool)], timeout_s=10, max_bytes=1 << 20)
    assert done.ok and done.stdout == b"node01\n"
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_a_failure_says_the_tools_own_first_line(tmp_path: Path) -> None:
    # nvidia-smi's own words on a node whose GPU has fallen off the bus (NVIDIA developer forums, many threads)
    said = "Unable to determine the device handle for GPU0000:1B:00.0: Unknown Error"
    tool = _script(tmp_path, "nvidia-smi", f"echo '{said}'\nexit 255\n")
    done = toolrun.run_tool([str(tool), "-q", "-x"], timeout_s=10, max_bytes=1 << 20)
    assert not done.ok and done.returncode == 255
    assert done.why_not(10, 1 << 20) == f"{tool} -q -x failed ({said})"


def test_a_missing_tool_is_its_own_error(tmp_path: Path) -> None:
    with pytest.raises(toolrun.ToolMissing):
        toolrun.run_tool([str(tmp_path / "absent")], timeout_s=5, max_bytes=100)


def test_stop_all_ends_a_tool_another_thread_waits_on(tmp_path: Path) -> None:
    """railbench health's time limit: the check thread it abandons may be waiting on a hung tool."""
    tool = _script(tmp_path, "nvidia-smi", "exec sleep 300\n")
    answers: list[toolrun.ToolRun] = []
    waiter = threading.Thread(target=lambda: answers.append(toolrun.run_tool([str(tool)], 300, 100)))
    waiter.start()
    deadline = time.monotonic() + 10
    while not toolrun.stop_all() and time.monotonic() < deadline:
        time.sleep(0.05)
    waiter.join(20)
    assert not waiter.is_alive() and answers and answers[0].returncode == -9
