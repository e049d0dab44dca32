"""Rewrite the table of sources in ``tests/data/wild/README.md`` from the manifests: ``python -m
tests.support.wild.table``."""

from __future__ import annotations

from tests.support.wild import manifest
from tests.support.wild.manifest import BEGIN


def main() -> None:
    path = manifest.WILD / "README.md"
    head = path.read_text(encoding="utf-8").split(BEGIN, 1)[0]
    path.write_text(f"{head}{BEGIN}\n\n{manifest.table()}", encoding="utf-8")


if __name__ == "__main__":
    main()
