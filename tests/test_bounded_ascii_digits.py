"""Issue 43 item 3: numbers read from outside text are ASCII digits only.

``str.isdigit()`` is true of ``'²'`` (and every superscript), which ``int()`` refuses with a ValueError: a reader
that asked ``isdigit()`` and then called ``int()`` turned one such character in an Xid line, ``nvidia-smi nvlink
-s`` output, ``ibv_devinfo`` or an ibnetdiscover file into a traceback. ``int()`` itself reads other scripts'
digits (``'٣'``, ``'５'``) and ``'1_000'``, so a number was read where the tool wrote none. Each reader here is
given its tool's own format with digits swapped for those look-alikes: it reads what is left or refuses in one
line (UserError, exit 2), never a traceback, and never a number from a character that is not 0-9.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bench.bounded import InputError, Where, ascii_digits, parse_float, parse_int
from bench.exits import UserError
from bench.fabric import cabling_plan, devinfo, ibnetdiscover
from bench.fabric.cabling import Cabling, switch_port
from bench.fabric.peer_memory import PeerMemory
from bench.gpu import nvlink, smi, xid
from bench.history.baseline import parse_baseline_spec
from tests.support.trees import gpu_state_docs as docs

DATA = Path(__file__).resolve().parent / "data" / "topology"
LOOKALIKES = ("²", "¹", "⁷", "٣", "５", "𝟙", "߁", "①")
"""A superscript (isdigit, not isdecimal: int() refuses it), Arabic-Indic, fullwidth, mathematical bold and NKo
digits (isdecimal: int() reads them), a circled one (isdigit)."""
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

XID_LINE = "Jun  3 10:00:07 node07 kernel: [1007.123456] NVRM: Xid (PCI:0000:73:00): 79, pid=41872, name=python3, x"
DEVINFO = "hca_id:\tmlx5_1\n\tport:\t1\n\t\tstate:\t\t\tPORT_ACTIVE (4)\n\t\tactive_mtu:\t\t4096 (5)\n"


def test_ascii_digits_is_0_to_9_only() -> None:
    assert ascii_digits("0123456789") and not ascii_digits("") and not ascii_digits("1 2")
    for char in LOOKALIKES:
        assert char.isdigit() and not ascii_digits(char) and not ascii_digits("1" + char)


@pytest.mark.parametrize("char", LOOKALIKES)
def test_an_xid_code_with_a_lookalike_digit_is_no_event(char: str) -> None:
    assert xid.parse_line(XID_LINE.replace(": 79,", f": {char}9,")) is None
    assert xid.parse_line(XID_LINE.replace(": 79,", f": 7{char},")).code == 7  # type: ignore[union-attr]


@pytest.mark.parametrize("char", LOOKALIKES)
def test_nvlink_status_with_a_lookalike_digit(char: str) -> None:
    text = docs.nvlink_status(docs.healthy(2))
    assert [len(g.links) for g in nvlink.parse_status(text.replace("Link 3:", f"Link {char}:").splitlines())] == [
        17,
        17,
    ]
    assert [g.index for g in nvlink.parse_status(text.replace("GPU 1:", f"GPU {char}:").splitlines())] == [0]


@pytest.mark.parametrize("char", LOOKALIKES)
def test_ibv_devinfo_with_a_lookalike_digit(char: str) -> None:
    assert devinfo.active_mtus(DEVINFO.splitlines()) == {"mlx5_1:1": 4096}
    assert devinfo.active_mtus(DEVINFO.replace("4096", f"{char}096").splitlines()) == {}
    assert devinfo.active_mtus(DEVINFO.replace("port:\t1", f"port:\t{char}").splitlines()) == {}


@pytest.mark.parametrize("char", LOOKALIKES)
def test_ibnetdiscover_with_a_lookalike_digit(char: str) -> None:
    text = (DATA / "grouped-ndr.ibnet").read_text()
    port = text.replace("[2][ext 2]", f"[{char}][ext 2]", 1)
    with pytest.raises(UserError):
        _cabling(port)
    link = _cabling(text.replace("lid 11 4xNDR", f"lid 11 {char}xNDR", 1))
    cable = link.cable_of("gpu-a001", "mlx5_1")
    assert cable is not None and cable.link is None  # no link width read from a lookalike
    cabling_plan.check(link, cabling_plan.rail_order(link, ("mlx5_1", "mlx5_2", "mlx5_3")))


@pytest.mark.parametrize("char", LOOKALIKES)
def test_numbers_elsewhere_with_a_lookalike_digit(char: str) -> None:
    where = Where("x", "count")
    for text in (char, f"1{char}", f"-{char}"):
        with pytest.raises(InputError):
            parse_int(text, where, sign="any")
        with pytest.raises(InputError):
            parse_float(f"{text}.5", where, sign="any")
    with pytest.raises(UserError, match="port"):
        switch_port(f"leaf-r0:{char}", "cabling.toml")
    assert PeerMemory(True, None, True, f"{char}.15.0-122-generic").kernel_dmabuf is None
    assert smi._count(f"{char}2", "x") is None


def test_underscores_and_spaces_inside_a_number_are_refused() -> None:
    for text in ("1_000", "1 000", "0x10"):
        with pytest.raises(InputError):
            parse_int(text, Where("x", "n"))
    with pytest.raises(InputError):
        parse_float("1_0.5", Where("x", "f"))
    assert parse_int(" +12 ", Where("x", "n")) == 12 and parse_float("-1.5e3", Where("x", "f"), sign="any") == -1500.0


def _cabling(text: str) -> Cabling:
    return ibnetdiscover.parse([(i + 1, line) for i, line in enumerate(text.splitlines())], "fabric.txt")


def _swapped(text: str, swaps: list[tuple[int, str]]) -> str:
    """``text`` with the ASCII digits at the chosen positions (taken modulo their count) swapped for look-alikes."""
    at = [i for i, c in enumerate(text) if ascii_digits(c)]
    chars = list(text)
    for position, char in swaps:
        chars[at[position % len(at)]] = char
    return "".join(chars)


_SWAPS = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(LOOKALIKES)), min_size=1, max_size=6)
READERS = {
    "xid": (XID_LINE, lambda text: xid.parse_line(text)),
    "nvlink": (docs.nvlink_status(docs.healthy(2), links=4), lambda text: nvlink.parse_status(text.splitlines())),
    "devinfo": (DEVINFO, lambda text: devinfo.active_mtus(text.splitlines())),
    "ibnetdiscover": ((DATA / "grouped-ndr.ibnet").read_text(), _cabling),
    "smi": (docs.smi_xml(docs.changed(1, dram_uncorrectable=3)), lambda text: smi.parse_report(text.encode(), "q")),
}


@pytest.mark.parametrize("reader", sorted(READERS))
@SETTINGS
@given(swaps=_SWAPS)
@example(swaps=[(0, "²")])
def test_any_lookalike_digit_in_a_readers_input_is_read_past_or_refused(
    reader: str, swaps: list[tuple[int, str]]
) -> None:
    text, read = READERS[reader]
    try:
        read(_swapped(text, swaps))
    except (UserError, smi.SmiRefused) as refused:  # SmiRefused: health's one-line finding
        assert "\n" not in str(refused)


def test_a_baseline_count_in_other_digits_is_one_line() -> None:
    """``--baseline last:²`` was a ValueError traceback (isdigit() is true of a superscript)."""
    with pytest.raises(UserError, match="write last:N"):
        parse_baseline_spec("last:²")
    assert parse_baseline_spec("last:7") == 7
