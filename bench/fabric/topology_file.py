"""Which reader a topology file needs: a ``.toml`` file is railbench's cabling TOML (``bench.fabric.cabling``),
anything else ibnetdiscover's text output (``bench.fabric.ibnetdiscover``)."""

from __future__ import annotations

from pathlib import Path

from bench import tomldoc
from bench.exits import UserError
from bench.fabric import ibnetdiscover
from bench.fabric.cabling import Cabling, cabling_from_toml


def load_cabling(path: Path) -> Cabling:
    """The cabling in ``path``; UserError (exit 2) when the file cannot be read or is neither format."""
    where = str(path)
    if not path.is_file():
        raise UserError(f"topology file {path} is not a file: give ibnetdiscover's output or a cabling .toml")
    if path.suffix == ".toml":
        text = tomldoc.read_text(path, "topology file", limit=ibnetdiscover.MAX_FILE_BYTES)
        return cabling_from_toml(tomldoc.loads(text, where), where)
    return ibnetdiscover.read(path)
