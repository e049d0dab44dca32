"""Issue 42: every reader reads the verbatim corpus of ``tests/data/wild/`` exactly as the manifest says.

The files are real tools' output from public bug reports, guides and forums, each with its URL
(``tests/data/wild/README.md``); none is written by this project. A reader that drifts from the field fails here
with the file's name and the difference.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.support.wild import manifest

CASES = manifest.every_case()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_reading_is_exact(case: manifest.Case) -> None:
    reader = importlib.import_module(f"tests.support.wild.{case.folder.replace('-', '_')}")
    assert case.file.is_file(), f"{case.id} is listed but missing"
    assert reader.read(case.file) == case.expect


@pytest.mark.parametrize("folder", manifest.folders(), ids=[f.name for f in manifest.folders()])
def test_each_reader_has_enough_verbatim_sources(folder: Path) -> None:
    cases = manifest.cases(folder)
    urls = {case.url for case in cases}
    assert len(urls) >= manifest.MIN_SOURCES, f"{folder.name}: {len(urls)} sources, {manifest.MIN_SOURCES} needed"
    assert all(case.url.startswith("https://") for case in cases)
    listed = {case.file.name for case in cases} | {"cases.toml", "README.md"}
    unlisted = sorted(p.name for p in folder.iterdir() if p.name not in listed)
    assert not unlisted, f"{folder.name}: files without a manifest entry: {unlisted}"


def test_readme_table_is_current() -> None:
    readme = (manifest.WILD / "README.md").read_text(encoding="utf-8")
    assert manifest.BEGIN in readme
    assert readme.split(manifest.BEGIN, 1)[1].strip() == manifest.table().strip(), (
        "run: python -m tests.support.wild.table"
    )
