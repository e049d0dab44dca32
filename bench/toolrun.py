"""The one way railbench runs another tool (nvidia-smi, ibv_devinfo, journalctl, sinfo, scontrol): bounded in
time and in output, in a process group of its own that is gone when the call returns.

``subprocess.run(capture_output=True, timeout=...)`` is not bounded in either: it reads the whole output before
anything caps it (sinfo printing a gigabyte costs three of memory), and its timeout kills only the process it
started, so the child of a wrapper script (``nvidia-smi`` is one on some images) keeps running, holding the pipe
and the GPU. Here the tool starts in a new session; its output is read as it comes, at most ``max_bytes`` kept
(the head, and the tool stopped once it has written more; or the tail, for a log read newest last); and the
whole process group is killed at the deadline, at the cap and when the tool ends, so nothing it started
outlives the call. :func:`stop_all` ends every tool still running, for ``railbench health``'s own time limit.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

READ_CHUNK = 65536
STDERR_BYTES = 65536
"""What is kept of a tool's stderr: its first lines say why it failed."""

_running: set[int] = set()
_lock = threading.Lock()


@dataclass(frozen=True)
class ToolRun:
    """What one tool did within its bounds."""

    argv: tuple[str, ...]
    stdout: bytes
    stderr: bytes
    returncode: int | None
    """None when the tool was stopped (its deadline or its output cap)."""
    timed_out: bool = False
    over_cap: bool = False
    """It wrote more than the cap (``keep="head"``: it was stopped there)."""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not (self.over_cap and self.returncode is None)

    def first_line(self) -> str:
        """The first line the tool said about itself (stderr first, then stdout), at most 200 characters."""
        for data in (self.stderr, self.stdout):
            for line in data.decode("utf-8", errors="replace").splitlines():
                if line.strip():
                    return line.strip()[:200]
        return ""

    def why_not(self, timeout_s: float, max_bytes: int) -> str:
        """Why it gave no usable output, in words (empty when :attr:`ok`)."""
        shown = " ".join(self.argv)
        if self.timed_out:
            return f"{shown} gave no answer in {timeout_s:g} s"
        if self.over_cap and self.returncode is None:
            return f"{shown} wrote over {max_bytes >> 20 or 1} MiB and was stopped"
        if self.returncode != 0:
            said = self.first_line()
            return f"{shown} failed ({said if said else f'exit status {self.returncode}'})"
        return ""


class ToolMissing(OSError):
    """The tool could not be started (not found, not executable)."""


def run_tool(
    argv: Sequence[str],
    timeout_s: float,
    max_bytes: int,
    *,
    keep: Literal["head", "tail"] = "head",
    env: Mapping[str, str] | None = None,
) -> ToolRun:
    """Run ``argv`` with no input, at most ``timeout_s`` seconds, keeping at most ``max_bytes`` of its stdout.
    Raises :class:`ToolMissing` when it cannot be started; everything else is in the :class:`ToolRun`."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=dict(env) if env is not None else None,
        )
    except OSError as exc:
        raise ToolMissing(exc.errno, exc.strerror or str(exc)) from None
    with _lock:
        _running.add(proc.pid)
    try:
        out, err, timed_out, over_cap = _read(proc, time.monotonic() + timeout_s, max_bytes, keep)
    finally:
        _kill_group(proc.pid)
        with _lock:
            _running.discard(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    stopped = timed_out or (over_cap and keep == "head")
    return ToolRun(tuple(argv), out, err, None if stopped else proc.returncode, timed_out, over_cap)


def _read(
    proc: subprocess.Popen[bytes], deadline: float, max_bytes: int, keep: Literal["head", "tail"]
) -> tuple[bytes, bytes, bool, bool]:
    assert proc.stdout is not None and proc.stderr is not None
    out, err = bytearray(), bytearray()
    over_cap = False
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        open_streams = 2
        while open_streams:
            left = deadline - time.monotonic()
            if left <= 0:
                return bytes(out), bytes(err), True, over_cap
            for key, _ in sel.select(timeout=min(left, 1.0)):
                chunk = os.read(key.fd, READ_CHUNK)
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                buf: bytearray = key.data
                if buf is err:
                    buf += chunk[: max(0, STDERR_BYTES - len(buf))]
                    continue
                buf += chunk
                if len(buf) > max_bytes:
                    over_cap = True
                    if keep == "head":
                        del buf[max_bytes:]
                        return bytes(out), bytes(err), False, True
                    del buf[: len(buf) - max_bytes]
    # Both pipes closed: the tool (and anything holding its pipes) is done; its status follows at once.
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return bytes(out), bytes(err), True, over_cap
    return bytes(out), bytes(err), False, over_cap


def _kill_group(pid: int) -> None:
    """SIGKILL the tool's process group: the tool, and whatever it started that is still in it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def stop_all() -> int:
    """Kill every tool railbench is running now (their process groups); how many there were."""
    with _lock:
        pids = list(_running)
    for pid in pids:
        _kill_group(pid)
    return len(pids)
