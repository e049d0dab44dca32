"""The sweep's progress bar: drawn on the user's terminal only, never inside a table row.

Who owns the terminal decides where the bar is drawn:

- **a railbench parent** (``--np``): mpirun gives every rank a pseudo-terminal of its own, so a rank
  cannot know whether the user sees a terminal, and a bar it drew would reach the user only through
  mpirun's line-buffered pipes, glued to the next row. Rank 0 therefore writes one marker line per finished
  size (:data:`MARK`), and the parent, which relays the ranks' output line by line, turns the markers into
  a bar on its own terminal (:class:`Relay`), clearing it before every line it passes on;
- **the user's own launcher** (torchrun, srun, the per-node form): rank 0 draws the bar on its stderr
  when that is a terminal, and prints every table line through the bar, which clears itself first;
- otherwise (a pipe, a log file, CI): no bar at all.

tqdm draws the bar; it knows terminal widths and how to write a line above a live bar.
"""

from __future__ import annotations

import sys
import threading
from typing import Literal, TextIO

from tqdm import tqdm

MARK = "#@railbench-progress "
"""Prefix of the progress lines rank 0 writes for a railbench parent; the parent never shows them."""

Mode = Literal["bar", "marker", "off"]


def _bar(total: int, stream: TextIO) -> tqdm:
    return tqdm(
        total=total,
        file=stream,
        leave=False,
        dynamic_ncols=True,
        unit="size",
        bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}",
    )


class Progress:
    """Rank 0's table lines and bar; every table line goes through :meth:`line`."""

    def __init__(self, total: int, mode: Mode) -> None:
        self.total, self.done, self.mode = total, 0, mode
        self._bar = _bar(total, sys.stderr) if mode == "bar" else None

    def line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def advance(self, label: str) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.set_description_str(label, refresh=False)
            self._bar.update(1)
        elif self.mode == "marker":
            print(f"{MARK}{self.done} {self.total} {label}", flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class Relay:
    """The parent's side under ``--np``: rank output passed on line by line, markers drawn as a bar.

    Both of mpirun's streams are fed here from their own threads; one lock keeps a line and the bar from
    ever sharing a terminal row.
    """

    def __init__(self, out: TextIO, draw: bool) -> None:
        self.out, self.draw = out, draw
        self._bar: tqdm | None = None
        self._lock = threading.Lock()

    def feed(self, line: str, sink: TextIO | None = None) -> None:
        target = sink or self.out
        with self._lock:
            if line.startswith(MARK):
                self._advance(line[len(MARK) :].strip())
                return
            if self._bar is not None:
                self._bar.write(line.rstrip("\n"), file=target)
            else:
                target.write(line)
                target.flush()

    def _advance(self, mark: str) -> None:
        done_text, total_text, label = [*mark.split(" ", 2), "", ""][:3]
        if not (self.draw and done_text.isdigit() and total_text.isdigit()):
            return
        done, total = int(done_text), int(total_text)
        if self._bar is None:
            self._bar = _bar(total, sys.stderr)
        self._bar.set_description_str(label, refresh=False)
        self._bar.update(done - self._bar.n)
        if done >= total:
            self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        """Take the bar off the terminal (the ranks ended, finished or not)."""
        with self._lock:
            self._close()
