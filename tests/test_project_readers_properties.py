"""Property tests (hypothesis) for the readers of hostile input: the nccl-tests importer (text and JSON), the
NCCL log reader, the sysfs tree, profile TOML and NCCL_IB_HCA.

On any input each returns a result whose invariants hold, or raises the project's input error (``UserError``,
of which ``InputError`` is one) in one line, never another exception, and within a generous time bound per
KiB of input (the CI box is a noisy shared 2-core machine). The inputs that found each bug are kept as explicit
``@example`` seeds.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bench.exits import UserError
from bench.fabric import cabling_plan, counters, hca, ibnetdiscover
from bench.fabric.sysfs import Sysfs, ib_devices, net_devices, nvidia_gpus
from bench.nccllogs import nccl_evidence, nccl_log
from bench.nccltests import parse_log
from bench.nccltests.convert import result_rows
from bench.preflight import checks
from bench.profile.cluster import load_profile
from bench.textlines import printable, text_lines
from tests.support.history_fixtures import json_log, text_log
from tests.support.trees import fabric_trees, gpudirect_trees

FIXED_S = 3.0
PER_KIB_S = 0.25
"""Seconds allowed per KiB of input on top of FIXED_S: two orders of magnitude above what linear code needs."""

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def _within_bound(started: float, nbytes: int) -> None:
    elapsed = time.monotonic() - started
    assert elapsed < FIXED_S + PER_KIB_S * nbytes / 1024, f"{elapsed:.2f} s for {nbytes} bytes"


# ---------------------------------------------------------------------------------------------------------
# nccl-tests logs and NCCL_DEBUG logs

LOG_FIXED_S = 1.0
LOG_PER_KIB_S = 0.05
"""The log readers' bound (tighter than the tree's: they read one string, no file system)."""


def _within_log_bound(started: float, text: str) -> None:
    kib = max(1.0, len(text.encode("utf-8", "replace")) / 1024)
    assert time.monotonic() - started < LOG_FIXED_S + LOG_PER_KIB_S * kib


GOOD_TEXT = text_log("all_reduce", ("gpu-a01", "gpu-a02"), 8, [1 << 20, 1 << 22, 1 << 24])
GOOD_JSON = json_log("all_reduce", ("gpu-a01", "gpu-a02"), 8, [1 << 20, 1 << 22, 1 << 24])

# Pieces of the real grammars, so generated text reaches the parsers' inner branches.
TEXT_PIECES = [
    "# nThread 1 nGpus 8 minBytes 8 maxBytes 1024 step: 2(factor) warmup iters: 5 iters: 20 validation: 1",
    "#  Rank  0 Group  0 Pid 1234 on gpu-a01 device  0 [0000:18:00] NVIDIA H100 80GB HBM3",
    "#       size         count      type   redop    root     time   algbw   busbw #wrong",
    "     1048576        262144     float     sum      -1    61.2   17.13   32.12      0    60.7   17.2   32.3      0",
    "     1048576        262144     float    61.2   17.13   12.85  0e+00",
    "# Out of bounds values : 0 OK",
    "# Avg bus bandwidth    : 17.44",
    "# Collective test starting: all_gather_perf",
    "mpirun -np 2 ./build/all_reduce_perf -b 8 -e 1G -g 4",
    "[1,0]<stdout>:",
    "gpu-a01:12:12 [0] NCCL INFO comm 0x1 rank 0 nRanks 16 nNodes 2",
    "inf",
    "nan",
    "1e999",
    "-3.5",
    "9" * 80,
    "\x1b[31m",
    "\\",
]
NCCL_PIECES = [
    "h1:12:13 [0] NCCL INFO ",
    "[1,0]<stdout>:",
    "0: ",
    "NCCL version 2.4.8+cuda10.1",
    "NET/IB : Using [0]mlx5_0:1/IB [1]mlx5_1:1/RoCE/SHARP [RO]; OOB ib0:10.0.0.1<0>",
    "NET/Socket : Using [0]eth0:10.0.0.1<0>",
    "Using network AWS Libfabric",
    "Channel 00/0 : 0[0] -> 1[0] [send] via NET/IB/1(3)/GDRDMA",
    "Ring 00 : 0 -> 1 [receive] via NET/IB/0",
    "NET/IB : No device found.",
    "transport/net_ib.cc:99 NCCL WARN hca mlx5_2",
    "9" * 80,
    ":",
    "[",
    "]",
]


def _lines(pieces: list[str]) -> st.SearchStrategy[str]:
    line = st.lists(st.sampled_from(pieces) | st.text(max_size=30), max_size=6).map("".join)
    return st.lists(line, max_size=40).map("\n".join)


@SETTINGS
@given(_lines(TEXT_PIECES))
@example("x " + "a" * 4000)  # the cubic _PROGRAM regex of issue 12
@example(GOOD_TEXT.replace("step: 2(factor)", "step: " + "9" * 5000 + "(factor)"))
@example("     1048576  262144  float  sum  -1  61.2  17.13  -32.12  0  60.7  17.2  32.3  0")
def test_nccl_tests_text_returns_or_refuses(text: str) -> None:
    started = time.monotonic()
    try:
        log = parse_log(text, source="gen.log")
    except UserError:
        pass
    else:
        for row in result_rows(log):
            assert 0 <= row["busbw_GBps"] < float("inf") and 0 <= row["time_us"] < float("inf")
    _within_log_bound(started, text)


@SETTINGS
@given(st.data())
def test_nccl_tests_json_returns_or_refuses(data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(GOOD_JSON)))
    junk = data.draw(st.sampled_from(["", "NaN", "Infinity", "-1", "1e999", "9" * 5000, '"x"', "[[[", "null", "}"]))
    at = data.draw(st.integers(0, cut))
    text = GOOD_JSON[:at] + junk + GOOD_JSON[at:cut]
    started = time.monotonic()
    try:
        log = parse_log(text, source="gen.json")
    except UserError:
        pass
    else:
        for row in result_rows(log):
            assert 0 <= row["busbw_GBps"] < float("inf")
    _within_log_bound(started, text)


@SETTINGS
@given(_lines(NCCL_PIECES))
@example("a" * 40_000)  # the quadratic _PREFIX search of issue 12
@example("h:" + "5" * 5000 + ":1 [0] NCCL INFO x")
@example("h:1:1 [0] NCCL INFO NET/IB : Using [" + "7" * 5000 + "]mlx5_0:1/IB")
@example("h1:12:13 [0] NCCL INFO \rh1:12:13 [0] NCCL INFO ")  # two lines: a lone carriage return ends one
def test_nccl_log_returns_or_refuses(text: str) -> None:
    started = time.monotonic()
    try:
        log = nccl_log.parse_text(text, "gen.log")
    except UserError as exc:
        assert "\n" not in str(exc)
    else:
        # A line is counted once, or not at all. Lines as the readers open files (universal newlines,
        # bench.textlines): a lone carriage return ends a line too, as in a terminal's capture.
        lines = text.replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1
        assert log.nccl_lines <= lines
        evidence = nccl_evidence.evidence([log], None)
        assert json.loads(json.dumps(evidence)) == evidence
        for host, net in log.hosts.items():
            assert all(d and "\n" not in d for d in net.devices), (host, net.devices)
            assert net.has_network_evidence <= (host in evidence["hosts"])
    _within_log_bound(started, text)


# ---------------------------------------------------------------------------------------------------------
# NCCL_IB_HCA

_HCA_ALPHABET = st.sampled_from(["^", "=", ",", ":", "mlx5_", "0", "1", "9" * 30, " ", "é", "\x00", "-", "+", "_"])
_HCA_VALUES = st.one_of(st.text(max_size=300), st.lists(_HCA_ALPHABET, max_size=200).map("".join))


@SETTINGS
@given(value=st.one_of(st.none(), _HCA_VALUES), devices=st.lists(st.text(max_size=20), max_size=6))
@example(value="mlx5_0:" + "9" * 5000, devices=["mlx5_0:1"])  # int() refused 4,300 digits: ValueError
@example(value="^=mlx5_8,^=mlx5_14,=^x:" + "-" + "9" * 5000, devices=[])
@example(value="," * 10_000 + "a:" * 10_000, devices=["a:1"])
def test_nccl_ib_hca_any_value_gives_an_answer(value: str | None, devices: list[str]) -> None:
    started = time.monotonic()
    candidates = []
    for device in devices:
        with contextlib.suppress(UserError):  # a device that is not NAME:PORT is refused, and so skipped
            candidates.append(hca.Candidate(*hca.split_device(device)))
    result = hca.explain(value, candidates)
    assert set(result.selected) <= {c.name for c in candidates}
    assert hca.describe(result.parsed)
    for warning in result.warnings:
        assert "\n" not in warning.message
    _within_bound(started, len(value or "") + sum(map(len, devices)))


@SETTINGS
@given(port=st.text(alphabet="0123456789+- \t", max_size=6000))
@example(port="9" * 5000)
@example(port="-" + "0" * 4000 + "1")
def test_c_atoi_is_total_and_32_bit(port: str) -> None:
    assert -(1 << 31) <= hca.c_atoi(port) < 1 << 31


# ---------------------------------------------------------------------------------------------------------
# profile TOML

_TOKENS = st.sampled_from(
    [
        "[",
        "]",
        "{",
        "}",
        "[[",
        "]]",
        "=",
        ",",
        ".",
        '"',
        "'",
        '"""',
        "'''",
        "#",
        "\n",
        " ",
        "\\",
        "name",
        "transport",
        '"ib"',
        '"socket"',
        "rails",
        "compare",
        "compare.rule",
        "report",
        "rate_gbps",
        "node_target_gbps",
        "nvlink_targets_gbps",
        "all_reduce",
        "pattern",
        "threshold",
        "min_bytes",
        "noise_k",
        "count",
        "gpus_per_node",
        "pass_fraction",
        "judge_min_bytes",
        '"1M"',
        '"5%"',
        "true",
        "0",
        "1",
        "-1",
        "0.9",
        "400",
        "nan",
        "inf",
        "-inf",
        "1e308",
        "1e999",
        "9" * 5000,
        "0x" + "f" * 100,
    ]
)
_NESTED = st.tuples(st.integers(0, 6000), st.sampled_from(["[", "{a = ", "[{b = "])).map(
    lambda pair: "x = " + pair[1] * pair[0] + "1" + ("]" * pair[0] if pair[1] == "[" else "")
)
_HEADER = 'name = "p"\ntransport = "socket"\n'


@pytest.fixture(scope="module")
def profile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("profiles")


@SETTINGS
@given(body=st.one_of(st.lists(_TOKENS, max_size=120).map("".join), _NESTED, st.text(max_size=2000)))
@example(body="node_target_gbps = " + "[" * 5000 + "]" * 5000)  # RecursionError with a 3,000-line traceback
@example(body="[report]\nx = " + "{a = " * 5000 + "1" + "}" * 5000)
@example(body="node_target_gbps = nan")  # accepted as a target
@example(body="[rails]\nrate_gbps = inf")
@example(body="nvlink_target_gbps = 1e308")
@example(body="[[compare.rule]]\npattern = 5\nthreshold = 0.1")  # accepted as a rule
@example(body="gpus_per_node = " + "9" * 5000)  # ValueError from tomllib
@example(body="[a" + " " * 100_000 + "b")  # quadratic line finder
def test_profile_text_gives_a_profile_or_one_line(profile_dir: Path, body: str) -> None:
    path = profile_dir / "p.toml"
    text = _HEADER + body + "\n"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    started = time.monotonic()
    try:
        profile = load_profile(str(path))
    except UserError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 2000, str(exc)[:300]
    else:
        for rate in (profile.node_target_gbps, profile.nvlink_target_gbps, profile.rail_rate_gbps):
            assert rate is None or 0 < rate <= 1e6
    _within_bound(started, len(text.encode("utf-8", "surrogatepass")))


# ---------------------------------------------------------------------------------------------------------
# sysfs tree

_PARTS = st.sampled_from(
    [
        "class",
        "infiniband",
        "net",
        "mlx5_0",
        "mlx5_1",
        "eth0",
        "bond0",
        "ports",
        "1",
        "2",
        "rate",
        "state",
        "phys_state",
        "link_layer",
        "device",
        "numa_node",
        "counters",
        "port_xmit_data",
        "port_rcv_data",
        "statistics",
        "tx_bytes",
        "rx_bytes",
        "speed",
        "type",
        "operstate",
        "bus",
        "pci",
        "devices",
        "0000:01:00.0",
        "vendor",
        "device",
        "bonding",
        "slaves",
        "gid_attrs",
        "ndevs",
        "0",
        "module",
        "nvidia",
        "version",
        "fw_ver",
        "master",
        "dev_port",
        "config",
        "current_link_speed",
        "current_link_width",
        "max_link_speed",
        "max_link_width",
        "iommu_group",
        "kernel",
        "iommu_groups",
        "iommu",
        "taint",
        "nvidia_peermem",
        "initstate",
    ]
)
_CONTENT = st.one_of(
    st.sampled_from(
        [
            "4: ACTIVE",
            "400 Gb/sec (4X NDR)",
            "InfiniBand",
            "0x10de",
            "0x030200",
            "-1",
            "up",
            "1",
            "772",
            "9" * 4000,
            "1e999 Gb/sec",
            "nan",
            "0x",
            "",
            "\xff\xfe",
            "9" * 400 + " Gb/sec",
            "32.0 GT/s PCIe",
            "1e999 GT/s",
            "Unknown",
            "DMA-FQ",
            "POE",
        ]
    ),
    st.text(max_size=64),
)
_KINDS = st.sampled_from(["file", "dir", "link", "self-link", "fifo", "dev-zero", "big"])
_ENTRIES = st.lists(
    st.tuples(st.lists(_PARTS, min_size=1, max_size=7), _KINDS, _CONTENT, st.lists(_PARTS, min_size=1, max_size=5)),
    max_size=40,
)


def _write_plain(path: Path, data: bytes) -> None:
    """Write ``data`` as a regular file; an entry an earlier draw made a FIFO (or a link) stays as it is.

    A plain ``write_bytes`` onto a FIFO blocks until a reader comes, and none ever does: the builder hung the
    suite when two draws named the same path. Non-blocking and no-follow, such an entry raises instead.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _make(root: Path, parts: list[str], kind: str, content: str, target: list[str]) -> int:
    """Create one entry (missing parents as directories); returns the bytes written. Impossible ones are
    skipped: a parent that is a file, a name already taken."""
    path = root.joinpath(*parts)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind in ("file", "big"):
            data = content.encode("utf-8", "surrogatepass") if kind == "file" else b"7" * 9000
            _write_plain(path, data)
            return len(data)
        if kind == "dir":
            path.mkdir(exist_ok=True)
        elif kind == "link":
            path.symlink_to(root.joinpath(*target))
        elif kind == "self-link":
            path.symlink_to(path.name)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "dev-zero":
            path.symlink_to("/dev/zero")
    except (OSError, ValueError):
        pass
    return 0


def _read_everything(root: Path) -> None:
    """Every reader over ``root``; what each returns keeps its invariants, whatever the tree holds."""
    tree = Sysfs(root)
    ib_devices(tree), net_devices(tree), nvidia_gpus(tree)
    for problem in tree.problems:
        assert problem.message and "\n" not in problem.message
    for reading in counters.snapshot(root).readings.values():
        assert reading.tx >= 0 and reading.rx >= 0 and reading.unit_bytes > 0, reading
    # The error counters' idle window is a sleep between two reads of the same static files, and the kernel
    # log is this machine's: neither is what is drawn here (the window took 3 s of every healthy example).
    kernel_log = root.parent / "kern.log"
    kernel_log.touch()
    results = checks.run_checks(
        load_profile("lambda-1cc"),
        root,
        (),
        {"NCCL_IB_HCA": "^=mlx5_0"},
        kernel_log=kernel_log,
        sleep=lambda seconds: None,
    )
    assert results
    for result in results:
        assert result.status in ("pass", "warn", "fail", "skip"), result
        assert result.reason and "\n" not in result.reason, result  # a skip says why, a failure what
    statuses = {r.status for r in results}
    assert checks.verdict(results) == ("fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass")


@pytest.mark.slow
@SETTINGS
@given(entries=_ENTRIES)
@example(entries=[(["class", "infiniband", "mlx5_0"], "self-link", "", ["x"])])  # RuntimeError: loop
@example(entries=[(["class", "net", "eth0"], "self-link", "", ["x"])])
@example(entries=[(["class", "infiniband", "mlx5_0", "ports", "1", "rate"], "fifo", "", ["x"])])  # hung
@example(entries=[(["class", "infiniband", "mlx5_0", "ports", "1", "rate"], "dev-zero", "", ["x"])])  # no limit
def test_any_sysfs_tree_is_read_without_error(
    tmp_path: Path, entries: list[tuple[list[str], str, str, list[str]]]
) -> None:
    root = tmp_path / f"t{time.monotonic_ns()}"
    root.mkdir()
    written = sum(_make(root, *entry) for entry in entries)
    started = time.monotonic()
    _read_everything(root)
    _within_bound(started, written)
    shutil.rmtree(root)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A healthy node down to its PCIe layer (link attributes, configuration space, IOMMU groups), so that the
    damage reaches the GPUDirect path's readers too."""
    spec = gpudirect_trees.PathSpec(iommu="identity")
    return gpudirect_trees.build(tmp_path_factory.mktemp("healthy") / "sys", fabric_trees.healthy_1cc(), spec)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture(scope="module")
def healthy_files(healthy: Path) -> list[str]:
    """The regular files of ``healthy``, the entries an example may damage."""
    return _files(healthy)


def _heal(root: Path, healthy: Path, victims: set[Path]) -> None:
    """Put back the healthy files ``victims`` name, whatever the damage made of them. Victims are regular files
    (never a parent of another entry), so this leaves ``root`` as a fresh copy of ``healthy`` would be: copying
    and removing the whole tree for every example took most of the test's time."""
    for victim in victims:
        target = root / victim
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
        shutil.copy2(healthy / victim, target)


@pytest.mark.slow
@SETTINGS
@given(data=st.data())
def test_a_healthy_tree_with_damage_is_read_without_error(
    tmp_path: Path, healthy: Path, healthy_files: list[str], data: st.DataObject
) -> None:
    root = tmp_path / "sys"  # one copy for every example (tmp_path is shared by them), healed after each
    if not root.exists():
        shutil.copytree(healthy, root, symlinks=True)
    written = 0
    victims: set[Path] = set()
    try:
        for _ in range(data.draw(st.integers(1, 6))):
            victim = Path(data.draw(st.sampled_from(healthy_files)))
            victims.add(victim)
            target = root / victim
            if target.is_dir() and not target.is_symlink():  # an earlier draw made it a directory
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
            kind = data.draw(_KINDS.filter(lambda k: k != "link"))
            written += _make(root, list(victim.parts), kind, data.draw(_CONTENT), ["x"])
        started = time.monotonic()
        _read_everything(root)
        _within_bound(started, written)
    finally:
        _heal(root, healthy, victims)


# ---------------------------------------------------------------------------------------------------------
# ibnetdiscover's text and the cabling read from it (issue 28 item 7, issue 33 items 20-21)

TOPOLOGY_PIECES = [
    'Switch\t65 "S-00000000000000a1"\t\t# "leaf-1" enhanced port 0 lid 1 lmc 0',
    'Switch\t65 "S-00000000000000a2"\t\t# "spine-1" enhanced port 0 lid 2 lmc 0',
    'Ca\t1 "H-00000000000000b1"\t\t# "node01 mlx5_1"',
    'Ca\t1 "H-00000000000000b2"\t\t# "node02 HCA-2"',
    'Rt\t1 "R-00000000000000c1"\t\t# "router"',
    '[1]\t"H-00000000000000b1"[1](b1) \t\t# "node01 mlx5_1" lid 11 4xNDR',
    '[2]\t"H-00000000000000b2"[1](b2) \t\t# "node02 HCA-2" lid 12 4xNDR',
    '[33][ext 17]\t"S-00000000000000a2"[1]\t\t# "spine-1" lid 2 2xNDR',
    '[1]\t"S-00000000000000a1"[33]\t\t# "leaf-1" lid 1 4xNDR',
    '[1](b1) \t"S-00000000000000a1"[1]\t\t# lid 11 lmc 0 "leaf-1" lid 1 4xNDR',
    '[1](b2) \t"S-00000000000000a1"[2]\t\t# lid 12 lmc 0 "leaf-1" lid 1 4xNDR',
    "vendid=0x2c9",
    "\x1b]0;title\x07",
    "\x1b[2J",
    "\x9b",
    "\u202e",
    '"',
    "[",
    "#",
    "9" * 40,
]


@SETTINGS
@given(_lines(TOPOLOGY_PIECES))
@example('Switch 2 "S-1" # "leaf\x1b]0;x\x07"\n[1] "H-2"[1](2) # "n\x1b[2J m" lid 1 4xNDR\n')
def test_topology_text_gives_a_cabling_of_printable_names_or_one_line(text: str) -> None:
    started = time.monotonic()
    try:
        cabling = ibnetdiscover.parse(list(text_lines(text)), "gen.txt")
        order = cabling_plan.rail_order(cabling, ("mlx5_1", "mlx5_2"), ("mlx5_0",))
        fabric, found = cabling_plan.check(cabling, order)
    except UserError as exc:
        assert "\n" not in str(exc) and printable(str(exc)) == str(exc)
    else:
        names = [str(end) for c in cabling.cables for end in (c.a, c.b)] + [f.line for f in found]
        names += [*fabric.leaves, *fabric.spines]
        assert all(printable(name) == name for name in names), names
    _within_log_bound(started, text)


_CONTROLS = "".join(chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F)))


@SETTINGS
@given(st.text(max_size=300) | st.lists(st.sampled_from([*_CONTROLS, "[", "]", "0;", "2J", "x", "\\"])).map("".join))
@example("\x1b]0;set the title\x07visible\x1b[2J\x1b[31mred\x1b[0m")
@example("\x1b[" + "0" * 10_000)  # a sequence that never ends: linear, and the ESC shown
def test_printable_leaves_nothing_a_terminal_acts_on_but_the_tab(text: str) -> None:
    shown = printable(text)
    assert not any(ch in _CONTROLS and ch != "\t" for ch in shown)
    assert printable(shown) == shown
    if not any(ch in _CONTROLS for ch in text):
        assert shown == text  # plain text (tabs, accents, emoji) is left as it is
