"""The project's own design document is in the repository and the code cites it, by section, and nothing
outside the repository. The code's citations of the README and the other docs pages name a section that is
there too, so a section that moves takes its citations along."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DESIGN = REPO / "docs" / "design.md"
CITATION = re.compile(r'docs/design\.md, "([^"]+)"')
# (README, "Exit status"), (docs/run.md, "What to expect on a 1CC"): a heading of that file starts so.
DOC_CITATION = re.compile(r'\b(README|docs/[\w-]+\.md), "([^"]+)"')


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


def test_every_citation_of_the_readme_or_a_docs_page_names_one_of_its_sections() -> None:
    sources = [*_sources(), *(REPO / "bench").rglob("*.toml"), REPO / ".ci" / "run"]
    cited = {(p.relative_to(REPO), doc, name) for p in sources for doc, name in DOC_CITATION.findall(p.read_text())}
    assert len(cited) >= 5  # the profiles, the targets, the finish step, the GPU test, the layers
    missing = []
    for path, doc, name in sorted(cited):
        target = REPO / ("README.md" if doc == "README" else doc)
        headings = re.findall(r"^#+ (.+)$", target.read_text(), re.M) if target.is_file() else []
        if not any(heading.startswith(name) for heading in headings):
            missing.append(f"{path}: {doc}, {name!r}")
    assert missing == []
