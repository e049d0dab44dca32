"""NVIDIA's Xid catalogue: what each Xid means and what NVIDIA tells an operator to do about it.

Source: "Analyzing Xid Errors with the Xid Catalog", docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html
(the catalogue for Ampere and newer GPUs: Xids 1-172, each row naming the driver branch it came with, R565 to
R575, and for Blackwell's NVLink Xids 144-150 the subcode layout of drivers before and from R575). Each row gives
a *Resolution Bucket (Immediate Action)*; :data:`CATALOGUE` keeps the rows an operator of a GPU node meets (the
"Unused" rows are left out) with their mnemonic's words and that bucket.

What fails a node is the bucket, not a list of favourite numbers: a GPU reset, a node reboot (``RESTART_BM``)
or one of NVIDIA's hardware workflows (Xid 48's ECC flow, Xid 74's NVLink flow) takes the GPU out of service;
``RESTART_APP`` (the program's fault, the GPU healthy: 13, 31, 94) and ``IGNORE`` (informational: 43, 63, 92)
do not. The NVLink5 Xids 144-150 carry their bucket per subcode and error status, and the driver prints the
row's severity in the line itself (``... NETIR_LINK_EVT Fatal XC0 ...``, ``... SAW_MVB Nonfatal XC0 ...``):
that word decides them. Xid 154 only summarises the recovery action another Xid needs; its line names it
("GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset Required)").

SXids are the NVSwitch's own events, documented in NVIDIA's Fabric Manager user guide ("NVSwitch SXid errors"):
each event's first line says ``Fatal`` or ``Non-fatal``; a fatal one stalls the NVLink traffic through that
switch until the switches and GPUs are reset.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE = "NVIDIA Xid catalogue (docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html; rows to R575)"


@dataclass(frozen=True)
class Entry:
    meaning: str
    bucket: str
    """The catalogue's Resolution Bucket (Immediate Action)."""


def _e(meaning: str, bucket: str) -> Entry:
    return Entry(meaning, bucket)


CATALOGUE: dict[int, Entry] = {
    8: _e("GPU stopped processing", "RESTART_APP"),
    11: _e("invalid or corrupted push buffer stream", "RESTART_APP"),
    13: _e("graphics engine exception", "RESTART_APP"),
    25: _e("invalid or illegal push buffer stream", "RESTART_APP"),
    31: _e("GPU memory page fault", "RESTART_APP"),
    32: _e("invalid or corrupted push buffer stream", "RESTART_APP"),
    37: _e("driver firmware error", "IGNORE"),
    38: _e("driver firmware error", "IGNORE"),
    39: _e("copy engine exception", "RESTART_APP"),
    40: _e("copy engine exception", "RESTART_APP"),
    41: _e("copy engine exception", "RESTART_APP"),
    43: _e("GPU stopped processing (the program's fault; the GPU stays healthy)", "IGNORE"),
    44: _e("graphics engine fault during context switch", "IGNORE"),
    45: _e("preemptive cleanup after a previous error", "WORKFLOW_XID_45"),
    46: _e("GPU stopped processing", "RESET_GPU"),
    48: _e("double-bit ECC error", "WORKFLOW_XID_48"),
    54: _e("auxiliary power is not connected to the GPU board", "CHECK_MECHANICALS"),
    60: _e("video processor exception", "RESTART_APP"),
    62: _e("internal micro-controller halt", "RESET_GPU"),
    63: _e("GPU memory remapping event", "IGNORE"),
    64: _e("GPU memory remapping failure", "RESET_GPU"),
    66: _e("illegal access by driver", "IGNORE"),
    67: _e("illegal access by driver", "IGNORE"),
    68: _e("NVDEC0 exception", "RESTART_APP"),
    69: _e("graphics engine class error", "RESTART_APP"),
    74: _e("NVLink error", "WORKFLOW_NVLINK_ERR"),
    78: _e("vGPU start error", "UPDATE_SWFW"),
    79: _e("GPU has fallen off the bus", "RESTART_BM"),
    80: _e("corrupted data sent to GPU", "RESTART_APP"),
    92: _e("high single-bit ECC error rate", "IGNORE"),
    93: _e("non-fatal violation of the provisioned InfoROM wear limit", "IGNORE"),
    94: _e("contained memory error (one application; reset the GPU when convenient)", "RESTART_APP"),
    95: _e("uncontained memory error", "RESET_GPU"),
    109: _e("context switch timeout", "RESET_GPU"),
    110: _e("security fault", "RESET_GPU"),
    119: _e("GSP RPC timeout", "RESET_GPU"),
    120: _e("GSP error", "RESET_GPU"),
    121: _e("C2C error (corrected)", "IGNORE"),
    136: _e("NVLink training failed", "RESET_GPU"),
    137: _e("NVLink privilege error", "IGNORE"),
    140: _e("unrecovered ECC error", "RESET_GPU"),
    141: _e("CUDA fast path error", "IGNORE"),
    143: _e("GPU initialization error", "RESET_GPU"),
    144: _e("NVLink SAW error", "WORKFLOW_NVLINK5_ERR"),
    145: _e("NVLink RLW error", "WORKFLOW_NVLINK5_ERR"),
    146: _e("NVLink TLW error", "WORKFLOW_NVLINK5_ERR"),
    147: _e("NVLink TREX error", "WORKFLOW_NVLINK5_ERR"),
    148: _e("NVLink NVLPW_CTRL error", "WORKFLOW_NVLINK5_ERR"),
    149: _e("NVLink NETIR error", "WORKFLOW_NVLINK5_ERR"),
    150: _e("NVLink MSE error", "WORKFLOW_NVLINK5_ERR"),
    151: _e("key rotation error", "RESTART_VM"),
    154: _e("GPU recovery action changed", "XID_154"),
    155: _e("NVLink software-defined error (a link taken down on purpose)", "RESET_GPU"),
    156: _e("resource retirement event", "RESET_GPU"),
    157: _e("resource retirement failure", "IGNORE"),
    158: _e("GPU fatal timeout", "RESET_GPU"),
    159: _e("CHI non-data error", "CHECK_UVM"),
}
"""Xid -> its meaning and Immediate Action bucket, as the catalogue gives them."""

FAIL_BUCKETS = frozenset({"RESET_GPU", "RESTART_BM", "WORKFLOW_XID_48", "WORKFLOW_NVLINK_ERR", "CHECK_MECHANICALS"})
"""Buckets whose Xid takes the GPU out of service until it is reset, rebooted or repaired."""

NVLINK5 = range(144, 151)
"""Blackwell's NVLink Xids: their severity is the word the driver prints in the line."""

BUCKET_WORDS: dict[str, str] = {
    "RESET_GPU": "reset the GPU",
    "RESTART_BM": "reboot the node (bare-metal restart)",
    "WORKFLOW_XID_48": "reset the GPU; follow NVIDIA's Xid 48 ECC workflow (RMA past its thresholds)",
    "WORKFLOW_NVLINK_ERR": "reset the GPU or reboot the node; if it repeats, check the NVLink and the GPU at its end",
    "WORKFLOW_NVLINK5_ERR": "reset the GPU (NVIDIA's NVLink5 workflow); if it repeats, check the link and its peer",
    "CHECK_MECHANICALS": "check the GPU board's auxiliary power connection",
    "RESTART_APP": "restart the application",
    "IGNORE": "no action",
    "WORKFLOW_XID_45": "follow the Xid it accompanies",
    "UPDATE_SWFW": "update the driver or firmware",
    "RESTART_VM": "restart the VM",
    "CHECK_UVM": "check UVM",
    "XID_154": "the recovery action it names",
}

SXID_FATAL_ACTION = "reset the NVSwitches and GPUs (restart the node); if it repeats, replace the NVSwitch board"
SXID_NONFATAL_ACTION = "no action; watch for it repeating"

FAILING_RECOVERY = {
    "GPU Reset Required": "reset the GPU",
    "Node Reboot Required": "reboot the node",
    "Drain P2P": "drain the GPU's peer-to-peer traffic",
    "Drain and Reset": "drain the GPU's peer-to-peer traffic and reset it",
    "OS Reboot": "reboot the node",
}
"""Xid 154's recovery actions (the catalogue's list; ``OS Reboot`` as newer drivers print it) and their words;
``None`` is the GPU recovered."""


def entry(code: int) -> Entry:
    return CATALOGUE.get(code, Entry("not in NVIDIA's Xid catalogue", "CONTACT_SUPPORT"))


def fails(code: int) -> bool:
    """Whether the catalogue's Immediate Action for ``code`` takes the GPU out of service."""
    return entry(code).bucket in FAIL_BUCKETS


def default_fail_xids() -> tuple[int, ...]:
    """The Xids a profile fails a node for unless it says otherwise: those whose bucket :func:`fails`."""
    return tuple(code for code in sorted(CATALOGUE) if fails(code))
