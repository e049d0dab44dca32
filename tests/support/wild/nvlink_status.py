"""The reading of one ``nvidia-smi nvlink -s`` capture: what the file holds, every GPU's links, and the faults.

``kind`` is ``bench.gpu.nvlink.output_kind`` (another nvidia-smi output is named, and nothing more is read);
per GPU its index, model, active link count, inactive links and whether NVML's all-down line stood in place of
its links; then ``nvlink.judge``: each faulty GPU with its links, the node with no link up, or the node read as
having no NVLink. This is what the ``nvlink`` check's verdict is made of.
"""

from __future__ import annotations

from pathlib import Path

from bench.gpu import nvlink
from bench.textlines import text_lines


def read(path: Path) -> dict[str, object]:
    text = path.read_text(encoding="utf-8")
    lines = [line for _, line in text_lines(text) if line is not None]
    kind = nvlink.output_kind(lines)
    if kind != nvlink.STATUS:
        return {"kind": kind or "none"}
    gpus = nvlink.parse_status(lines)
    judged = nvlink.judge(gpus)
    return {
        "kind": kind,
        "gpus": [
            {
                "index": g.index,
                "name": g.name,
                "active": len(g.active),
                "inactive": list(g.inactive),
                "all_down": g.all_down,
            }
            for g in gpus
        ],
        "faults": [{"gpu": f.index, "links": list(f.links)} for f in judged.faults],
        "every_link_down": judged.every_link_down,
        "no_nvlink": judged.no_nvlink is not None,
    }
