"""The JSON file that ``nccl-tests -J FILE.json`` writes (format versions 1 to 3, nccl-tests src/util.cu).

Shape: ``{version, start_time, args, env, nccl_version, config: {nthreads, ngpus, minimum_bytes, ...,
devices: [{rank, group, pid, hostname, device, device_hex, device_info}]}, results: [{size, count, type,
redop, root, out_of_place: {time, alg_bw, bus_bw, nwrong}, in_place: {...}, ...}], out_of_bounds: {count,
okay}, average_bus_bandwidth: {bandwidth, okay}, errors: [...], end_time}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from bench.bounded import InputError, Sign, Where, ascii_digits, finite, parse_float, parse_int
from bench.exits import UserError
from bench.nccltests.infer import TableEvidence, finish, mentions
from bench.nccltests.model import (
    Device,
    Header,
    NcclTestsLog,
    Number,
    Placement,
    PlacementResult,
    Quoted,
    Row,
    collective_from_program,
    nccl_version_from_code,
)
from bench.textlines import MAX_LINE_CHARS

# nccl-tests writes doubles with "%lf": six decimals.
_JSON_HALF_UNIT = 5e-7
MAX_JSON_BYTES = 64 << 20
"""A -J file holds one run: a few KiB per size. Larger is not an nccl-tests file (and is not read whole)."""
_MAX_BYTES = 1 << 50
_MAX_COUNT = 1 << 20


@dataclass(frozen=True)
class _Digits:
    """An integer too long to convert safely, kept as its text until a field reader refuses it by name."""

    text: str


def _int_hook(text: str) -> int | _Digits:
    return int(text) if len(text) <= 64 else _Digits(text)


def _constant_hook(text: str) -> float:
    return float(text)  # NaN, Infinity: kept, then refused by the field that reads them


def _decoder() -> json.JSONDecoder:
    return json.JSONDecoder(parse_int=_int_hook, parse_constant=_constant_hook)


def _load_json_prefix(text: str) -> tuple[dict[str, object], bool]:
    """The top-level object of a -J file; a file cut off mid-write keeps every complete result.

    nccl-tests streams the file as it runs, so a killed run leaves a prefix: read it key by key and
    element by element, and stop at the first incomplete value.
    """
    decoder = _decoder()
    whole = _whole_json(decoder, text)
    if whole is not None:
        return whole, False
    out: dict[str, object] = {}
    i = _skip(text, 0)
    if not text.startswith("{", i):
        raise UserError("the file is neither nccl-tests text nor JSON: pass stdout or the -J file")
    i += 1
    try:
        while True:
            i = _skip(text, i)
            if text.startswith("}", i):
                return out, False  # whole, but the first decode failed on trailing data
            key, i = decoder.raw_decode(text, i)
            i = _skip(text, i)
            if not text.startswith(":", i):
                return out, True
            i = _skip(text, i + 1)
            if key == "results" and text.startswith("[", i):
                results: list[object] = []
                out[key] = results
                i = _results_prefix(decoder, text, i, results)
            else:
                out[str(key)], i = decoder.raw_decode(text, i)
            i = _skip(text, i)
            if text.startswith(",", i):
                i += 1
    except (json.JSONDecodeError, IndexError):
        return out, True
    except RecursionError:
        raise InputError("the JSON file nests deeper than any nccl-tests -J file: it is damaged") from None


def _whole_json(decoder: json.JSONDecoder, text: str) -> dict[str, object] | None:
    """The file's object when the whole file decodes; None when it does not (a prefix, or trailing data)."""
    try:
        obj = decoder.decode(text)
    except RecursionError:
        raise InputError("the JSON file nests deeper than any nccl-tests -J file: it is damaged") from None
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        raise UserError("the JSON file does not hold an object: pass a file written by nccl-tests -J")
    return obj


def _skip(text: str, i: int) -> int:
    """The first position at or after ``i`` that is not JSON white space."""
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _results_prefix(decoder: json.JSONDecoder, text: str, i: int, results: list[object]) -> int:
    """The ``results`` array opening at ``i``, element by element into ``results`` (the caller's, so a cut
    element keeps the ones before it); returns the position after the array. JSONDecodeError or IndexError
    where the file stops inside it."""
    i = _skip(text, i + 1)
    while not text.startswith("]", i):
        item, i = decoder.raw_decode(text, i)
        results.append(item)
        i = _skip(text, i)
        i = _skip(text, i + 1) if text.startswith(",", i) else i
    return i + 1


def _json_number(value: object, where: Where, *, sign: Sign = "non-negative", maximum: float | None = None) -> float:
    """A JSON value that must be a finite number (nccl-tests writes some as strings)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{where} is {value!r}, not a number")
    if isinstance(value, _Digits):
        return parse_int(value.text, where, maximum=_MAX_BYTES)  # refused: too long
    if isinstance(value, (int, float)):
        return finite(float(value), where, sign=sign, maximum=maximum)
    if isinstance(value, str):
        return parse_float(value, where, sign=sign, maximum=maximum)
    raise ValueError(f"{where} is {type(value).__name__}, not a number")


def _json_int(value: object, where: Where, *, sign: Sign = "non-negative", maximum: int = _MAX_BYTES) -> int:
    if isinstance(value, str):
        return parse_int(value, where, sign=sign, maximum=maximum)
    number = _json_number(value, where, sign=sign, maximum=maximum)
    if number != int(number):
        raise ValueError(f"{where} is {number!r}, not a whole number")
    return int(number)


def _number(value: object, where: Where) -> Number:
    return Number(_json_number(value, where), _JSON_HALF_UNIT)


def _optional_int(mapping: Mapping[str, object], key: str, where: Where | None = None) -> int | None:
    value = mapping.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float, _Digits)):
        return None
    return _json_int(value, where or Where("JSON file", key), maximum=_MAX_BYTES)


def _int_or(mapping: Mapping[str, object], key: str, default: int, where: Where | None = None) -> int:
    value = _optional_int(mapping, key, where)
    return default if value is None else value


def _list(mapping: Mapping[str, object], key: str) -> list[object]:
    value = mapping.get(key)
    return value if isinstance(value, list) else []


def _json_measurement(placement: Placement, half: object, where: str) -> PlacementResult | None:
    if not isinstance(half, dict):
        return None  # null: nccl-tests skipped this half (trace replay)
    wrong = half.get("nwrong")

    def at(key: str) -> Where:
        return Where(where, f"{placement.replace('-', '_')}.{key}")

    return PlacementResult(
        placement=placement,
        time_us=_number(half.get("time", half.get("cpu_time")), at("time")),
        algbw_GBps=_number(half.get("alg_bw"), at("alg_bw")),
        busbw_GBps=_number(half.get("bus_bw"), at("bus_bw")),
        wrong=None if wrong is None or wrong == "N/A" else round(_json_number(wrong, at("nwrong"), maximum=1e18)),
    )


def _json_row(number: int, item: Mapping[str, object], source: str) -> Row:
    where = f"{source or 'JSON file'}: results[{number - 1}]"
    root = item.get("root", "")
    halves = (
        _json_measurement("out-of-place", item.get("out_of_place"), where),
        _json_measurement("in-place", item.get("in_place"), where),
    )
    has_root = isinstance(root, (int, _Digits)) or (isinstance(root, str) and ascii_digits(root.strip().lstrip("-")))
    return Row(
        bytes=_json_int(item["size"], Where(where, "size")),
        count=_json_int(item["count"], Where(where, "count")),
        dtype=str(item.get("type", ""))[:40],
        redop=str(item.get("redop", "")).strip()[:40],
        root=_json_int(root, Where(where, "root"), sign="any", maximum=_MAX_COUNT) if has_root else None,
        measurements=tuple(m for m in halves if m is not None),
        line=number,
    )


def _json_device(index: int, d: Mapping[str, object], source: str) -> Device:
    def at(key: str) -> Where:
        return Where(f"{source or 'JSON file'}: config.devices[{index}]", key)

    return Device(
        rank=_int_or(d, "rank", index, at("rank")),
        group=_int_or(d, "group", 0, at("group")),
        pid=_int_or(d, "pid", 0, at("pid")),
        host=str(d.get("hostname", ""))[:255],
        device=_int_or(d, "device", 0, at("device")),
        bus_id=str(d.get("device_hex", ""))[:64],
        gpu=str(d.get("device_info", ""))[:255],
    )


def _json_header(config: Mapping[str, object]) -> Header:
    return Header(
        nthreads=_int_or(config, "nthreads", 1, Where("JSON file", "config.nthreads")),
        ngpus=_int_or(config, "ngpus", 1, Where("JSON file", "config.ngpus")),
        min_bytes=_optional_int(config, "minimum_bytes"),
        max_bytes=_optional_int(config, "maximum_bytes"),
        step_factor=_optional_int(config, "step_factor"),
        step_bytes=_optional_int(config, "step_bytes"),
        warmup_iters=_optional_int(config, "warmup_iters"),
        iters=_optional_int(config, "iterations"),
        agg_iters=_optional_int(config, "aggregated_iterations"),
        validation=_optional_int(config, "validation"),
        graph=_optional_int(config, "graph"),
    )


def _average_busbw(data: Mapping[str, object], source: str) -> float | None:
    """The file's average bus bandwidth, None where it has none."""
    # Version 1 spelled these keys "average_bus_bandwidith" and "bandwidith".
    avg = data.get("average_bus_bandwidth", data.get("average_bus_bandwidith"))
    if not isinstance(avg, dict):
        return None
    value = avg.get("bandwidth", avg.get("bandwidith"))
    at = Where(source or "JSON file", "average_bus_bandwidth")
    return _json_number(value, at) if isinstance(value, (int, float)) else None


def parse_json(
    text: str, *, source: str = "", collective: str | None = None, nranks: int | None = None
) -> NcclTestsLog:
    """Parse the file that ``nccl-tests -J FILE.json`` writes (format versions 1 to 3)."""
    data, cut = _load_json_prefix(text)
    raw_config = data.get("config")
    config: Mapping[str, object] = raw_config if isinstance(raw_config, dict) else {}
    args = [str(a) for a in _list(data, "args")]
    results = [item for item in _list(data, "results") if isinstance(item, dict)]
    try:
        rows = [_json_row(number, item, source) for number, item in enumerate(results, start=1)]
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{source or 'JSON file'}: a result is not an nccl-tests -J record ({exc})") from None
    if not rows:
        errors = [str(e).strip() for e in _list(data, "errors") if str(e).strip()]
        if errors:
            program = Path(args[0]).name if args else "nccl-tests"
            raise UserError(
                f"{source or 'JSON file'}: the {program} run failed before its first result ({errors[0][:300]}): "
                "nothing was measured, so there is nothing to import"
            )
        raise UserError(f"{source or 'JSON file'} holds no results: the run wrote no row before it stopped")
    devices = [_json_device(i, d, source) for i, d in enumerate(_list(config, "devices")) if isinstance(d, dict)]
    header = _json_header(config)
    evidence = TableEvidence(first_line=1, header=header, rows=rows, devices=devices)
    evidence.footer = not cut and "out_of_bounds" in data
    code = data.get("nccl_version")
    evidence.quoted = Quoted(
        nccl_version=nccl_version_from_code(code) if isinstance(code, int) and 0 < code < 10**8 else None,
        command=" ".join(args)[:MAX_LINE_CHARS] or None,
        command_collective=collective_from_program(args[0]) if args else None,
    )
    if devices:
        # -J lists one device per process (the first GPU of each): nranks = processes x GPUs per process.
        evidence.info_nranks = len(devices) * header.nthreads * header.ngpus
    oob = data.get("out_of_bounds")
    evidence.out_of_bounds = _optional_int(oob, "count") if isinstance(oob, dict) else None
    evidence.avg = _average_busbw(data, source)
    for error in _list(data, "errors"):
        if str(error).strip():
            evidence.fail(str(error))
    if any("cpu_time" in (r.get("out_of_place") or r.get("in_place") or {}) for r in results):
        evidence.note("times are CPU times (nccl-tests -C 1), not GPU latencies")
    hint = mentions(Path(source).stem) if source else []
    table = finish(evidence, hint, collective, nranks, source)
    # finish() names the text log's evidence; in a -J file the same facts come from its args and devices.
    if table.collective.source == "command":
        table = replace(table, collective=replace(table.collective, source="json args"))
    if table.nranks.source == "NCCL INFO":
        table = replace(table, nranks=replace(table.nranks, source="json devices"))
    env = dict(str(e)[:MAX_LINE_CHARS].partition("=")[::2] for e in _list(data, "env"))
    return NcclTestsLog(
        source,
        "json",
        (table,),
        table.printed.failures,
        env=env,
        start_time=str(data["start_time"]) if "start_time" in data else None,
        end_time=str(data["end_time"]) if "end_time" in data else None,
    )
