"""The one address of what railbench names (docs/design.md, "Adding a finding"): a :class:`Part` says which
part a finding is about, in fields, and makes the words that say where it is in one place.

Its ``kind`` is a rails defect kind (``bench.rundir.defect_kinds.DEFECT_KINDS``: ``link``, ``rail``, ``node``,
``pair``, ``errors``, ``path``, ``cable``, ``leaf``, ``uplink``, ``spine``), an intra-node one (``GPU_KINDS``:
``gpu``, ``gpu-pair``, every local pair of a ``node``), a preflight ``check`` on a node's device, the
``run`` itself (a hang, a lost rank, a world collective below its target), a ``rail-group`` below its target,
what the byte ``counters`` said of a node, or a ``device`` of a node that NCCL's log or the byte counters around
the world sweep named. Readers decide by its fields (:meth:`Part.covers`), never by the words.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.rundir.defect_kinds import kind_of

SWITCH_KINDS = frozenset({"leaf", "uplink", "spine"})
"""Parts above the nodes, said by their switches."""
OTHER_KINDS = frozenset({"check", "run", "rail-group", "counters", "device"})
"""Parts no defect kind names: a check's device, the run, a rail group below its target, what the byte
counters said of a node, a device the world sweep's evidence named."""


@dataclass(frozen=True)
class LocalGpu:
    """One GPU of a node: its number (CUDA's and nvidia-smi's, in PCI bus order) and its PCI address, where the
    run knew it."""

    index: int
    bus_id: str | None = None

    @property
    def words(self) -> str:
        """``GPU 3 (0000:9a:00.0)``, or ``GPU 3`` without the address."""
        return f"GPU {self.index} ({self.bus_id})" if self.bus_id else f"GPU {self.index}"


@dataclass(frozen=True, kw_only=True)
class Part:
    """Where a finding is: every field the kind names, the rest None."""

    kind: str
    """A rails defect kind, an intra-node one (on the ``intra_node`` step), or one of :data:`OTHER_KINDS`."""
    node: str | None = None
    peer: str | None = None
    """The other node of a pair fault."""
    rail: int | None = None
    """None for a node fault, a spine layer, a GPU or a check."""
    device: str | None = None
    """The HCA, port or interface (``mlx5_4``, ``mlx5_4:1``, ``eth1``), a check's device, a PCI address."""
    gpu: LocalGpu | None = None
    peer_gpu: LocalGpu | None = None
    """The other GPU of a ``gpu-pair``."""
    switches: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    unit: str | None = None
    check: str | None = None
    """A ``check`` part's check (``rail``, ``pcie-link``); a ``run`` part's, the check that did not finish."""
    intra: bool = False
    """An intra-node matrix part (its ``node`` kind is every local pair, not every rail)."""
    fabric: bool = False
    """A ``check`` of the fabric's cabling (``--topology``): on no node, and not a comparison across them."""

    def covers(self, *, node: str | None = None, rail: int | None = None) -> bool:
        """Whether the part is on ``node`` (either end of a pair) and on ``rail``, for those given. A part with no
        rail of its own (a node's every rail, a spine layer) is on every rail; one with no node (a rail, a
        switch) on every node."""
        if node is not None and node not in (self.node, self.peer):
            return False
        return rail is None or self.rail in (rail, None)

    @property
    def where(self) -> str:
        """The words that say where the part is, as every line railbench writes opens: ``node07 rail 3 (mlx5_4)``,
        ``rail 3 (mlx5_4, every node)``, ``node07 (every rail)``, ``node02-node05 rail 1``, ``leaf leaf-su1-r3
        (rail 3, unit 1 (node01-node32))``, ``node03 GPU 5 (0000:9a:00.0)``, ``node03 (every local pair)``."""
        if self.intra:
            return self._gpu_where()
        if self.kind == "check":
            return self.node or ("fabric" if self.fabric else "across nodes")
        if self.kind in ("counters", "run"):
            return self.node or ""
        if self.kind == "device":
            return " ".join(filter(None, (self.node, self.device)))
        if self.kind == "rail-group":
            return f"rail {self.rail}"
        if self.kind in SWITCH_KINDS:
            return self._switch_where()
        device = f"{self.device}, " if self.device else ""
        if self.kind == "cable":
            ends = f"{self.node} {self.device or 'rail ' + str(self.rail)}"
            return f"{self.node} rail {self.rail} (cable {ends} <-> {self.ports[0] if self.ports else '?'})"
        if self.kind == "rail":
            return f"rail {self.rail} ({device}every node)"
        if self.kind == "node":
            return f"{self.node} (every rail)"
        if self.kind == "pair":
            return f"{self.node}-{self.peer} rail {self.rail}"
        return f"{self.node} rail {self.rail}" + (f" ({self.device})" if self.device else "")

    def _gpu_where(self) -> str:
        if self.kind == "node" or self.gpu is None:
            return f"{self.node} (every local pair)"
        if self.kind == "gpu":
            return f"{self.node} {self.gpu.words}"
        return f"{self.node} GPU {self.gpu.index} - GPU {self.peer_gpu.index if self.peer_gpu else None}"

    def _switch_where(self) -> str:
        """``leaf leaf-su1-r3 (rail 3, unit 1 (node01-node32))``, ``uplinks of leaf-su2-r3 (rail 3, ...)``,
        ``uplinks between leaf-su1-r3 and leaf-su2-r3 (rail 3)``, ``spines spine-1..spine-8 (every rail)``."""
        rail = "every rail" if self.rail is None else f"rail {self.rail}"
        unit = f", {self.unit}" if self.unit else ""
        names = list(self.switches)
        if self.kind == "leaf":
            return f"leaf {names[0] if names else '?'} ({rail}{unit})"
        if self.kind == "uplink":
            if len(names) == 2:
                return f"uplinks between {names[0]} and {names[1]} ({rail})"
            return f"uplinks of {names[0] if names else '?'} ({rail}{unit})"
        shown = f"{names[0]}..{names[-1]}" if len(names) > 2 else " and ".join(names) or "?"
        layer = "spine" if len(names) == 1 else "spines"
        return f"{layer} {shown} ({rail}, between units)"

    @property
    def gpus(self) -> str:
        """The GPU or GPU pair as an operator finds it in the node (``GPU 3 (0000:9a:00.0) - GPU 5``); ``every
        GPU pair`` for a node."""
        if self.gpu is None:
            return "every GPU pair"
        if self.peer_gpu is None:
            return self.gpu.words
        return f"{self.gpu.words} - {self.peer_gpu.words}"

    @property
    def known(self) -> bool:
        """A kind this release writes (an older release's kind is shown as it was written)."""
        return self.intra or self.kind in OTHER_KINDS or kind_of(self.kind) is not None
