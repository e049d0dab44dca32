"""torch's c10d peer-name warning (``The hostname of the client socket cannot be retrieved. err=-3``), printed
once per rank where the store's peers have no name a resolver can give (issue 43: on the namespace testbed and
CPU runs), is held back from the ranks' output railbench passes on; everything else a rank prints, and every
other c10d line, goes through. The lines are torch's own, captured (tests/data/c10d/README.md)."""

from __future__ import annotations

import io
from pathlib import Path

from bench.runtime.launcher_output import LauncherOutput

DATA = Path(__file__).parent / "data" / "c10d"


def test_the_peer_name_warning_of_each_side_of_the_store_is_held_back() -> None:
    sink = io.StringIO()
    output = LauncherOutput(sink)
    captured = [(DATA / name).read_text() for name in ("store-server-netns.log", "store-client-netns.log")]
    assert all("The hostname of the client socket cannot be retrieved. err=-3" in text for text in captured)
    # as mpirun passes the ranks' stderr on: torch's lines between the ranks' own; and with --tag-output
    tagged = "[1,3]<stderr>:" + captured[1]
    lines = ["# railbench all_reduce: busbw 0.85 GB/s\n", *captured, tagged, "rank 2: step done\n"]
    for line in lines:
        output.feed(line)
    output.close()
    assert sink.getvalue() == "# railbench all_reduce: busbw 0.85 GB/s\nrank 2: step done\n"
    assert output.held_peer_names == 3


def test_other_c10d_lines_and_a_rank_quoting_the_words_go_through() -> None:
    sink = io.StringIO()
    output = LauncherOutput(sink)
    server = (DATA / "store-server-netns.log").read_text()
    other = server.replace(
        "The hostname of the client socket cannot be retrieved. err=-3",
        "The server socket has failed to listen on any local network address.",
    )
    quoted = "railbench: rank 1 said: The hostname of the client socket cannot be retrieved. err=-3\n"
    for line in (other, quoted):
        output.feed(line)
    assert sink.getvalue() == other + quoted and output.held_peer_names == 0
