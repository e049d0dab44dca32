"""Regimes of the fabric model (``tests/support/models/fabric_model.py``): how healthy a healthy fabric looks, and how
broken a broken part is. ``docs/rails.md`` ("The fabric model's regimes") lists them with their sources.

``kind`` is the model as it first was: every healthy link alike, 1.5% noise, adaptive routing, faults far below
the pass mark. The others carry what real rail-optimised fabrics show:

* **persistent spread** per node and per link, drawn once per fabric: cables, transceivers and HCAs of one
  model differ by a few percent in what they sustain, run after run (Skinner and Kramer, "Understanding the
  causes of performance variability in HPC workloads", IISWC 2005; Chunduri et al., "Run-to-run variability on
  Xeon Phi based Cray XC systems", SC17: 3-7% between nodes of one model). The fair floor: every healthy link
  averages at least ``floor`` (92%) of line rate, as the issue that asked for this model fixed;
* **heavy-tailed per-sample noise**: Student's t (few degrees of freedom) rather than a normal, plus outliers
  (Hoefler, Schneider and Lumsdaine, "Characterizing the influence of system noise on large-scale applications
  by simulation", SC10: OS and network noise is heavy-tailed, rare long detours dominate);
* **congestion where flows share uplinks**: a cross-unit sample now and then shares an uplink with another
  flow of its round and runs at a fraction of its rate (Hoefler, Schneider and Lumsdaine, "Multistage switches
  are not crossbars: effects of static routing in high-performance networks", IEEE Cluster 2008: with static
  routing, bisection patterns lose up to 40% of bandwidth to shared uplinks);
* **static destination routing** (OpenSM's ftree and updn engines: the route to a destination LID is fixed, so
  a pair always leaves its leaf through the same uplink, chosen by the destination; OpenSM documentation,
  "Routing algorithms") besides adaptive routing (NVIDIA Quantum's AR spreads a pair's packets over every
  uplink, per transfer);
* **a tapered tree** (``oversubscribed``: half as many uplinks per leaf as nodes, 2:1, as cost-reduced clusters
  build them; the fat-tree papers call it a blocking factor, Leiserson, "Fat-trees", IEEE ToC 1985): two
  destinations share each uplink under static routing, and more cross-unit flows share uplinks;
* **borderline faults** at 70-90% of the peers' rate, a node at 85%, a degraded uplink, a flapping link (a
  link that retrains now and then: a sample it flaps in moves almost nothing; NVIDIA UFM documentation
  counts link-down events per port as "link flapping"), a dead link beside a 20%-slow one, and two or three
  faults at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Regime:
    """One regime's healthy fabric and its faults' depth."""

    name: str
    node_spread: float = 0.0
    """Persistent lognormal sigma per node (every rail of it)."""
    link_spread: float = 0.0
    """Persistent lognormal sigma per (node, rail) link."""
    floor: float = 0.0
    """Every healthy link's mean is at least this share of line rate (0: no floor)."""
    sigma: float = 0.015
    """Per-sample noise (the scale of the t or normal draw)."""
    heavy_tail_dof: int = 0
    """Degrees of freedom of the per-sample t noise; 0: normal."""
    outlier_per: int = 100
    """One sample in this many is slowed by a transient outlier."""
    outlier_low: float = 0.70
    outlier_high: float = 0.98
    congestion: float = 0.0
    """Chance that a cross-unit sample shares an uplink with another flow of its round."""
    congestion_low: float = 0.6
    congestion_high: float = 0.95
    static_routing: bool = False
    """Destination routing (ftree/updn): a pair's flows all take one uplink, fixed by the destination."""
    oversubscription: int = 1
    """Nodes per uplink of a leaf (``Shape.oversubscription``): 2 is a 2:1 tapered tree."""
    loaded: bool = False
    """Each round's own flows load the uplinks: every pair crossing units gets its max-min fair share of the
    uplinks it crosses (``tests/support/models/fabric_load.py``)."""
    hot_spots: float = 0.0
    """Chance, per round and per (leaf, rail), that the leaf's cross-unit flows are slowed for that round only."""
    hot_spot_depth: tuple[float, float] = (0.5, 0.9)
    """The range a hot spot's factor is drawn from: two large flows hashed onto one link get half each."""
    ecmp_qps: int = 0
    """RoCE with ECMP (``fabric_load``): each pair direction on a rail runs this many queue pairs, each hashed by
    the switches onto one uplink of its leaf and one path down, fixed for the run (a queue pair keeps its UDP
    source port); 0: the regime's routing (static or adaptive) instead."""
    slow: tuple[float, float] = (0.3, 0.8)
    """The range a slow cable, HCA, node or leaf's factor is drawn from."""
    uplink_slow: tuple[float, float] = (0.2, 0.5)
    flap_share: tuple[float, float] = (0.3, 0.7)
    """The share of samples a flaky (flapping) link is slow in."""
    kinds: tuple[str, ...] = ("cable", "hca", "node", "gpu", "leaf", "uplink", "spine", "flaky", "dead", "two")
    """The fault scenarios drawn in turn (``ci/diagnosis_sim.py``)."""

    @property
    def harsh(self) -> bool:
        """Whether any property beyond the kind model's is on (the kind model draws no extra random numbers)."""
        return bool(self.node_spread or self.link_spread or self.heavy_tail_dof or self.congestion)

    def plain(self) -> Regime:
        """The same regime with the taper and the moving hot spots off: a non-blocking tree whose flows never
        load an uplink, drawing exactly the random numbers (so the samples) of a regime without them."""
        return replace(self, name=f"{self.name}-plain", loaded=False, hot_spots=0.0, oversubscription=1)


HARSH_KINDS = (
    "cable",
    "hca",
    "node",
    "node85",
    "gpu",
    "leaf",
    "uplink",
    "spine",
    "flaky",
    "dead",
    "deadslow",
    "two",
    "three",
)

KIND = Regime("kind")
REALISTIC = Regime(
    "realistic",
    node_spread=0.02,
    link_spread=0.04,
    floor=0.92,
    sigma=0.02,
    heavy_tail_dof=4,
    outlier_per=100,
    congestion=0.02,
    static_routing=True,
    slow=(0.70, 0.90),
    uplink_slow=(0.5, 0.8),
    flap_share=(0.2, 0.5),
    kinds=HARSH_KINDS,
)
ADAPTIVE = Regime(
    "adaptive",
    node_spread=0.02,
    link_spread=0.05,
    floor=0.92,
    sigma=0.025,
    heavy_tail_dof=3,
    outlier_per=60,
    congestion=0.01,
    slow=(0.70, 0.90),
    uplink_slow=(0.4, 0.7),
    flap_share=(0.2, 0.5),
    kinds=HARSH_KINDS,
)
NOISY = Regime(
    "noisy",
    node_spread=0.03,
    link_spread=0.06,
    floor=0.92,
    sigma=0.03,
    heavy_tail_dof=3,
    outlier_per=40,
    congestion=0.05,
    static_routing=True,
    slow=(0.70, 0.85),
    uplink_slow=(0.5, 0.75),
    flap_share=(0.3, 0.6),
    kinds=HARSH_KINDS,
)
OVERSUBSCRIBED = Regime(
    "oversubscribed",
    node_spread=0.02,
    link_spread=0.04,
    floor=0.92,
    sigma=0.025,
    heavy_tail_dof=4,
    outlier_per=80,
    congestion=0.04,
    static_routing=True,
    oversubscription=2,
    slow=(0.70, 0.90),
    uplink_slow=(0.5, 0.8),
    flap_share=(0.2, 0.5),
    kinds=HARSH_KINDS,
)
TAPERED = replace(REALISTIC, name="tapered", oversubscription=2, loaded=True)
"""``realistic`` on a 2:1 tapered tree under static routing, loaded by its own flows: ``plain()`` is ``realistic``."""
TAPERED_AR = replace(
    REALISTIC, name="tapered-ar", static_routing=False, oversubscription=2, loaded=True, hot_spots=0.05
)
"""The same tree under adaptive routing (or ECMP): the load spread over a leaf's uplinks, and hot spots that move."""
HOT_SPOTS = replace(REALISTIC, name="hotspots", static_routing=False, loaded=True, hot_spots=0.05)
"""A non-blocking tree under adaptive routing with hot spots that move: the load never limits it."""
ECMP = replace(REALISTIC, name="ecmp", static_routing=False, loaded=True, ecmp_qps=2)
"""A non-blocking RoCE tree under ECMP: every queue pair keeps the path its hash gave it, so two of a round's flows
that collide on an uplink collide whenever they run together again, and a pair's path is the same in every round."""
TAPERED_ECMP = replace(ECMP, name="tapered-ecmp", oversubscription=2)
"""The same on a 2:1 tapered tree."""
REGIMES = {
    r.name: r
    for r in (KIND, REALISTIC, ADAPTIVE, NOISY, OVERSUBSCRIBED, TAPERED, TAPERED_AR, HOT_SPOTS, ECMP, TAPERED_ECMP)
}
