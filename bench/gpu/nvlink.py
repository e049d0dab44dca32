"""NVLink states from ``nvidia-smi nvlink -s`` (``--status``): every link of every GPU, active at a speed or not.

The output is one block per GPU, in nvidia-smi's index order (PCI bus order)::

    GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)
         Link 0: 26.562 GB/s
         Link 1: <inactive>
    GPU 1: NVIDIA B200 (UUID: GPU-...)
    NVML: Unable to retrieve NVLink information as all links are inActive

Drivers of the 5xx series print NVML's line in place of the links of a GPU whose links are all down, or that
has none connected (a PCIe card without a bridge): the corpus in ``tests/data/wild/nvlink-status`` has it from
a B200 (leptonai/gpud#1085) and from A100 PCIe and RTX A6000 cards. A GPU without NVLink on older drivers
prints its header alone.

Real captures carry more than the tool printed: srun's ``0:`` labels, the shell prompt and command, banners and
blank lines. So the output is told by its lines anywhere in the file (:func:`output_kind`), and each line is read
without its launcher label. Another ``nvidia-smi`` output (``nvlink -i``, ``-c``, ``-e``, ``-R``, ``topo -m``,
``-q``) has the same ``GPU N:`` headers; its own lines name it, so it is refused by name, never read as ``-s``.

:func:`judge` turns the blocks into faults (docs/preflight.md, "The GPUDirect path"): see its docstring for the rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bench.bounded import InputError, Where, ascii_digits, parse_float
from bench.textlines import strip_launcher_label

MAX_LINKS = 64
"""More links than any GPU has (18 on Hopper and Blackwell)."""
STATUS = "nvidia-smi nvlink -s"
NVML_ALL_DOWN = "unable to retrieve nvlink information as all links are inactive"
"""NVML's line for a GPU with no active link, lower-cased (nvidia-smi prints ``inActive``)."""

OTHER_OUTPUTS: tuple[tuple[str, str], ...] = (
    ("NVSMI LOG", "nvidia-smi -q"),
    ("NVIDIA-SMI ", "nvidia-smi (its summary table)"),
    ("Legend:", "nvidia-smi topo -m"),
    ("NVLE:", "nvidia-smi nvlink -i (--info)"),
    ("Firmware Version:", "nvidia-smi nvlink -i (--info)"),
    (", P2P is supported:", "nvidia-smi nvlink -c (--capabilities)"),
    ("Remote Device", "nvidia-smi nvlink -R (--remotelinkinfo)"),
    ("Replay Errors:", "nvidia-smi nvlink -e (--errorcounters)"),
    ("Recovery Errors:", "nvidia-smi nvlink -e (--errorcounters)"),
    ("CRC Errors:", "nvidia-smi nvlink -e (--errorcounters)"),
    ("Data Tx:", "nvidia-smi nvlink -gt (--getthroughput)"),
    ("Raw Tx:", "nvidia-smi nvlink -gt (--getthroughput)"),
)
"""A line's text that only another nvidia-smi output prints, and that output's name. Each is from the output
itself: ``-i`` on GB200 (NVIDIA/k8s-test-infra#371), ``-R`` and ``topo -m`` on H100 PCIe
(HPE-Japan-Presales/e-learning), ``-c`` and ``-e`` as nvidia-smi(1) and the DGX user guides show them."""

DESIGN_LINKS: tuple[tuple[str, int], ...] = (
    ("V100-SXM", 6),
    ("A100-SXM", 12),
    ("H100 80GB HBM3", 18),
    ("H100-SXM", 18),
    ("H100 SXM", 18),
    ("H200", 18),
    ("B200", 18),
    ("B300", 18),
)
"""NVLinks per GPU by design, by the model name nvidia-smi prints: V100 SXM2/SXM3 6 (NVLink 2, 300 GB/s), A100
SXM4 12 (NVLink 3, 600 GB/s), H100 SXM5 and H200 SXM 18 (NVLink 4, 900 GB/s), B200/GB200/B300/GB300 18 (NVLink 5,
1.8 TB/s): NVIDIA's datasheets and architecture whitepapers for each. ``GB200`` holds ``B200``. PCIe and NVL cards
(bridged in pairs or fours, or not at all) and a lone GH200 have no fixed count: :func:`design_links` gives
None for them, and their links are judged against their peers'."""


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
    all_down: bool = False
    """NVML's "all links are inActive" line stood in place of the GPU's links."""

    @property
    def inactive(self) -> tuple[int, ...]:
        return tuple(link.link for link in self.links if not link.active)

    @property
    def active(self) -> tuple[NvLink, ...]:
        return tuple(link for link in self.links if link.active)


def design_links(name: str) -> int | None:
    """The NVLinks a GPU named ``name`` has by design (:data:`DESIGN_LINKS`), None when it has no fixed count."""
    upper = name.upper()
    if "PCIE" in upper or " NVL" in upper.replace(" NVLINK", "") or "GH200" in upper:
        return None
    return next((links for model, links in DESIGN_LINKS if model.upper() in upper), None)


def _text(raw: str) -> str:
    return strip_launcher_label(raw).strip()


def _index(line: str) -> int | None:
    if not line.startswith("GPU "):
        return None
    head = line.removeprefix("GPU ").partition(":")[0]
    return int(head) if ascii_digits(head) and len(head) <= 4 else None


def _link(line: str) -> NvLink | None:
    words = line.removeprefix("Link ").partition(":")
    if not line.startswith("Link ") or not ascii_digits(words[0]) or len(words[0]) > 3:
        return None
    number = int(words[0])
    value = words[2].strip()
    if value.lower() == "<inactive>":
        return NvLink(number, None)
    speed = value.split()
    if len(speed) != 2 or speed[1] != "GB/s":
        return None
    try:
        gbytes = parse_float(speed[0], Where("nvlink", f"link {number}"), maximum=1e6)
    except InputError:
        return None
    return NvLink(number, gbytes)


def output_kind(lines: Iterable[str]) -> str | None:
    """What the lines hold: :data:`STATUS` when a link line or NVML's all-down line of ``-s`` is among them (or
    only ``GPU N:`` headers: GPUs without NVLink), the name of another nvidia-smi output when one of its own
    lines is (:data:`OTHER_OUTPUTS`: refused even beside ``-s`` lines, which it would be misread with), None when
    neither. Every line is looked at, wherever it is."""
    status = headers = False
    for raw in lines:
        line = _text(raw)
        for marker, name in OTHER_OUTPUTS:
            if marker in line:
                return name
        if _link(line) is not None or NVML_ALL_DOWN in line.lower():
            status = True
        elif _index(line) is not None and "(UUID:" in line:
            headers = True
    return STATUS if status or headers else None


def parse_status(lines: Iterable[str]) -> tuple[GpuLinks, ...]:
    """Every GPU block of ``nvidia-smi nvlink -s`` output; lines of neither a block nor a link are skipped."""
    out: list[GpuLinks] = []
    current: tuple[int, str] | None = None
    links: list[NvLink] = []
    down = False
    for raw in lines:
        line = _text(raw)
        index = _index(line)
        if index is not None:
            if current is not None:
                out.append(GpuLinks(current[0], current[1], tuple(links), down))
            current = (index, line.partition(":")[2].split("(UUID")[0].strip()[:80])
            links, down = [], False
        elif current is not None and NVML_ALL_DOWN in line.lower():
            down = True
        elif current is not None and len(links) < MAX_LINKS:
            link = _link(line)
            if link is not None:
                links.append(link)
    if current is not None:
        out.append(GpuLinks(current[0], current[1], tuple(links), down))
    return tuple(out)


@dataclass(frozen=True)
class LinkFault:
    """One GPU's NVLinks that are down or slow, and why that is a fault."""

    index: int
    links: tuple[int, ...]
    why: str


@dataclass(frozen=True)
class LinkJudgement:
    faults: tuple[LinkFault, ...] = ()
    every_link_down: bool = False
    """No link is active on any GPU, on GPUs that have NVLink: the fabric (or the fabric manager) is down. Each
    GPU's fault is in :attr:`faults` too."""
    no_nvlink: str | None = None
    """Why the GPUs are not judged: none lists a link, or NVML says none is active on models without a fixed
    NVLink count (PCIe cards without bridges)."""


def judge(gpus: Sequence[GpuLinks]) -> LinkJudgement:
    """The faults in ``gpus``' links.

    * A GPU whose model has N NVLinks by design (:func:`design_links`) fails for each of links 0..N-1 that is
      inactive, missing from its block, or behind NVML's all-down line, whatever its peers show: an HGX board
      whose GPUs all lost the same link is broken on every GPU, not healthy by comparison.
    * Any other GPU fails for each link that is inactive (or all-down) while some peer has that link active: the
      same card with the same bridges has it up. A link inactive on every peer (the H100 PCIe's links 4, 5,
      10, 11, 16, 17 with three bridges) is its design.
    * An active link slower than the node's most common link speed fails its GPU.
    * No link active anywhere fails every GPU and marks the node (:attr:`LinkJudgement.every_link_down`) when the
      GPUs list links or have a known design; NVML's all-down line on every GPU of models without one is a node
      without NVLink (the A100 PCIe cards of HPE-Japan-Presales/e-learning), not judged.
    """
    listed = [g for g in gpus if g.links or g.all_down or design_links(g.name) is not None]
    if not any(g.links or g.all_down for g in listed):
        return LinkJudgement(no_nvlink=f"{STATUS} lists no NVLink on these GPUs (PCIe GPUs without NVLink)")
    up = {link.link for g in listed for link in g.active}
    if not up and all(g.all_down and design_links(g.name) is None for g in listed):
        names = ", ".join(sorted({g.name for g in listed}))
        return LinkJudgement(
            no_nvlink=f"NVML: no NVLink active on any of the {len(listed)} GPUs ({names}: no fixed NVLink count, "
            "so PCIe cards without bridges)"
        )
    speeds = Counter(link.gbytes_per_s for g in listed for link in g.active)
    common = speeds.most_common(1)[0][0] if speeds else None
    faults = []
    for g in listed:
        fault = _gpu_fault(g, up, common)
        if fault is not None:
            faults.append(fault)
    return LinkJudgement(tuple(faults), every_link_down=not up)


def _gpu_fault(g: GpuLinks, up: set[int], common: float | None) -> LinkFault | None:
    """``g``'s fault: its links down of those it should have (its design's, else ``up``: those up on a peer, or
    its own when none is up anywhere), missing from its block, or slower than ``common``."""
    design = design_links(g.name)
    expected = set(range(design)) if design is not None else up or {link.link for link in g.links}
    numbers = {link.link for link in g.links}
    down = sorted(n for n in expected if n not in numbers) if g.all_down else []
    down += [n for n in g.inactive if n in expected]
    missing = sorted(n for n in expected if n not in numbers) if design is not None and not g.all_down else []
    slow = [link.link for link in g.active if common is not None and (link.gbytes_per_s or 0) < common]
    if not (down or missing or slow):
        return None
    out = len(g.active)
    of = f"{out} of {design if design is not None else len(expected)} active"
    if design is None and up:
        of += "; its peers have them active"
    problems = []
    if g.all_down:
        problems.append(f"NVML: all its NVLinks inactive ({of})")
    elif down:
        problems.append(f"NVLink {_numbers(down)} inactive ({of})")
    if missing:
        problems.append(f"NVLink {_numbers(missing)} missing from its block ({design} by design)")
    if slow:
        problems.append(f"NVLink {_numbers(slow)} below the others' {common:g} GB/s")
    return LinkFault(g.index, tuple(sorted(set(down + missing + slow))), "; ".join(problems))


def _numbers(links: Sequence[int]) -> str:
    return ", ".join(str(n) for n in sorted(links))
