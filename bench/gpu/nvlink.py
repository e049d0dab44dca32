"""NVLink states from ``nvidia-smi nvlink -s`` (``--status``): every link of every GPU, active at a speed or not.

The output is one block per GPU, in nvidia-smi's index order (PCI bus order)::

    GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)
         Link 0: 26.562 GB/s
         Link 1: <inactive>

A GPU without NVLink prints its header alone (or nothing). Lines are split with string methods; a block or a
link line that is not in this shape is skipped, never guessed at.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bench.bounded import InputError, Where, ascii_digits, parse_float

MAX_LINKS = 64
"""More links than any GPU has (18 on Hopper and Blackwell)."""


@dataclass(frozen=True)
class NvLink:
    link: int
    gbytes_per_s: float | None
    """The link's speed in GB/s; None when it is inactive."""

    @property
    def active(self) -> bool:
        return self.gbytes_per_s is not None


@dataclass(frozen=True)
class GpuLinks:
    index: int
    """nvidia-smi's GPU index (its PCI bus order)."""
    name: str
    links: tuple[NvLink, ...] = field(default=())

    @property
    def inactive(self) -> tuple[int, ...]:
        return tuple(link.link for link in self.links if not link.active)


def is_status_output(text: str) -> bool:
    """Whether ``text`` looks like ``nvidia-smi nvlink -s`` output (its first line a ``GPU N:`` header)."""
    first = text.lstrip()[:80]
    return first.startswith("GPU ") and _index(first) is not None


def _index(line: str) -> int | None:
    head = line.strip().removeprefix("GPU ").partition(":")[0]
    return int(head) if ascii_digits(head) and len(head) <= 4 else None


def _link(line: str) -> NvLink | None:
    words = line.strip().removeprefix("Link ").partition(":")
    if not ascii_digits(words[0]) or len(words[0]) > 3:
        return None
    number = int(words[0])
    value = words[2].strip()
    if "inactive" in value.lower():
        return NvLink(number, None)
    speed = value.split()[0] if value.split() else ""
    try:
        gbytes = parse_float(speed, Where("nvlink", f"link {number}"), maximum=1e6)
    except InputError:
        return None
    return NvLink(number, gbytes)


def parse_status(lines: Iterable[str]) -> tuple[GpuLinks, ...]:
    """Every GPU block of ``nvidia-smi nvlink -s`` output."""
    out: list[GpuLinks] = []
    current: tuple[int, str] | None = None
    links: list[NvLink] = []
    for raw in lines:
        line = raw.strip()
        if line.startswith("GPU ") and _index(line) is not None:
            if current is not None:
                out.append(GpuLinks(current[0], current[1], tuple(links)))
            index = _index(line)
            current = (index, line.partition(":")[2].split("(UUID")[0].strip()[:80]) if index is not None else None
            links = []
        elif current is not None and line.startswith("Link ") and len(links) < MAX_LINKS:
            link = _link(line)
            if link is not None:
                links.append(link)
    if current is not None:
        out.append(GpuLinks(current[0], current[1], tuple(links)))
    return tuple(out)
