"""Where one idea is declared or copied more than once in bench/ (issue 30: one record per idea).

Prints four lists, each line ``file:line`` first, so an editor jumps to it:

* class names defined in more than one place (two classes of one name are two ideas, or one idea twice);
* ``def record`` / ``def as_dict``: the methods that copy a working record into its written twin, or into a
  dict, field by field;
* calls that copy six or more same-named fields: keyword arguments of the form ``name=x.name``, ``name=name``
  or ``name=d["name"]``, the mark of one record being rebuilt from another;
* functions longer than 80 lines (decorators and docstring included): a function that long does several
  jobs, each of which wants a name.

    python ci/declarations.py            # bench/ under the repository this script is in
    python ci/declarations.py --min 4    # calls that copy four or more same-named fields
    python ci/declarations.py PATH...    # other folders or files
    python ci/declarations.py --tiny     # the same, as tests/test_project_ci_scripts.py runs it (bench/ takes a second)

It reads the source only (``ast``): nothing is imported, so it runs without the package's dependencies.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPY_METHODS = ("record", "as_dict")
MIN_COPIED = 6
MAX_FUNCTION_LINES = 80


@dataclass(frozen=True)
class Place:
    """A line of a source file, said as an editor takes it."""

    path: Path
    line: int

    def __str__(self) -> str:
        try:
            shown = self.path.relative_to(ROOT)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}"


@dataclass(frozen=True)
class Copy:
    """A call whose keyword arguments copy ``copied`` fields under their own names."""

    place: Place
    callee: str
    copied: int


def sources(paths: Sequence[Path]) -> Iterator[tuple[Path, ast.Module]]:
    for given in paths:
        files = sorted(given.rglob("*.py")) if given.is_dir() else [given]
        for path in files:
            yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _same_name(keyword: ast.keyword) -> bool:
    """``name=x.name``, ``name=name`` or ``name=d["name"]``: a field copied under its own name."""
    name, value = keyword.arg, keyword.value
    if name is None:
        return False
    if isinstance(value, ast.Attribute):
        return value.attr == name
    if isinstance(value, ast.Name):
        return value.id == name
    if isinstance(value, ast.Subscript):
        return isinstance(value.slice, ast.Constant) and value.slice.value == name
    return False


def copies(path: Path, tree: ast.Module, at_least: int) -> Iterator[Copy]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            copied = sum(1 for keyword in node.keywords if _same_name(keyword))
            if copied >= at_least:
                yield Copy(Place(path, node.lineno), ast.unparse(node.func), copied)


def classes(path: Path, tree: ast.Module) -> Iterator[tuple[str, Place]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            yield node.name, Place(path, node.lineno)


def copy_methods(path: Path, tree: ast.Module) -> Iterator[tuple[str, Place]]:
    """``def record`` / ``def as_dict`` at module level or in a class (a function's own inner helper of that
    name is a local, not a declaration)."""
    bodies = [tree.body, *(node.body for node in ast.walk(tree) if isinstance(node, ast.ClassDef))]
    for body in bodies:
        for node in body:
            if isinstance(node, ast.FunctionDef) and node.name in COPY_METHODS:
                yield node.name, Place(path, node.lineno)


def long_functions(path: Path, tree: ast.Module, longest: int) -> Iterator[tuple[str, int, Place]]:
    """Every function or method over ``longest`` lines, from its first decorator to its last line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            if node.end_lineno - first + 1 > longest:
                yield node.name, node.end_lineno - first + 1, Place(path, first)


def report(paths: Sequence[Path], at_least: int, longest: int = MAX_FUNCTION_LINES) -> list[str]:
    """The four lists as lines, each under a heading that says how many it holds."""
    defined: dict[str, list[Place]] = {}
    methods: list[tuple[str, Place]] = []
    calls: list[Copy] = []
    long: list[tuple[str, int, Place]] = []
    for path, tree in sources(paths):
        long.extend(long_functions(path, tree, longest))
        for name, place in classes(path, tree):
            defined.setdefault(name, []).append(place)
        methods.extend(copy_methods(path, tree))
        calls.extend(copies(path, tree, at_least))
    twice = {name: places for name, places in sorted(defined.items()) if len(places) > 1}
    lines = [f"class names defined twice: {len(twice)}"]
    lines += [f"  {place}  class {name}" for name, places in twice.items() for place in places]
    lines.append(f"def {' / def '.join(COPY_METHODS)}: {len(methods)}")
    lines += [f"  {place}  def {name}" for name, place in methods]
    copied = sum(call.copied for call in calls)
    lines.append(f"calls copying >= {at_least} same-named fields: {len(calls)} ({copied} fields)")
    lines += [f"  {call.place}  {call.callee}(...) copies {call.copied}" for call in calls]
    lines.append(f"functions over {longest} lines: {len(long)}")
    lines += [f"  {place}  def {name}: {count} lines" for name, count, place in long]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[ROOT / "bench"])
    parser.add_argument("--min", type=int, default=MIN_COPIED, help="same-named fields that make a call a copy")
    parser.add_argument("--lines", type=int, default=MAX_FUNCTION_LINES, help="a function longer than this is listed")
    parser.add_argument("--tiny", action="store_true", help="the same: every ci/ script takes it")
    args = parser.parse_args(argv)
    print("\n".join(report(args.paths, args.min, args.lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
