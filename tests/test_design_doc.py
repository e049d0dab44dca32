"""The project's own design document is in the repository and the code cites it, by section, and nothing
outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DESIGN = REPO / "docs" / "design.md"
CITATION = re.compile(r'docs/design\.md, "([^"]+)"')


def _sources() -> list[Path]:
    return sorted([*(REPO / "bench").rglob("*.py"), *(REPO / "tests").rglob("*.py"), *(REPO / "ci").rglob("*.py")])


def test_every_citation_names_a_section_of_the_design_document() -> None:
    sections = {m.group(1).strip() for m in re.finditer(r"^#+ (.+)$", DESIGN.read_text(), re.M)}
    cited = {(path.relative_to(REPO), name) for path in _sources() for name in CITATION.findall(path.read_text())}
    assert len(cited) >= 10  # the formulas, the records, the verdict and the frame are cited where they are used
    missing = sorted(f"{path}: {name!r}" for path, name in cited if name not in sections)
    assert missing == []


def test_nothing_cites_a_design_outside_the_repository() -> None:
    me = Path(__file__).resolve()
    offenders = [p for p in _sources() if p.resolve() != me and "DESIGN" + ".md" in p.read_text()]
    assert offenders == []
