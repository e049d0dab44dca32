"""The JSON file that ``nccl-tests -J FILE.json`` writes (format versions 1 to 3, nccl-tests src/util.cu).

Shape: ``{version, start_time, args, env, nccl_version, config: {nthreads, ngpus, minimum_bytes, ...,
devices: [{rank, group, pid, hostname, device, device_hex, device_info}]}, results: [{size, count, type,
redop, root, out_of_place: {time, alg_bw, bus_bw, nwrong}, in_place: {...}, ...}], out_of_bounds: {count,
okay}, average_bus_bandwidth: {bandwidth, okay}, errors: [...], end_time}``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from bench.errors import UserError
from bench.nccltests.infer import Evidence, finish, mentions
from bench.nccltests.model import (
    Device,
    Header,
    Measurement,
    NcclTestsLog,
    Number,
    Placement,
    Row,
    collective_from_program,
    nccl_version_from_code,
)

# nccl-tests writes doubles with "%lf": six decimals.
_JSON_HALF_UNIT = 5e-7


def _load_json_prefix(text: str) -> tuple[dict[str, object], bool]:
    """The top-level object of a -J file; a file cut off mid-write keeps every complete result.

    nccl-tests streams the file as it runs, so a killed run leaves a prefix: read it key by key and
    element by element, and stop at the first incomplete value.
    """
    decoder = json.JSONDecoder()
    try:
        obj = decoder.decode(text)
    except json.JSONDecodeError:
        pass
    else:
        if not isinstance(obj, dict):
            raise UserError("the JSON file does not hold an object: pass a file written by nccl-tests -J")
        return obj, False

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    out: dict[str, object] = {}
    i = skip(0)
    if not text.startswith("{", i):
        raise UserError("the file is neither nccl-tests text nor JSON: pass stdout or the -J file")
    i += 1
    try:
        while True:
            i = skip(i)
            if text.startswith("}", i):
                return out, False  # whole, but the first decode failed on trailing data
            key, i = decoder.raw_decode(text, i)
            i = skip(i)
            if not text.startswith(":", i):
                return out, True
            i = skip(i + 1)
            if key == "results" and text.startswith("[", i):
                results: list[object] = []
                out[key] = results
                i = skip(i + 1)
                while not text.startswith("]", i):
                    item, i = decoder.raw_decode(text, i)
                    results.append(item)
                    i = skip(i)
                    i = skip(i + 1) if text.startswith(",", i) else i
                i += 1
            else:
                out[str(key)], i = decoder.raw_decode(text, i)
            i = skip(i)
            if text.startswith(",", i):
                i += 1
    except (json.JSONDecodeError, IndexError):
        return out, True


def _json_measurement(placement: Placement, half: object) -> Measurement | None:
    if not isinstance(half, dict):
        return None
    time_us = half.get("time", half.get("cpu_time"))

    def num(value: object) -> Number:
        return Number(float(value), _JSON_HALF_UNIT)  # type: ignore[arg-type]  # "nan" parses too

    wrong = half.get("nwrong")
    return Measurement(
        placement=placement,
        time_us=num(time_us),
        algbw_GBps=num(half.get("alg_bw")),
        busbw_GBps=num(half.get("bus_bw")),
        wrong=None if wrong is None else int(float(wrong)),
    )


def parse_json(
    text: str, *, source: str = "", collective: str | None = None, nranks: int | None = None
) -> NcclTestsLog:
    """Parse the file that ``nccl-tests -J FILE.json`` writes (format versions 1 to 3)."""
    data, cut = _load_json_prefix(text)
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    assert isinstance(config, dict)  # for the type checker; the line above guarantees it
    args = [str(a) for a in data.get("args", []) or []]  # type: ignore[union-attr]
    rows: list[Row] = []
    for number, item in enumerate(data.get("results", []) or [], start=1):  # type: ignore[arg-type]
        if not isinstance(item, dict):
            continue
        root = str(item.get("root", "")).strip()
        halves = (_json_measurement("out-of-place", item.get("out_of_place")),
                  _json_measurement("in-place", item.get("in_place")))  # fmt: skip
        rows.append(
            Row(
                bytes=int(item["size"]),
                count=int(item["count"]),
                dtype=str(item.get("type", "")),
                redop=str(item.get("redop", "")).strip(),
                root=int(root) if root.lstrip("-").isdigit() else None,
                measurements=tuple(m for m in halves if m is not None),
                line=number,
            )
        )
    if not rows:
        raise UserError(f"{source or 'JSON file'} holds no results: the run wrote no row before it stopped")
    devices = tuple(
        Device(
            rank=int(d.get("rank", i)),
            group=int(d.get("group", 0)),
            pid=int(d.get("pid", 0)),
            host=str(d.get("hostname", "")),
            device=int(d.get("device", 0)),
            bus_id=str(d.get("device_hex", "")),
            gpu=str(d.get("device_info", "")),
        )
        for i, d in enumerate(config.get("devices", []) or [])
        if isinstance(d, dict)
    )
    header = Header(
        nthreads=int(config.get("nthreads", 1)),
        ngpus=int(config.get("ngpus", 1)),
        min_bytes=config.get("minimum_bytes"),  # type: ignore[arg-type]
        max_bytes=config.get("maximum_bytes"),  # type: ignore[arg-type]
        step_factor=config.get("step_factor"),  # type: ignore[arg-type]
        step_bytes=config.get("step_bytes"),  # type: ignore[arg-type]
        warmup_iters=config.get("warmup_iters"),  # type: ignore[arg-type]
        iters=config.get("iterations"),  # type: ignore[arg-type]
        agg_iters=config.get("aggregated_iterations"),  # type: ignore[arg-type]
        validation=config.get("validation"),  # type: ignore[arg-type]
        graph=config.get("graph"),  # type: ignore[arg-type]
    )
    evidence = Evidence(first_line=1, header=header, rows=rows, footer=not cut and "out_of_bounds" in data)
    evidence.command = " ".join(args) or None
    evidence.command_collective = collective_from_program(args[0]) if args else None
    # -J lists one device line per process (the first GPU of each), so nranks = processes x GPUs each.
    if devices:
        per_process = header.nthreads * header.ngpus
        evidence.info_nranks = [len(devices) * per_process]
    code = data.get("nccl_version")
    evidence.nccl_version = nccl_version_from_code(int(code)) if isinstance(code, int) and code > 0 else None
    oob = data.get("out_of_bounds")
    evidence.out_of_bounds = int(oob["count"]) if isinstance(oob, dict) and "count" in oob else None
    # Version 1 spelled these keys "average_bus_bandwidith" and "bandwidith".
    avg = data.get("average_bus_bandwidth", data.get("average_bus_bandwidith"))
    if isinstance(avg, dict):
        value = avg.get("bandwidth", avg.get("bandwidith"))
        evidence.avg = float(value) if isinstance(value, (int, float)) else None
    evidence.failures = [str(e) for e in data.get("errors", []) or [] if str(e).strip()]  # type: ignore[union-attr]
    if any(isinstance(r, dict) and "cpu_time" in (r.get("out_of_place") or r.get("in_place") or {})
           for r in data.get("results", []) or []):  # type: ignore[union-attr]  # fmt: skip
        evidence.notes.append("times are CPU times (nccl-tests -C 1), not GPU latencies")
    hint = mentions(Path(source).stem) if source else []
    table = finish(evidence, hint, collective, nranks, source)
    table = replace(table, devices=devices, hosts=tuple(dict.fromkeys(d.host for d in devices)))
    if table.collective_source == "command":
        table = replace(table, collective_source="json args")
    if table.nranks_source == "NCCL INFO":
        table = replace(table, nranks_source="json devices")
    env = dict(str(e).partition("=")[::2] for e in data.get("env", []) or [])  # type: ignore[union-attr]
    return NcclTestsLog(
        source,
        "json",
        (table,),
        table.failures,
        env=env,
        start_time=str(data["start_time"]) if "start_time" in data else None,
        end_time=str(data["end_time"]) if "end_time" in data else None,
    )
