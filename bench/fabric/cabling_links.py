"""Which cables run below their peers: a link's width and speed as ibnetdiscover prints them (``4xNDR``).

ibnetdiscover ends every port line with the active width and speed (``infiniband-diags/ibnetdiscover.c``
``out_ext_port``/``dump_*``: ``1x``, ``2x``, ``4x``, ``8x``, ``12x`` and ``SDR`` .. ``XDR``). A link is compared
by what it carries: its lanes times the lane rate of its speed (IBA spec vol. 2, the lane rates of each
generation; FDR10 runs 10.3125 Gb/s per lane with 64b/66b coding, FDR 14.0625). Comparing the text (``"FDR" <
"QDR"``) or the width first would call a 2xNDR link (200 Gb/s, the NDR200 split cable) slower than a 4xHDR one
(also 200 Gb/s), and an FDR link slower than a QDR one.

A cable is degraded when it carries less than the usual link of its peers. The usual link is the one most of
them run at; where two links are equally common none of them is the fabric's design, and the lower one is
taken, so a mixed fabric (a lab switch with QDR and FDR hosts alike) names only what is below both: a link is
named for running below its peers, never for an adapter generation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from bench.bounded import ascii_digits
from bench.fabric.cabling import Cable

LANE_GBPS = {
    "SDR": 2.5,
    "DDR": 5.0,
    "QDR": 10.0,
    "FDR10": 10.3125,
    "FDR": 14.0625,
    "EDR": 25.78125,
    "HDR": 53.125,
    "NDR": 106.25,
    "XDR": 212.5,
}
"""Signalling rate of one lane per generation (IBA spec; the 64b/66b generations at their line rate)."""


def bandwidth(link: str) -> float | None:
    """``4xNDR`` -> 425.0 (lanes x lane rate); None where the width or speed is not one ibnetdiscover prints."""
    width, x, speed = link.partition("x")
    if not x or not ascii_digits(width) or len(width) > 2 or speed not in LANE_GBPS:
        return None
    return int(width) * LANE_GBPS[speed]


def usual(links: Iterable[str | None]) -> str | None:
    """The link most cables run at; of two equally common ones the lower (see the module docstring)."""
    known = Counter(link for link in links if link and bandwidth(link) is not None)
    if not known:
        return None
    most = max(known.values())
    return min((link for link, n in known.items() if n == most), key=lambda link: (bandwidth(link) or 0.0, link))


def below(cables: Sequence[Cable]) -> tuple[str | None, list[Cable]]:
    """(the usual link of ``cables``, the cables that carry less than it)."""
    norm = usual(c.link for c in cables)
    level = bandwidth(norm) if norm else None
    if level is None:
        return norm, []
    slow = [c for c in cables if c.link and (rate := bandwidth(c.link)) is not None and rate < level]
    return norm, slow
