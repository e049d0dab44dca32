"""The JavaScript that draws the charts (Vega, Vega-Lite and vega-embed, BSD-3-Clause), built once per version.

report.html carries it inline so that the page draws with no network. vl-convert builds it from the copies
inside its own wheel; that costs about 2 s of CPU, a third of a whole report, and the result depends only on
vl-convert's version and the Vega-Lite version asked for. So it is kept in the user's cache
(``$XDG_CACHE_HOME/railbench``, else ``~/.cache/railbench``) under a name with both versions, written
atomically, and built again when that file is missing, unreadable or not a bundle. A cache that cannot be
written costs only the time: the bundle is then built for each report.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from pathlib import Path

import vl_convert

from bench.bounded import read_bytes
from bench.exits import UserError
from bench.rundir.files import atomic_write_text
from bench.runtime import env

MIN_BUNDLE_BYTES = 100_000
"""Far less than any Vega bundle (vl-convert 1.9's is about 0.9 MB): a shorter file is damage, not a bundle."""
MAX_BUNDLE_BYTES = 32 << 20


def cache_dir() -> Path | None:
    """``$XDG_CACHE_HOME/railbench``, else ``~/.cache/railbench``; None where there is no home to cache in."""
    base = env.get("XDG_CACHE_HOME") or (str(Path.home() / ".cache") if env.get("HOME") else None)
    return Path(base) / "railbench" if base else None


def _cached(path: Path) -> str | None:
    """The cached bundle, or None for anything else there (absent, not a regular file, too short or long)."""
    try:
        text = read_bytes(path, fix="", max_bytes=MAX_BUNDLE_BYTES).decode("utf-8")
    except (UserError, OSError, UnicodeDecodeError):
        return None
    return text if len(text) >= MIN_BUNDLE_BYTES else None


def vega_bundle(vl_version: str, *, cache: Path | None = None) -> str:
    """The bundle for Vega-Lite ``vl_version``, from the cache when it holds one (``cache``: the folder, default
    :func:`cache_dir`)."""
    make: Callable[..., str] = vl_convert.javascript_bundle  # its stub marks the snippet as required; it is not
    folder = cache or cache_dir()
    if folder is None:
        return make(vl_version=vl_version)
    path = folder / f"vega-bundle-vl-convert-{importlib.metadata.version('vl-convert-python')}-vl{vl_version}.js"
    found = _cached(path)
    if found is not None:
        return found
    bundle = make(vl_version=vl_version)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, bundle)
    except (OSError, UserError):
        pass  # read-only or full home, or something not a file in its place: the report is right, only slower
    return bundle
