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

tqdm draws the bar; it knows terminal widths and how to write a line above a live bar. The bar says how long
the sweep has run and about how long it has left (:class:`Eta`); on a terminal that reports no width it
is drawn at a fixed width rather than not at all.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Literal, TextIO

from tqdm import tqdm

from bench.bounded import ascii_digits

MARK = "#@railbench-progress "
"""Prefix of the progress lines rank 0 writes for a railbench parent; the parent never shows them.
A marker reads ``DONE TOTAL ELAPSED_S LEFT_S LABEL`` (``LEFT_S`` is ``-`` while no estimate exists)."""

Mode = Literal["bar", "marker", "off"]
FALLBACK_SIZE = (80, 24)
"""The bar's terminal (columns, rows) when the terminal reports no size (0 x 0, as some serial consoles and
container terminals do): tqdm draws nothing at all in a terminal of 0 rows."""


def _sized(stream: TextIO) -> bool:
    """Whether the stream is a terminal that reports a size of its own."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return size.columns > 0 and size.lines > 0


def _bar(total: int, stream: TextIO) -> tqdm:
    known = _sized(stream)
    return tqdm(
        total=total,
        file=stream,
        leave=False,
        dynamic_ncols=known,
        ncols=None if known else FALLBACK_SIZE[0],
        nrows=None if known else FALLBACK_SIZE[1],
        unit="size",
        bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{postfix}",
    )


def clock(seconds: float) -> str:
    """``0:42``, ``12:05``, ``1:02:05``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def times_text(elapsed_s: float, left_s: float | None) -> str:
    """What the bar says after its count: ``2:31 elapsed, about 4:10 left``."""
    left = f", about {clock(left_s)} left" if left_s is not None else ""
    return f"{clock(elapsed_s)} elapsed{left}"


class Eta:
    """Time left in a sweep whose steps grow in size: each step is modelled as ``a + b x bytes`` (a per-call
    latency plus bytes over a bandwidth), fitted by least squares to the steps done so far.

    Counting steps alone would be wrong by orders of magnitude: the sizes double, so the last few steps of a
    16 GiB sweep take nearly all of its time.
    """

    def __init__(self, step_bytes: Sequence[int]) -> None:
        self.step_bytes = [float(b) for b in step_bytes]
        self.times: list[float] = []

    def step_done(self, seconds: float) -> None:
        """One more step took ``seconds``."""
        self.times.append(max(0.0, seconds))

    def left(self) -> float | None:
        """Seconds the remaining steps should take; None before the first step is done."""
        done = len(self.times)
        if done == 0 or done > len(self.step_bytes):
            return None if done == 0 else 0.0
        x, t = self.step_bytes[:done], self.times
        mean_x, mean_t = sum(x) / done, sum(t) / done
        spread = sum((xi - mean_x) ** 2 for xi in x)
        if spread == 0.0:  # one step, or steps all of one size: each remaining step takes the mean so far
            slope, latency = 0.0, mean_t
        else:
            slope = sum((xi - mean_x) * (ti - mean_t) for xi, ti in zip(x, t, strict=True)) / spread
            latency = mean_t - slope * mean_x
            if slope < 0.0:  # noise at small sizes: no bandwidth term can be read yet
                slope, latency = 0.0, mean_t
            elif latency < 0.0:  # a line through the origin: bytes over bandwidth alone
                latency = 0.0
                slope = sum(xi * ti for xi, ti in zip(x, t, strict=True)) / sum(xi * xi for xi in x)
        return sum(latency + slope * xi for xi in self.step_bytes[done:])


class Progress:
    """Rank 0's table lines and bar; every table line goes through :meth:`line`.

    ``step_bytes`` is the message size of every step in order (collective by collective), for the time left.
    """

    def __init__(self, step_bytes: Sequence[int], mode: Mode) -> None:
        self.total, self.done, self.mode = len(step_bytes), 0, mode
        self._eta = Eta(step_bytes)
        self._started = self._last = time.monotonic()
        self._bar = _bar(self.total, sys.stderr) if mode == "bar" else None

    def line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def advance(self, label: str) -> None:
        now = time.monotonic()
        self.done += 1
        self._eta.step_done(now - self._last)
        self._last = now
        elapsed, left = now - self._started, self._eta.left()
        if self._bar is not None:
            self._bar.set_description_str(label, refresh=False)
            self._bar.set_postfix_str(times_text(elapsed, left), refresh=False)
            self._bar.update(1)
        elif self.mode == "marker":
            left_text = "-" if left is None else f"{left:.1f}"
            print(f"{MARK}{self.done} {self.total} {elapsed:.1f} {left_text} {label}", flush=True)

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
        done_text, total_text, elapsed_text, left_text, label = [*mark.split(" ", 4), "", "", "", ""][:5]
        if not (self.draw and ascii_digits(done_text) and ascii_digits(total_text)):
            return
        done, total = int(done_text), int(total_text)
        if self._bar is None:
            self._bar = _bar(total, sys.stderr)
        self._bar.set_description_str(label, refresh=False)
        try:
            elapsed = float(elapsed_text)
            left = None if left_text == "-" else float(left_text)
            self._bar.set_postfix_str(times_text(elapsed, left), refresh=False)
        except ValueError:
            pass  # a marker without times: the bar still counts
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
