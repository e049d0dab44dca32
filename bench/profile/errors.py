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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from bench.bounded import Where, finite
from bench.exits import UserError
from bench.jsondoc import Parsed

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
    """The profile's ``[errors]`` table (see the module docstring)."""

    window_s: float = 3.0
    """Seconds between ``check``'s two samples of the error counters."""
    kernel_log_window_s: float = 3600.0
    """Seconds back from now in which a link-flap line in the kernel log counts."""
    fail_on_rise: tuple[str, ...] = DEFAULT_FAIL_ON_RISE
    """Counters whose rise during the idle window fails; a rise of any other counter warns."""
    max_count: Mapping[str, int] = field(default_factory=dict)
    """Counter -> the largest count a healthy rail may show."""
    max_count_severity: Severity = "warn"
    fail_on_errors: bool = False
    """Whether a rails ``errors`` defect (counters rose, bandwidth held) fails the verdict."""

    def __post_init__(self) -> None:
        if self.max_count_severity not in ("warn", "fail"):
            raise UserError(f"[errors] max_count_severity {self.max_count_severity!r} must be warn or fail")
        unknown = sorted({*self.fail_on_rise, *self.max_count} - ALL_COUNTERS)
        if unknown:
            raise UserError(
                f"[errors] names unknown counters {', '.join(unknown)}; known: {', '.join(sorted(ALL_COUNTERS))}"
            )

    @classmethod
    def from_table(cls, table: Parsed, where: str, line_of: Callable[[str, str], int]) -> ErrorLimits:
        """The limits in a parsed ``[errors]`` table; UserError naming ``where`` and the line when bad."""
        known = {"window_s", "kernel_log_window_s", "fail_on_rise", "max_count", "max_count_severity", "fail_on_errors"}
        for key in table:
            if key not in known:
                raise UserError(
                    f"{where}:{line_of(key, 'errors')}: unknown [errors] key {key!r}; known keys: "
                    + ", ".join(sorted(known))
                )
        defaults = cls()

        def seconds(key: str, maximum: float, default: float) -> float:
            if key not in table:
                return default
            return _number(table[key], Where(where, f"[errors] {key}", line_of(key, "errors")), maximum)

        window_s = seconds("window_s", MAX_WINDOW_S, defaults.window_s)
        kernel_log_window_s = seconds("kernel_log_window_s", MAX_LOG_WINDOW_S, defaults.kernel_log_window_s)
        fail_on_rise = _fail_on_rise(table, where, line_of, defaults.fail_on_rise)
        severity = _severity(table, where, line_of, defaults.max_count_severity)
        fail_on_errors = _fail_on_errors(table, where, line_of, defaults.fail_on_errors)
        counts = _max_counts(table, where, line_of)
        return cls(
            window_s=window_s,
            kernel_log_window_s=kernel_log_window_s,
            fail_on_rise=fail_on_rise,
            max_count=MappingProxyType(counts),
            max_count_severity=severity,
            fail_on_errors=fail_on_errors,
        )


def _number(value: object, where: Where, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where} = {value!r} must be a number of seconds")
    return finite(float(value), where, sign="non-negative", maximum=maximum)


def _known(names: Sequence[str], where: str, line: int) -> None:
    unknown = [n for n in names if n not in ALL_COUNTERS]
    if unknown:
        raise UserError(
            f"{where}:{line}: {', '.join(unknown)} is not an error counter railbench reads; "
            f"known: {', '.join(sorted(ALL_COUNTERS))}"
        )


# The [errors] keys past the windows, each checked in the order ErrorLimits.from_table reads them.
_LineOf = Callable[[str, str], int]


def _fail_on_rise(table: Parsed, where: str, line_of: _LineOf, default: tuple[str, ...]) -> tuple[str, ...]:
    if "fail_on_rise" not in table:
        return default
    names = table["fail_on_rise"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UserError(f"{where}:{line_of('fail_on_rise', 'errors')}: fail_on_rise must be a list of counters")
    fail_on_rise = tuple(str(n) for n in names)
    _known(fail_on_rise, where, line_of("fail_on_rise", "errors"))
    return fail_on_rise


def _severity(table: Parsed, where: str, line_of: _LineOf, default: Severity) -> Severity:
    if "max_count_severity" not in table:
        return default
    value = table["max_count_severity"]
    if value != "warn" and value != "fail":
        line = line_of("max_count_severity", "errors")
        raise UserError(f'{where}:{line}: max_count_severity = {value!r} must be "warn" or "fail"')
    return "warn" if value == "warn" else "fail"


def _fail_on_errors(table: Parsed, where: str, line_of: _LineOf, default: bool) -> bool:
    if "fail_on_errors" not in table:
        return default
    flag = table["fail_on_errors"]
    if not isinstance(flag, bool):
        line = line_of("fail_on_errors", "errors")
        raise UserError(f"{where}:{line}: fail_on_errors = {flag!r} must be true or false")
    return flag


def _max_counts(table: Parsed, where: str, line_of: _LineOf) -> dict[str, int]:
    """``[errors.max_count]``: counter -> the count above which it is reported, each a whole number >= 0."""
    limits = table.get("max_count", {})
    if not isinstance(limits, Mapping):
        raise UserError(f"{where}:{line_of('max_count', 'errors')}: [errors.max_count] must be a table")
    counts: dict[str, int] = {}
    for name, value in limits.items():
        line = line_of(name, "errors.max_count")
        _known([name], where, line)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UserError(f"{where}:{line}: [errors.max_count] {name} = {value!r} must be a whole number >= 0")
        counts[str(name)] = value
    return counts
