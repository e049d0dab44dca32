"""Issue 43 item 2: text from outside reaches the terminal and Slurm only through one escaper, and a name that
cannot go into Slurm or NCCL is refused in one line.

As the fault campaign did: ``sinfo``, ``scontrol`` and ``nvidia-smi`` are small scripts on PATH that say what a
test gives them (another operator's drain reason, scontrol's refusal, nvidia-smi's failure line, each holding
terminal escapes and newlines) and log the arguments railbench passed; the host name is set in a UTS namespace
of its own and a management interface named ``a,b`` is made in a network namespace of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.exits import UserError
from bench.fabric.hca_list import check_socket_ifname
from bench.gpu import state
from bench.rundir.checksjson import CheckResult
from bench.rundir.findings import check_finding
from bench.slurm import drain, scheduler
from bench.textlines import printable
from tests.support import REPO, railbench_inline, rank_env
from tests.support.trees import fabric_trees
from tests.support.trees.counters import zero_errors

RAW = ("\x1b", "\x07", "\x9b", "\r")
"""What must never reach a terminal or Slurm's Reason as it is."""
HOSTILE = "maint\x1b]0;pwned\x07 by \x1b[2Jbob\nsecond line\x9b31m"


def _no_raw(text: str) -> None:
    for char in RAW:
        assert char not in text, repr(text)


@pytest.fixture
def slurm_tools(tmp_path: Path) -> Path:
    """A folder with ``sinfo`` and ``scontrol`` that answer from files beside them and log their arguments."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "sinfo").write_text('#!/bin/sh\nprintf "%s\\0" "$@" >> "$0.log"\ncat "$0.out"\n')
    (tools / "scontrol").write_text(
        '#!/bin/sh\nprintf "%s\\0" "$@" >> "$0.log"\ncat "$0.err" >&2 2>/dev/null\nexit "$(cat "$0.rc")"\n'
    )
    for name in ("sinfo", "scontrol"):
        (tools / name).chmod(0o755)
        (tools / f"{name}.out").write_text("")
    (tools / "scontrol.rc").write_text("0")
    return tools


def _calls(tools: Path, name: str) -> list[list[str]]:
    log = tools / f"{name}.log"
    if not log.exists():
        return []
    words = log.read_bytes().decode().split("\0")[:-1]
    calls, current = [], []
    for word in words:  # each call starts with its first flag
        if word in ("--noheader", "update") and current:
            calls.append(current)
            current = []
        current.append(word)
    return [*calls, current] if current else calls


def _env(tools: Path, **extra: str) -> dict[str, str]:
    return {"PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}", **extra}


@pytest.fixture(scope="module")
def port_down(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fabric_trees.build(tmp_path_factory.mktemp("sysfs") / "port-down", fabric_trees.port_down("mlx5_3"))


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = fabric_trees.build(tmp_path_factory.mktemp("sysfs") / "healthy", fabric_trees.healthy_1cc())
    zero_errors(tree, [f"mlx5_{k}" for k in range(9)], [f"ibp{k}s0" for k in range(1, 9)])
    return tree


def _health(tree: Path, tools: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return railbench_inline(
        ["health", "--profile", "lambda-1cc", "--sysfs-root", str(tree), "--drain", *args], env=_env(tools, **env)
    )


# -- node names that cannot go into Slurm --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["node07\x1b[2J", "node07\nnode08", "node[07-08]", "node07,node08", "node 07"])
def test_a_slurmd_node_name_slurm_cannot_take_is_refused_before_any_check(
    name: str, slurm_tools: Path, port_down: Path
) -> None:
    done = _health(port_down, slurm_tools, SLURMD_NODENAME=name)
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    assert len(done.stderr.splitlines()) == 1 and "from SLURMD_NODENAME is not one Slurm node name" in done.stderr
    _no_raw(done.stderr)
    assert _calls(slurm_tools, "sinfo") == [] and _calls(slurm_tools, "scontrol") == []


@pytest.mark.parametrize("name", ["n\x1b]0;x\x07", "n\x00", "a=b", "", " "])
def test_a_node_flag_slurm_cannot_take_is_refused_in_one_line(name: str) -> None:
    done = railbench_inline(["health", "--profile", "lambda-1cc", "--node", name])
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    assert len(done.stderr.splitlines()) == 1 and "from --node is not one Slurm node name" in done.stderr
    _no_raw(done.stderr)


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0, reason="needs root and unshare")
def test_a_host_name_with_an_escape_is_refused_before_any_check(slurm_tools: Path, port_down: Path) -> None:
    """No --node and no SLURMD_NODENAME: the host's own name, here set in a UTS namespace of its own."""
    code = (
        "import socket, sys; socket.sethostname('gpu\\x1b[2J07'); from bench.cli import main; "
        f"sys.exit(main(['health', '--profile', 'lambda-1cc', '--sysfs-root', {str(port_down)!r}, '--drain']))"
    )
    done = subprocess.run(
        ["unshare", "--uts", sys.executable, "-c", code],
        env=rank_env(_env(slurm_tools)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    assert len(done.stderr.splitlines()) == 1 and "from this host's name is not one Slurm node name" in done.stderr
    assert "U+001B" in done.stderr
    _no_raw(done.stderr)
    assert _calls(slurm_tools, "scontrol") == []


def test_accept_and_rails_never_send_a_bad_node_name_to_slurm(slurm_tools: Path) -> None:
    """Their node names come from the ranks' host names: a bad one is an outcome of its own (NOT drained, why),
    the others are drained as usual, and Slurm never sees it."""
    (slurm_tools / "sinfo.out").write_text("node02|idle|root|none\n")
    faults = [
        _fault("node01,node09", "rail 1", "link dead"),
        _fault("node02", "rail 1", "link dead"),
        _fault("node03\x1b[2J", "GPU 3", "gpu slow"),
    ]
    saved = dict(os.environ)
    os.environ["PATH"] = _env(slurm_tools)["PATH"]
    try:
        actions = drain.drain_faulty(faults)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert [(a.node, a.outcome) for a in actions] == [
        ("node01,node09", "failed"),
        ("node02", "drained"),
        ("node03", "failed"),
    ]
    assert "holds ',', which Slurm reads as a host list (U+002C)" in actions[0].note
    assert "a control character (U+001B)" in actions[2].note
    for action in actions:
        _no_raw(action.line)
    assert _calls(slurm_tools, "sinfo")[0][-1] == "node02"
    assert [call[1] for call in _calls(slurm_tools, "scontrol")] == ["NodeName=node02"]


# -- what Slurm and nvidia-smi say, printed ------------------------------------------------------------------


def test_another_operators_reason_is_printed_escaped_and_left_as_it_is(slurm_tools: Path, port_down: Path) -> None:
    (slurm_tools / "sinfo.out").write_text(f"gpu-node07|drained|alice|{HOSTILE.replace(chr(10), ' ')}\n")
    done = _health(port_down, slurm_tools, SLURMD_NODENAME="gpu-node07")
    assert done.returncode == 1, done.stdout + done.stderr
    _no_raw(done.stdout + done.stderr)
    (left,) = [line for line in done.stdout.splitlines() if "not drained by railbench" in line]
    assert "drained by alice for 'maint by bob second line\\x9b31m', left as it is" in left
    assert _calls(slurm_tools, "scontrol") == []  # someone else's node: never touched


def test_scontrols_refusal_is_printed_escaped(slurm_tools: Path, port_down: Path) -> None:
    (slurm_tools / "sinfo.out").write_text("gpu-node07|idle|root|none\n")
    (slurm_tools / "scontrol.err").write_text("scontrol: error: \x1b[31mInvalid\x1b]0;x\x07 node\r\n")
    (slurm_tools / "scontrol.rc").write_text("1")
    done = _health(port_down, slurm_tools, "--node", "gpu-node07")
    assert done.returncode == 1, done.stdout + done.stderr
    _no_raw(done.stdout + done.stderr)
    assert "gpu-node07: NOT drained: scontrol update: scontrol: error: Invalid node" in done.stdout


def test_the_reason_railbench_gives_slurm_is_one_printable_line(slurm_tools: Path) -> None:
    why = drain.reason([_fault("n1", "rail 1 (x\x1b[2Jy)", f"link dead {HOSTILE}", "check\x1b]0;t\x07 it")])
    _no_raw(why)
    assert why.isascii() and why.isprintable() and "\\x0a" in why
    saved = dict(os.environ)
    os.environ["PATH"] = _env(slurm_tools)["PATH"]
    try:
        scheduler.drain("n1", "railbench: \x1b[2Jx\ny")  # even a reason made elsewhere goes in printable
    finally:
        os.environ.clear()
        os.environ.update(saved)
    (call,) = _calls(slurm_tools, "scontrol")
    assert call[-1] == "Reason=railbench: x\\x0ay"


def _fault(node: str, part: str, said: str, action: str = "") -> drain.NodeFault:
    """A fault on ``node`` whose drain words are ``part``, ``said`` and ``action``: a failed check's answer whose
    name, reason and action came from outside (a checks.json, a tool's output)."""
    return drain.NodeFault(node, check_finding(node, CheckResult(part, "fail", said, None, action or None)))


_OUTSIDE = st.text(max_size=80) | st.lists(st.sampled_from([*RAW, "\n", "\x00", "\u202e", "[2J", "]0;", "x", " "])).map(
    "".join
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(node=_OUTSIDE, part=_OUTSIDE, finding=_OUTSIDE, note=_OUTSIDE)
def test_any_outside_text_comes_out_one_printable_line(node: str, part: str, finding: str, note: str) -> None:
    fault = _fault(node, part, finding, note)
    why = drain.reason([fault])
    assert why.isascii() and why.isprintable() and len(why) <= drain.MAX_REASON_CHARS
    assert why.startswith(f"{fault.key.token} ") and len(why) - len(fault.key.token) - 1 <= drain.MAX_SENTENCE_CHARS
    for outcome in ("drained", "left", "failed"):
        line = drain.NodeAction(node, outcome, why, note).line  # type: ignore[arg-type]
        assert "\n" not in line and printable(line) == line, repr(line)  # nothing a terminal acts on is left
    said = str(scheduler.SchedulerError(f"scontrol update: {note}"))
    assert "\n" not in said and printable(said) == said, repr(said)


def test_scheduler_errors_are_one_printable_line() -> None:
    said = str(scheduler.SchedulerError("sinfo: \x1b[2Jerror\nsecond"))
    assert said == "sinfo: error\\x0asecond"


def test_nvidia_smis_failure_line_is_escaped(tmp_path: Path) -> None:
    tool = tmp_path / "nvidia-smi"
    tool.write_text(
        "#!/bin/sh\nprintf 'NVIDIA-SMI has failed\\033]0;pwned\\007 \\033[2J\\302\\233because\\n' >&2\nexit 9\n"
    )
    tool.chmod(0o755)
    saved = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{tmp_path}{os.pathsep}{saved}"
    try:
        found = state.from_tool()
    finally:
        os.environ["PATH"] = saved
    assert found.report is None and found.report_missing is not None and found.links_missing is not None
    for why in (found.report_missing, found.links_missing):
        _no_raw(why)
        assert "failed (NVIDIA-SMI has failed \\x9bbecause)" in why


# -- interface names that cannot go into NCCL_SOCKET_IFNAME -------------------------------------------------


@pytest.mark.parametrize("name", ["a,b", "eth\x1b[2J", "a:b", "a b", ""])
def test_an_interface_name_nccl_cannot_take_is_refused_in_one_line(name: str) -> None:
    with pytest.raises(UserError) as refused:
        check_socket_ifname(name, "the management interface")
    assert "\n" not in str(refused.value) and "cannot be named to NCCL" in str(refused.value)
    _no_raw(str(refused.value))
    assert check_socket_ifname("eno1", "x") == "eno1" and check_socket_ifname("ib0.8001", "x") == "ib0.8001"


@pytest.mark.skipif(shutil.which("unshare") is None or shutil.which("ip") is None or os.geteuid() != 0, reason="root")
@pytest.mark.parametrize("name", ["a,b", "m\x1b[2J"])
def test_a_management_interface_named_so_is_refused_where_ncclS_variable_is_made(name: str) -> None:
    """Linux lets an interface be named ``a,b`` or hold ESC; NCCL would split the first and print the second."""
    steps = [
        ["ip", "link", "add", name, "type", "veth", "peer", "name", "p0"],
        ["ip", "addr", "add", "198.18.77.1/24", "dev", name],
        ["ip", "link", "set", name, "up"],
    ]
    code = (
        "import subprocess\n"
        f"for argv in {steps!r}:\n"
        "    subprocess.run(argv, check=True)\n"
        "from bench.exits import UserError\n"
        "from bench.rails.measurement.bootstrap_nic import management_socket_ifname\n"
        "try:\n"
        "    print(management_socket_ifname('198.18.77.2', 29500))\n"
        "except UserError as exc:\n"
        "    print('refused:', exc)\n"
    )
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", code],
        env=rank_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("refused: the management interface '") and len(done.stdout.splitlines()) == 1
    _no_raw(done.stdout)
