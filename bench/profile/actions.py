"""What to do about each kind of defect: the profile's ``[actions]`` table, with defaults.

A named defect says which part is broken; its action says what a technician does next, so a vendor ticket
can be written from the report alone. Each key is a defect kind (``link_errors`` is a link whose physical
error counters rose during its own windows: the cable, not the HCA) and each value a sentence with
placeholders:

=================  ==============================================================  ======================
key                default                                                         used for
=================  ==============================================================  ======================
``link_errors``    reseat or replace the cable/transceiver on {node} {device}      a slow or flaky link
                                                                                   whose counters rose
``link``           check the HCA and the switch port of {node} {device}            a slow or flaky link
                                                                                   with clean counters
``errors``         reseat or replace the cable/transceiver on {node} {device}      counters rose, bandwidth
                                                                                   held
``dead``           check the port state and the cable of {node} {device}           no traffic at all
``rail``           check leaf switch for rail {rail}                               every node slow on k
``node``           drain the node and check its PCIe/NUMA/GPU placement            every rail of a node
``pair``           check the switch path between {node} and {peer} on rail {rail}  one pair of nodes
``gpu``            drain {node} and check NVLink of GPU {gpu}                      one GPU, every partner
``gpu_pair``       drain {node} and check NVLink between GPU {gpu} and GPU {peer}  one pair of GPUs
``path``           check that rail {rail} of {node} leaves through {expected}      a rail's bytes on
                   (found {device}): PCIe slot, NCCL_IB_HCA, NCCL_TOPO_FILE        another NIC
=================  ==============================================================  ======================

With the fabric's cabling (``rails --topology``) a link is a cable, and the switches get their own:

=================  ==============================================================  ======================
``cable_errors``   replace the cable between {node} {device} and {switch_port}     a slow or flaky cable
                                                                                   whose counters rose
``cable``          check the HCA {node} {device} and its leaf port {switch_port}   a slow or flaky cable
                                                                                   with clean counters
``cable_dead``     check the port state of {node} {device} and {switch_port}, and  no traffic at all
                   the cable between them
``leaf``           check leaf {switch} (rail {rail}, {unit})                       every node of a unit
                                                                                   on one rail
``uplink``         check the uplinks {uplinks}                                     flows between units on
                                                                                   one rail
``spine``          check spines {switch}: their ports to the leaves                flows between units on
                                                                                   every rail
=================  ==============================================================  ======================

A preflight check that fails (or warns) is a defect of its own kind, keyed by the check's name in the table's
``[actions.checks]`` (a check and a defect kind may share a name: the ``rail`` check is a port, the ``rail``
defect a whole rail):

========================  =========================================================================
key                       default
========================  =========================================================================
``ib-devices``            load the RDMA driver on {node} (modprobe mlx5_ib) and check that ibstat
                          lists its HCAs
``rail-count``            check the rail HCAs of {node}: one is missing, unseated or without its
                          driver ({device})
``rail``                  check the port state, the rate and the cable of {node} {device}
``nccl-ib-hca``           set NCCL_IB_HCA on {node} to the profile's value ('railbench hca' shows
                          the ports a value selects)
``nccl-ib-retry``         unset NCCL_IB_TIMEOUT and NCCL_IB_RETRY_CNT on {node} (NCCL's defaults),
                          or set 18-22
``nccl-socket-ifname``    set NCCL_SOCKET_IFNAME on {node} to an interface that is up and not excluded
``socket-rail``           check the link, the speed and the cable of {node} {device}
``gpu-count``             drain {node}, check the power, seating and driver of its GPUs (lspci,
                          nvidia-smi) and reboot it; replace (RMA) a GPU still missing or not the
                          profile's model (NHC's check_nv_gpu_count, Azure's NHC2009)
``gpu-nic-affinity``      check the PCIe slots of {node}'s GPUs and rail NICs ({device}) and
                          NCCL_TOPO_FILE
``rail-firmware``         update the firmware of {node} {hca} to the version its other rails run
``rail-errors``           reseat or replace the cable/transceiver on {node} {device}
``link-flaps``            check the cable and the switch port of {node} {device}: its link went down
``nccl-log``              check NCCL_IB_HCA and the RDMA stack on {node}: NCCL's log shows it used
                          {device}
``sysfs-tree``            check {node}'s /sys ({device}): an entry is not what the kernel writes
``input``                 fix the input on {node}: its reason says what was refused
``same-versions``         bring {device} to the version the other nodes run (HCA firmware: the
                          vendor's update tool; driver, NCCL, torch: the cluster's image)
``same-answers``          look at {device}'s own check lines: it answers unlike the other nodes
``cabling``               re-cable {device} where the line says (missing, miswired, uplink), or
                          reseat or replace its cable (degraded)
========================  =========================================================================

The GPUDirect path's checks (``railbench check``, and the node-local cause of a slow rail or GPU in ``rails``
and ``accept``) are in the same table and word their action with the part they name: ``{device}`` (``GPU 3``,
``mlx5_4``, ``PCIe switch port 0000:19:01.0``) and ``{pci}``, its PCI address:

====================  ===========================================================================  =================
``pcie-link``         reseat {device} ({pci}) on {node} and check its slot or riser: its PCIe       a link below its
                      link trained below what both ends support                                     width or speed
``pcie-acs``          disable ACS redirection on {device} ({pci}) of {node} (BIOS, or setpci at     ACS on a switch
                      boot) so GPU-NIC traffic stays in the PCIe switch                             port
``iommu``             set the IOMMU of {node} to passthrough (iommu=pt on the kernel command line)  DMA translated
                      or turn it off
``gpu-peer-memory``   load nvidia_peermem on {node} (modprobe nvidia-peermem), or use DMA-BUF       no peer-memory
                      (open GPU kernel module, Linux 5.12+)                                         path
``gpu-xid``           drain {node} and check {device} ({pci}) against NVIDIA's Xid catalogue;       Xid events
                      reset or replace it
``gpu-ecc``           drain {node} and reset {device} ({pci}) to apply its pending row remap,       ECC errors,
                      repair or page retirement; replace it (RMA) if a remap failed or its memory   pending remaps
                      is beyond repair
``gpu-clocks``        check the cooling and power of {device} ({pci}) on {node}: its clocks are      clocks held down
                      held down
``nvlink``            drain {node} and check the NVLinks of {device} ({pci}) (nvidia-smi nvlink     NVLink down,
                      -s); turn MIG off for NCCL jobs                                               MIG on
``fabric-manager``    start nvidia-fabricmanager on {node} and wait until every GPU's fabric state  fabric not ready
                      is Completed
``nic-pcie``          set the PCIe MaxReadReq of {device} ({pci}) on {node} to 4096 (setpci, or     MaxReadReq
                      the HCA's firmware setting)
``port-mtu``          raise the active MTU of {device} on {node} to 4096 (the subnet manager's      MTU below 4096
                      partition MTU; the interface MTU on RoCE)
====================  ===========================================================================  =================

Placeholders: ``{node}``, ``{peer}`` (the other node or GPU), ``{rail}``, ``{gpu}``, ``{device}`` (``mlx5_4 port
1``, ``eth3``), ``{hca}`` (``mlx5_4``), ``{port}``, ``{expected}`` (a ``path`` defect's NIC nearest the rail's
GPU), and with a topology ``{switch}`` (leaf or spine names), ``{switch_port}`` (``leaf-su1-r3 port 7``),
``{uplinks}`` (``leaf-su1-r3 port 33 <-> spine-2 port 1; ...``) and ``{unit}``, and ``{pci}`` (a PCI address). An
unknown key, a value that is not a string, or a placeholder outside that list is refused when the profile loads
(exit 2).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from bench import codec

DEFAULT_ACTIONS: Mapping[str, str] = MappingProxyType(
    {
        "link_errors": "reseat or replace the cable/transceiver on {node} {device}",
        "link": "check the HCA and the switch port of {node} {device}",
        "errors": "reseat or replace the cable/transceiver on {node} {device}",
        "dead": "check the port state and the cable of {node} {device}",
        "rail": "check leaf switch for rail {rail}",
        "node": "drain {node} and check its PCIe/NUMA/GPU placement",
        "pair": "check the switch path between {node} and {peer} on rail {rail}",
        "gpu": "drain {node} and check NVLink of GPU {gpu}",
        "gpu_pair": "drain {node} and check NVLink between GPU {gpu} and GPU {peer}",
        "path": "check that rail {rail} of {node} leaves through {expected} (found {device}): its PCIe slot, "
        "NCCL_IB_HCA, NCCL_TOPO_FILE",
        "cable_errors": "replace the cable between {node} {device} and {switch_port}",
        "cable": "check the HCA {node} {device} and its leaf port {switch_port}",
        "cable_dead": "check the port state of {node} {device} and {switch_port}, and the cable between them",
        "leaf": "check leaf {switch} (rail {rail}, {unit})",
        "uplink": "check the uplinks {uplinks}",
        "spine": "check spines {switch}: their ports to the leaves",
    }
)
"""Every defect kind's default action (the rails test's)."""
DEFAULT_CHECK_ACTIONS: Mapping[str, str] = MappingProxyType(
    {
        "ib-devices": "load the RDMA driver on {node} (modprobe mlx5_ib) and check that ibstat lists its HCAs",
        "rail-count": "check the rail HCAs of {node}: one is missing, unseated or without its driver ({device})",
        "rail": "check the port state, the rate and the cable of {node} {device}",
        "nccl-ib-hca": "set NCCL_IB_HCA on {node} to the profile's value ('railbench hca' shows the ports a "
        "value selects)",
        "nccl-ib-retry": "unset NCCL_IB_TIMEOUT and NCCL_IB_RETRY_CNT on {node} (NCCL's defaults), or set 18-22",
        "nccl-socket-ifname": "set NCCL_SOCKET_IFNAME on {node} to an interface that is up and not excluded",
        "socket-rail": "check the link, the speed and the cable of {node} {device}",
        "gpu-count": "drain {node}, check the power, seating and driver of its GPUs (lspci, nvidia-smi) and "
        "reboot it; replace (RMA) a GPU still missing or not the profile's model",
        "gpu-nic-affinity": "check the PCIe slots of {node}'s GPUs and rail NICs ({device}) and NCCL_TOPO_FILE",
        "rail-firmware": "update the firmware of {node} {hca} to the version its other rails run",
        "rail-errors": "reseat or replace the cable/transceiver on {node} {device}",
        "link-flaps": "check the cable and the switch port of {node} {device}: its link went down",
        "nccl-log": "check NCCL_IB_HCA and the RDMA stack on {node}: NCCL's log shows it used {device}",
        "sysfs-tree": "check {node}'s /sys ({device}): an entry is not what the kernel writes there",
        "input": "fix the input on {node}: its reason says what was refused",
        "same-versions": "bring {device} to the version the other nodes run (HCA firmware: the vendor's update "
        "tool; driver, NCCL, torch: the cluster's image)",
        "same-answers": "look at {device}'s own check lines: it answers unlike the other nodes",
        "cabling": "re-cable {device} where the line says (missing, miswired, uplink), or reseat or replace its "
        "cable (degraded)",
        "pcie-link": "reseat {device} ({pci}) on {node} and check its slot or riser: its PCIe link trained below "
        "what both ends support",
        "pcie-acs": "disable ACS redirection on {device} ({pci}) of {node} (BIOS, or setpci at boot) so GPU-NIC "
        "traffic stays in the PCIe switch",
        "iommu": "set the IOMMU of {node} to passthrough (iommu=pt on the kernel command line) or turn it off",
        "gpu-peer-memory": "load nvidia_peermem on {node} (modprobe nvidia-peermem), or use DMA-BUF (open GPU "
        "kernel module, Linux 5.12+)",
        "gpu-xid": "drain {node} and check {device} ({pci}) against NVIDIA's Xid catalogue; reset or replace it",
        "gpu-ecc": "drain {node} and reset {device} ({pci}) to apply its pending row remap, repair or page "
        "retirement; replace it (RMA) if a remap failed or its memory is beyond repair",
        "gpu-clocks": "check the cooling and power of {device} ({pci}) on {node}: its clocks are held down",
        "nvlink": "drain {node} and check the NVLinks of {device} ({pci}) (nvidia-smi nvlink -s, -e): reset the GPU; "
        "reseat or replace it, or its baseboard, if a link stays down",
        "fabric-manager": "start nvidia-fabricmanager on {node} and wait until every GPU's fabric state is Completed",
        "nic-pcie": "set the PCIe MaxReadReq of {device} ({pci}) on {node} to 4096 (setpci, or the HCA's firmware "
        "setting)",
        "port-mtu": "raise the active MTU of {device} on {node} to 4096 (the subnet manager's partition MTU; the "
        "interface MTU on RoCE)",
    }
)
"""Every preflight check's default action, by the check's name (``[actions.checks]``: a check and a defect kind
may share a name, ``rail``, and mean different parts)."""
PLACEHOLDERS = frozenset(
    {
        "node",
        "peer",
        "rail",
        "gpu",
        "device",
        "hca",
        "port",
        "expected",
        "switch",
        "switch_port",
        "uplinks",
        "unit",
        "pci",
    }
)
MAX_ACTION_CHARS = 300
"""One sentence for a ticket; a longer value is a mistake."""


def _fields(template: str) -> set[str]:
    """The placeholder names of ``template``; ValueError on a malformed one (an unclosed ``{``)."""
    names = set()
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if spec or conversion:
            raise ValueError(f"{{{name}}} takes no format spec or conversion")
        names.add(name)
    return names


def device_words(device: str | None) -> dict[str, str]:
    """``mlx5_4:1`` -> device ``mlx5_4 port 1``, hca ``mlx5_4``, port ``1``; an interface stays itself."""
    if not device:
        return {"device": "its rail device", "hca": "its rail device", "port": "?"}
    hca, colon, port = device.partition(":")
    return {"device": f"{hca} port {port}" if colon else hca, "hca": hca, "port": port or "-"}


@dataclass(frozen=True)
class Actions:
    """The ``[actions]`` table resolved over the defaults (see the module docstring)."""

    templates: Mapping[str, str] = field(default_factory=lambda: DEFAULT_ACTIONS)
    checks: Mapping[str, str] = field(default_factory=lambda: DEFAULT_CHECK_ACTIONS)
    """``[actions.checks]``: what to do about each preflight check that fails or warns, by its name."""

    def __post_init__(self) -> None:
        for name, table, known in (
            ("templates", self.templates, DEFAULT_ACTIONS),
            ("checks", self.checks, DEFAULT_CHECK_ACTIONS),
        ):
            for key, template in table.items():
                if key not in known:
                    raise codec.Invalid((name, key), f"is not one of {', '.join(known)}")
                fault = template_fault(template)
                if fault:
                    raise codec.Invalid((name, key), fault)
        object.__setattr__(self, "templates", MappingProxyType(dict(self.templates)))  # frozen as the record is
        object.__setattr__(self, "checks", MappingProxyType(dict(self.checks)))

    def action(self, key: str, **words: object) -> str:
        """The sentence for defect kind ``key`` with its placeholders filled (absent ones read ``?``)."""
        values = {name: "?" for name in PLACEHOLDERS} | {k: str(v) for k, v in words.items() if v is not None}
        return self.templates.get(key, DEFAULT_ACTIONS[key]).format_map(values)

    def check_action(self, check: str, **words: object) -> str:
        """The sentence for check ``check`` with its placeholders filled (absent ones read ``?``): for a check that
        names its part itself (the GPUDirect path's, with the PCI address)."""
        values = {name: "?" for name in PLACEHOLDERS} | {k: str(v) for k, v in words.items() if v is not None}
        return self.checks.get(check, DEFAULT_CHECK_ACTIONS[check]).format_map(values)

    def for_check(self, check: str, node: str, device: str | None) -> str:
        """What to do about check ``check`` failing or warning on ``node`` (``device``: the part it names);
        empty for a check this table does not know (one a later railbench added)."""
        template = self.checks.get(check, DEFAULT_CHECK_ACTIONS.get(check))
        if template is None:
            return ""
        # a check that names no device (a count, a version) points at its own reason
        words = device_words(device) if device else dict.fromkeys(("device", "hca"), "(the part its reason names)")
        values = {name: "?" for name in PLACEHOLDERS} | {"node": node} | words
        return template.format_map(values)

    @classmethod
    def from_profile(cls, table: object) -> Actions:
        """The ``[actions]`` table as a profile writes it (``kind = "sentence"``, and ``[actions.checks]``) over
        the defaults: the codec's reader of the profile's ``actions`` (``codec.read_by``), refusing at the key
        that is wrong (an unknown kind or check, a value that is no sentence, a placeholder outside the list)."""
        if not isinstance(table, Mapping):
            raise ValueError(f'= {codec.shown(table)} must be a table of defect kind = "sentence"')
        kinds = {str(k): v for k, v in table.items() if k != "checks"}
        checks = table.get("checks", {})
        if not isinstance(checks, Mapping):
            raise codec.Invalid("checks", f'= {codec.shown(checks)} must be a table of check = "sentence"')
        return cls(_sentences(kinds, DEFAULT_ACTIONS, ()), _sentences(checks, DEFAULT_CHECK_ACTIONS, ("checks",)))


def _sentences(table: Mapping[str, object], known: Mapping[str, str], at: tuple[str, ...]) -> Mapping[str, str]:
    """``table``'s sentences over ``known``'s, each checked; a refusal at its key (``at``: the table's own)."""
    unknown = [key for key in table if key not in known]
    if unknown:
        raise codec.UnknownFields(unknown, "", list(known)).inside(*at)
    out = dict(known)
    for key, value in table.items():
        if not isinstance(value, str) or not value.strip():
            raise codec.Invalid((*at, key), f"= {codec.shown(value)} must be a sentence in quotes")
        fault = template_fault(value)
        if fault:
            raise codec.Invalid((*at, key), fault)
        out[key] = value
    return MappingProxyType(out)


def template_fault(template: str) -> str | None:
    """What is wrong with ``template`` as an action, said after its key (``uses {rack}; placeholders: ...``): too
    long, a malformed or unknown placeholder; None when it is a short sentence of known placeholders."""
    if len(template) > MAX_ACTION_CHARS:
        return f"is {len(template)} characters: {MAX_ACTION_CHARS} at most"
    try:
        unknown = sorted(_fields(template) - PLACEHOLDERS)
    except ValueError as exc:
        return f"= {template[:60]!r}: {exc}; write placeholders as {{node}}"
    if unknown:
        return f"uses {', '.join('{' + u + '}' for u in unknown)}; placeholders: " + ", ".join(
            "{" + p + "}" for p in sorted(PLACEHOLDERS)
        )
    return None
