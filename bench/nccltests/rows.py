"""One line of an nccl-tests table: a data row in any of its layouts, and the ``# nThread`` header.

Every number goes through ``bench.bounded`` (refused with file, line and field when it is huge, not finite or
negative), with fast paths for the plain digits that make up nearly every log.
"""

from __future__ import annotations

import re

from bench.bounded import Sign, Where, parse_float, parse_int
from bench.nccltests.model import Header, Number, Placement, PlacementResult, Row

MAX_BYTES = 1 << 50
"""No message size or element count is larger (a petabyte)."""
MAX_COUNT = 1 << 20
"""No rank, thread or GPU count is larger."""

_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]")
_PLAIN = re.compile(r"[0-9]{1,15}(?:\.[0-9]{0,15})?")
_NUMBER = re.compile(
    r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?(?:inf|infinity|nan)", re.IGNORECASE
)
_HEADER_FIELDS = {
    "min_bytes": re.compile(r"minBytes\s+([0-9]+)"),
    "max_bytes": re.compile(r"maxBytes\s+([0-9]+)"),
    "validation": re.compile(r"validation:\s*([0-9]+)"),
    "graph": re.compile(r"graph:\s*([0-9]+)"),
}
_STEP = re.compile(r"step:\s*([0-9]+)\((factor|bytes)\)")
_ITERS = re.compile(r"(warmup |agg )?iters:\s*([0-9]+)")


def is_number(token: str) -> bool:
    return _NUMBER.fullmatch(token) is not None


def _without_timestamp(line: str) -> str:
    """The row without the ``YYYY-MM-DD hh:mm:ss`` that ``-S`` style wrappers append (fixed width, no scan)."""
    body = line.rstrip()
    if len(body) > 20 and body[-20].isspace() and _TIMESTAMP.fullmatch(body[-19:]):
        return body[:-19]
    return body


def whole_number(text: str, source: str, field: str, line: int, *, maximum: int, sign: Sign = "non-negative") -> int:
    """``bench.bounded.parse_int``, with a fast path for the plain digits that make up nearly every log."""
    if len(text) <= 15 and text.isascii() and text.isdigit() and (value := int(text)) <= maximum:
        return value
    return parse_int(text, Where(source or "log", field, line), maximum=maximum, sign=sign)


def _real(text: str, source: str, field: str, line: int, maximum: float | None = None) -> float:
    """``bench.bounded.parse_float`` (finite, non-negative), with a fast path for plain decimals."""
    if _PLAIN.fullmatch(text):
        value = float(text)
        if maximum is None or value <= maximum:
            return value
    if not is_number(text):
        raise ValueError(f"line {line}: {field} {text[:20]!r} is not a number")
    return parse_float(text, Where(source or "log", field, line), maximum=maximum)


def parse_row(line: str, line_no: int = 0, source: str = "") -> Row:
    """One data row, in any nccl-tests layout.

    ValueError when its shape is damaged (cut off mid-line, a word where a number belongs): the caller skips
    it. InputError when a number is there but cannot be true (huge, inf/nan, negative): the log is refused.
    """
    tokens = _without_timestamp(line).split()
    if len(tokens) < 7:
        raise ValueError(f"line {line_no}: not a whole nccl-tests row")
    size = whole_number(tokens[0], source, "size", line_no, maximum=MAX_BYTES)
    count = whole_number(tokens[1], source, "count", line_no, maximum=MAX_BYTES)
    dtype, rest = tokens[2], tokens[3:]
    redop = rest.pop(0) if rest and not is_number(rest[0]) else ""  # old alltoall prints no redop
    # Then an optional root and 4 fields per half (8 with -I per-iteration columns). Times printed with
    # %.0f look like integers, so the root is recognised by the field count, not by its form.
    root = None
    if len(rest) % 4 == 1:
        if not is_number(rest[0]):
            raise ValueError(f"line {line_no}: root {rest[0][:20]!r} is not a number")
        root = whole_number(rest.pop(0), source, "root", line_no, maximum=MAX_COUNT, sign="any")
    width = 8 if len(rest) == 16 else 4
    if len(rest) not in (width, 2 * width):
        raise ValueError(f"line {line_no}: {len(tokens)} fields are not a whole nccl-tests row")
    halves = [rest[i : i + width] for i in range(0, len(rest), width)]
    # Trace replay prints only the in-place half.
    placements: tuple[Placement, ...] = ("out-of-place", "in-place") if len(halves) == 2 else ("in-place",)

    def number(text: str, name: str) -> Number:
        return Number.parse(text, _real(text, source, name, line_no))

    def wrong(text: str, name: str) -> int | None:
        # The old format's "error" column is the largest error, printed like 0e+00 or 3e+02.
        return None if text.upper() == "N/A" else round(_real(text, source, name, line_no, maximum=1e18))

    measurements = tuple(
        PlacementResult(
            placement=placement,
            time_us=number(half[0], f"{placement} time"),
            algbw_GBps=number(half[1], f"{placement} algbw"),
            busbw_GBps=number(half[2], f"{placement} busbw"),
            wrong=wrong(half[3], f"{placement} #wrong"),
        )
        for placement, half in zip(placements, halves, strict=True)
    )
    return Row(size, count, dtype, redop, root, measurements, line_no)


def layout(row: Row) -> tuple[str, ...]:
    return tuple(m.placement for m in row.measurements)


def parse_header(match: re.Match[str], where: Where) -> Header:
    rest = match.group(3)

    def whole(text: str, field: str) -> int:
        return parse_int(text, Where(where.source, field, where.line), maximum=MAX_BYTES)

    def num(key: str) -> int | None:
        found = _HEADER_FIELDS[key].search(rest)
        return whole(found.group(1), key) if found else None

    step = _STEP.search(rest)
    step_value = whole(step.group(1), "step") if step else None
    iters = {(k or "").strip(): whole(v, f"{k or ''}iters") for k, v in _ITERS.findall(rest)}
    return Header(
        nthreads=parse_int(match.group(1), Where(where.source, "nThread", where.line), maximum=MAX_COUNT),
        ngpus=parse_int(match.group(2), Where(where.source, "nGpus", where.line), maximum=MAX_COUNT),
        min_bytes=num("min_bytes"),
        max_bytes=num("max_bytes"),
        step_factor=step_value if step and step.group(2) == "factor" else None,
        step_bytes=step_value if step and step.group(2) == "bytes" else None,
        warmup_iters=iters.get("warmup"),
        iters=iters.get(""),
        agg_iters=iters.get("agg"),
        validation=num("validation"),
        graph=num("graph"),
    )
