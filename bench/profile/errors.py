"""The error counters railbench reads, and the profile's ``[errors]`` table that judges them.

Counter names are the kernel's sysfs file names. The IB PortCounters widths are the InfiniBand
Architecture's, as the kernel's ``drivers/infiniband/core/sysfs.c`` declares them (``PORT_PMA_ATTR``): such a
counter stops at ``2**width - 1`` and stays there until it is cleared, so a value at its maximum says
"at least this many", never how many arrived during a window.

``[errors]`` keys (every number finite and non-negative):

=========================  ==========================================================================
``window_s``               length of ``railbench check``'s idle window between its two samples (default 3)
``kernel_log_window_s``    how far back ``check`` looks for link flaps in the kernel log (default 3600)
``fail_on_rise``           counters whose increase during the idle window fails the check (default:
                           ``link_downed``, ``symbol_error``, ``link_error_recovery``,
                           ``local_link_integrity_errors``, ``carrier_changes``); any other rise warns
``max_count_severity``     ``warn`` (default) or ``fail``: what a count above ``[errors.max_count]`` is
``[errors.max_count]``     ``counter = limit``: a rail whose count (since the counters were last cleared)
                           is above the limit is flagged
``fail_on_errors``         ``rails``/``accept``: whether a link whose ``fail_on_rise`` counters rose while its
                           bandwidth held (a defect of kind ``errors``) fails the verdict (default false: it
                           is named and warned about)
=========================  ==========================================================================

The same ``fail_on_rise`` counters decide, in ``rails`` and ``accept``, whether a named link had physical
errors during the test (its action is then the cable, not the HCA) and which links are named
``errors`` although their bandwidth held.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from bench import codec

IB_PORT_COUNTERS: Mapping[str, int] = MappingProxyType(
    {
        "symbol_error": 16,
        "link_error_recovery": 8,
        "link_downed": 8,
        "port_rcv_errors": 16,
        "port_rcv_remote_physical_errors": 16,
        "port_xmit_discards": 16,
        "local_link_integrity_errors": 4,
        "excessive_buffer_overrun_errors": 4,
        "port_rcv_constraint_errors": 8,
        "port_xmit_constraint_errors": 8,
    }
)
"""``ports/<p>/counters/<name>`` -> its width in bits (IBA PortCounters)."""

HW_COUNTERS: tuple[str, ...] = (
    "out_of_sequence",
    "packet_seq_err",
    "rnr_nak_retry_err",
    "local_ack_timeout_err",
    "implied_nak_seq_err",
    "req_cqe_error",
    "resp_cqe_error",
)
"""``ports/<p>/hw_counters/<name>``, read where the driver has them (mlx5); 64-bit."""

NET_STATISTICS: tuple[str, ...] = ("rx_errors", "tx_errors", "rx_dropped", "tx_dropped", "rx_crc_errors")
"""``class/net/<if>/statistics/<name>``."""
CARRIER_CHANGES = "carrier_changes"
"""``class/net/<if>/carrier_changes``: every carrier up and down since the interface was created."""

ALL_COUNTERS: frozenset[str] = frozenset({*IB_PORT_COUNTERS, *HW_COUNTERS, *NET_STATISTICS, CARRIER_CHANGES})

DEFAULT_FAIL_ON_RISE: tuple[str, ...] = (
    "link_downed",
    "symbol_error",
    "link_error_recovery",
    "local_link_integrity_errors",
    CARRIER_CHANGES,
)
MAX_WINDOW_S = 600.0
"""An idle window longer than ten minutes is a typo, not a preflight."""
MAX_LOG_WINDOW_S = 90 * 86400.0
Severity = Literal["warn", "fail"]


def saturation_value(name: str) -> int | None:
    """The value at which ``name`` sticks (``2**width - 1``), or None for a counter that does not saturate."""
    width = IB_PORT_COUNTERS.get(name)
    return None if width is None else (1 << width) - 1


@dataclass(frozen=True)
class ErrorLimits:
    """The profile's ``[errors]`` table (see the module docstring), read by the codec: each key of its type,
    the windows finite, non-negative and plausible, every counter one railbench reads."""

    window_s: float = field(default=3.0, metadata=codec.bounded(maximum=MAX_WINDOW_S))
    """Seconds between ``check``'s two samples of the error counters."""
    kernel_log_window_s: float = field(default=3600.0, metadata=codec.bounded(maximum=MAX_LOG_WINDOW_S))
    """Seconds back from now in which a link-flap line in the kernel log counts."""
    fail_on_rise: tuple[str, ...] = DEFAULT_FAIL_ON_RISE
    """Counters whose rise during the idle window fails; a rise of any other counter warns."""
    max_count: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """Counter -> the largest count a healthy rail may show (``[errors.max_count]``)."""
    max_count_severity: Severity = "warn"
    fail_on_errors: bool = False
    """Whether a rails ``errors`` defect (counters rose, bandwidth held) fails the verdict."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_count", MappingProxyType(dict(self.max_count)))  # frozen as the record is
        unknown = [name for name in self.fail_on_rise if name not in ALL_COUNTERS]
        if unknown:
            raise codec.Invalid("fail_on_rise", f"holds {codec.shown(list(self.fail_on_rise))}: {_unread(unknown)}")
        for name, count in self.max_count.items():
            if name not in ALL_COUNTERS:
                raise codec.Invalid(("max_count", name), f"= {count}: {_unread([name])}")
            if count < 0:
                raise codec.Invalid(("max_count", name), f"= {count} must be a whole number >= 0")


def _unread(names: Sequence[str]) -> str:
    return f"{', '.join(names)} is not an error counter railbench reads; known: {', '.join(sorted(ALL_COUNTERS))}"
