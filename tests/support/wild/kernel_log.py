"""railbench's reading of a kernel log excerpt (dmesg, journalctl -k, syslog): the GPU and NVSwitch events found
and the kernel the boot banner names.

Each event, once per distinct reading with its count: its kind (``Xid``, ``SXid``, ``bus`` for a GPU lost from
PCIe without an Xid line), code, device (a GPU's ``domain:bus:device``; an NVSwitch's name and address), and
``fail``/``warn`` with the words that decide it, judged as a profile without its own ``fail_xids`` judges it
(``bench.gpu.xid.judge`` with the catalogue's buckets).
"""

from __future__ import annotations

from pathlib import Path

from bench.fabric import link_flaps
from bench.gpu import xid, xid_catalogue


def read(path: Path) -> dict[str, object]:
    lines = path.read_text(encoding="utf-8").splitlines()
    fail_xids = xid_catalogue.default_fail_xids()
    seen: dict[tuple[str, int, str, str, str], int] = {}
    for event in xid.events(lines):
        verdict = xid.judge(event, fail_xids)
        device = f"{event.switch} {event.bus}.0" if event.kind == "SXid" else event.bus
        key = (event.kind, event.code, device, verdict.status, verdict.why)
        seen[key] = seen.get(key, 0) + 1
    events = [
        {"kind": kind, "code": code, "device": device, "severity": status, "why": why, "count": count}
        for (kind, code, device, status, why), count in seen.items()
    ]
    kernel = link_flaps.booted_kernel(lines)
    return {"events": events, "kernel": kernel if kernel is not None else "not in the excerpt"}
