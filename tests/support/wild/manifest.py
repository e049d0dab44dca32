"""The manifests of the verbatim corpus: ``tests/data/wild/<reader>/cases.toml``.

A manifest names its reader and lists its cases::

    reader = "nvidia-smi nvlink -s"
    [[case]]
    file = "h100-gpu3-inactive.txt"
    url = "https://github.com/NVIDIA/nccl/issues/1234"
    generation = "H100"
    cut = "the GPU blocks of the issue's second comment; the prose around them left out"
    [case.expect]
    ...

``url`` is where the text was published (verbatim: only cut, never edited; ``cut`` says what was kept or
``"whole"``); ``generation`` is the GPU or NIC generation it came from, ``"unknown"`` when the source does not
say. ``expect`` is the exact reading a correct reader gives.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

WILD = Path(__file__).resolve().parents[2] / "data" / "wild"
BEGIN = "<!-- sources: made by `python -m tests.support.wild.table`; do not edit by hand -->"
"""The line of ``tests/data/wild/README.md`` after which the table of sources is written, never by hand."""
MIN_SOURCES = 8
"""Verbatim sources each reader's corpus holds at least (issue 42)."""


@dataclass(frozen=True)
class Case:
    folder: str
    reader: str
    file: Path
    url: str
    generation: str
    cut: str
    expect: dict[str, object]

    @property
    def id(self) -> str:
        return f"{self.folder}/{self.file.name}"


def folders() -> list[Path]:
    return sorted(p for p in WILD.iterdir() if (p / "cases.toml").is_file())


def cases(folder: Path) -> list[Case]:
    doc = tomllib.loads((folder / "cases.toml").read_text(encoding="utf-8"))
    reader = str(doc["reader"])
    out = []
    for raw in doc.get("case", []):
        out.append(
            Case(
                folder=folder.name,
                reader=reader,
                file=folder / str(raw["file"]),
                url=str(raw["url"]),
                generation=str(raw["generation"]),
                cut=str(raw["cut"]),
                expect=dict(raw["expect"]),
            )
        )
    return out


def every_case() -> list[Case]:
    return [case for folder in folders() for case in cases(folder)]


def table() -> str:
    """The README's table of sources, one row per file, made from the manifests."""
    rows = ["| reader | file | generation | source | cut |", "|---|---|---|---|---|"]
    for case in every_case():
        cut = case.cut.replace("|", "/")
        rows.append(f"| {case.reader} | `{case.id}` | {case.generation} | <{case.url}> | {cut} |")
    return "\n".join(rows) + "\n"
