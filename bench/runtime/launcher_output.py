"""mpirun's stderr as the parent passes it on: rank lines go through, Open MPI's boxes are held back.

railbench owns its exit status and says what went wrong in one line, so the boxes Open MPI draws when a
rank exits non-zero ("prterun detected that one or more processes exited with non-zero status") never
reach the user after a normal FAIL verdict. The parent reads them instead: a box saying which rank died on
which node names a killed rank, and when nothing else explains a failure the boxes are shown after all.

One line of torch's is held back too: c10d's ``The hostname of the client socket cannot be retrieved. err=-3``,
once per rank (rank 0's store prints it for each rank that connects, each rank for the store it connects to).
torch names every store connection's peer with ``getnameinfo`` without ``NI_NUMERICHOST``
(``formatSockAddr`` in torch/csrc/distributed/c10d/socket.cpp,
https://github.com/pytorch/pytorch/blob/main/torch/csrc/distributed/c10d/socket.cpp) and warns when the
reverse lookup fails rather than finds no name: ``err=-3`` is ``EAI_AGAIN``, a resolver the node cannot reach
(a network namespace, a node without DNS). It then prints the address itself, and the connection works: the
line says nothing about the run, and railbench cannot stop it at its cause, a lookup torch makes of whatever
address the store's peer has (a loopback store, as on one host, resolves from /etc/hosts and never warns).
Every rank sets libtorch's C++ log threshold to ``ERROR`` before importing torch unless the user chose one
(``bench.runtime.env.quiet_torch_cpp_log``), so the line is not printed at all, under srun or the user's own
mpirun too, whose ranks' stderr is not railbench's to read; this filter keeps it out of what railbench relays
where the user's own threshold lets torch print it.
"""

from __future__ import annotations

import re
import sys
import threading
from dataclasses import dataclass, field
from typing import IO, TextIO

from bench.runtime.progress import Relay

_RULE = re.compile(r"^-{20,}\s*$")
_LOST = re.compile(r"process rank ([0-9]+) with PID [0-9]+ on node (\S+) exited on signal ([0-9]+)")
_C10D_PEER_NAME = re.compile(
    r"^(?:\[[0-9,]+\]<std(?:err|out)>: ?)?\[W[0-9]{4} [0-9:.]+ socket\.cpp:[0-9]+\] \[c10d\] "
    r"The hostname of the client socket cannot be retrieved\. err=-?[0-9]+\s*$"
)
"""torch's warning that a store peer's reverse lookup failed (the module docstring), as a rank prints it; Open
MPI's ``--tag-output`` prefix allowed."""


@dataclass(frozen=True)
class LostRank:
    """A rank the launcher saw die."""

    rank: int
    host: str
    signal: int

    def describe(self) -> str:
        return f"rank {self.rank} on {self.host} was killed by signal {self.signal}"


@dataclass
class LauncherOutput:
    """Feed it mpirun's stderr line by line; it writes rank lines to ``sink`` and keeps the boxes."""

    sink: TextIO
    relay: Relay | None = None
    """Where rank lines go (both streams, one terminal, the progress bar kept off the lines); None: ``sink``."""
    boxes: list[str] = field(default_factory=list)
    held_peer_names: int = 0
    """torch's c10d peer-name warnings held back (the module docstring)."""
    _box: list[str] | None = None

    def feed(self, line: str) -> None:
        if self._box is None and _C10D_PEER_NAME.match(line):
            self.held_peer_names += 1
            return
        if _RULE.match(line):
            if self._box is None:
                self._box = []
            else:
                self.boxes.append("\n".join(self._box))
                self._box = None
            return
        if self._box is not None:
            self._box.append(line.rstrip("\n"))
            return
        if self.relay is not None:
            self.relay.feed(line, self.sink)
        else:
            self.sink.write(line)
            self.sink.flush()

    def close(self) -> None:
        if self._box:  # an unterminated box is not a box: pass it on
            self.sink.write("\n".join(self._box) + "\n")
        self._box = None

    def lost_ranks(self) -> list[LostRank]:
        found = []
        for box in self.boxes:
            for m in _LOST.finditer(" ".join(box.split())):
                found.append(LostRank(int(m.group(1)), m.group(2), int(m.group(3))))
        return found

    def pump(self, stream: IO[str]) -> threading.Thread:
        """Read ``stream`` to its end on a thread (join it after the launcher exits)."""

        def run() -> None:
            for line in stream:
                self.feed(line)
            self.close()

        thread = threading.Thread(target=run, name="railbench-launcher-stderr", daemon=True)
        thread.start()
        return thread

    def pump_stdout(self, stream: IO[str]) -> threading.Thread:
        """Pass mpirun's stdout on line by line (through the relay, which draws rank 0's progress)."""

        def run() -> None:
            for line in stream:
                if self.relay is not None:
                    self.relay.feed(line)
                else:
                    sys.stdout.write(line)
                    sys.stdout.flush()
            if self.relay is not None:
                self.relay.close()

        thread = threading.Thread(target=run, name="railbench-launcher-stdout", daemon=True)
        thread.start()
        return thread
