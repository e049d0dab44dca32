"""The package's layers import only downward, at module and at folder level.

Modules: no import cycle inside ``bench/``, function-level imports included. Folders: every folder of
``bench/`` sits in one layer of :data:`LAYERS` (docs/development.md, "Development", draws the same map); no
folder imports one in a higher layer, no two folders import each other, and no longer chain of folders
comes back to where it started. The modules directly under ``bench/`` are the ground: each is a node of its
own, below every folder.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _module_name(path: Path) -> str:
    parts = path.relative_to(BENCH.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(BENCH.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The bench module a dotted import name lands in (``bench.x.y`` may name an attribute of ``bench.x``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """Module -> the bench modules it imports anywhere in its body (``TYPE_CHECKING`` blocks excluded): a copy
    each caller may change (the sources are parsed once per session: a second apiece)."""
    return {module: set(targets) for module, targets in _parsed_graph().items()}


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement in ``body`` and in the bodies nested in it (functions, classes, if, try, with, match): an
    import is a statement, so the expressions, nine nodes in ten, need no visit (a full ``ast.walk`` of bench/
    took a second a session)."""
    for stmt in body:
        yield stmt
        for field in ("body", "orelse", "finalbody"):
            nested = getattr(stmt, field, [])
            if isinstance(nested, list):  # a lambda's or an if-expression's body is one expression
                yield from _statements(nested)
        for inner in [*getattr(stmt, "handlers", []), *getattr(stmt, "cases", [])]:
            yield from _statements(inner.body)


@functools.cache
def _parsed_graph() -> dict[str, frozenset[str]]:
    modules = _modules()
    graph: dict[str, frozenset[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        typing_only = {
            id(node)
            for block in _statements(tree.body)
            if isinstance(block, ast.If) and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
            for node in _statements(block.body)
        }
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in _statements(tree.body):
            if id(node) in typing_only:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
            for target in targets:
                found = _resolve(target, modules)
                if found is not None and found != name:
                    edges.add(found)
        graph[name] = frozenset(edges)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_in_bench() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


LAYERS: tuple[tuple[str, ...], ...] = (
    ("bench",),  # the package's public face (``bench.select_hcas``): nothing inside imports it
    ("bench.__main__", "bench.cli"),
    ("commands",),
    # the jobs (accept runs the other three's phases) and the other commands' logic, each in its own folder
    ("soak",),  # the soak repeats the rails test's and the sweep's phases, window after window
    ("accept", "sweep", "rails", "check", "health", "compare", "importer", "hca"),
    ("frame",),
    ("report", "history"),
    ("nccltests", "measure", "slurm", "preflight", "fabric", "nccllogs", "gpu"),  # the engines
    ("runtime",),
    ("rundir",),
    ("profile",),  # the cluster profile and its tables
)
"""Top to bottom. A folder may import its own layer one way only; every module directly under ``bench/`` (but
the two above) is the ground, below them all."""
GROUND = len(LAYERS)


def folder_of(module: str) -> str:
    """The folder node of a module: ``bench.rails.rank`` -> ``rails``; a module under ``bench/`` is its own."""
    parts = module.split(".")
    if len(parts) >= 3 or (len(parts) == 2 and (BENCH / parts[1] / "__init__.py").is_file()):
        return parts[1]
    return module


def folder_graph(graph: dict[str, set[str]]) -> dict[str, dict[str, list[str]]]:
    """Folder -> folder -> the module imports that make the arrow (an arrow inside one folder is left out)."""
    folders: dict[str, dict[str, list[str]]] = {}
    for module, targets in graph.items():
        a = folder_of(module)
        folders.setdefault(a, {})
        for target in sorted(targets):
            b = folder_of(target)
            if a != b:
                folders[a].setdefault(b, []).append(f"{module} -> {target}")
    return folders


def layer_of(node: str) -> int:
    for index, members in enumerate(LAYERS):
        if node in members:
            return index
    if node.startswith("bench.") and (BENCH / f"{node.removeprefix('bench.')}.py").is_file():
        return GROUND
    raise AssertionError(
        f"{node} is in no layer: add the folder to LAYERS in tests/test_project_layers.py and to docs/development.md"
    )


def layer_violations(folders: dict[str, dict[str, list[str]]]) -> list[str]:
    """Every arrow that runs up the layers, and every pair of folders that import each other."""
    problems = []
    for a, arrows in sorted(folders.items()):
        for b, why in sorted(arrows.items()):
            if layer_of(b) < layer_of(a):
                problems.append(f"upward: {a} -> {b} ({'; '.join(why)})")
            elif a < b and a in folders.get(b, {}):
                problems.append(f"mutual: {a} <-> {b} ({'; '.join(why + folders[b][a])})")
    return problems


def test_every_folder_has_a_layer() -> None:
    for node in folder_graph(import_graph()):
        layer_of(node)


def test_no_folder_imports_upward_or_back() -> None:
    folders = folder_graph(import_graph())
    assert layer_violations(folders) == []
    cycle = find_cycle({a: set(arrows) for a, arrows in folders.items()})
    assert cycle is None, "folder cycle: " + " -> ".join(cycle or [])


def test_a_deliberate_upward_import_fails() -> None:
    """The checker sees the arrows the issue named: rundir importing runtime, runtime importing history, and
    history importing report while report reads history."""
    graph = import_graph()
    graph["bench.rundir.files"] = {*graph["bench.rundir.files"], "bench.runtime.env"}
    graph["bench.runtime.launch"] = {*graph["bench.runtime.launch"], "bench.history.store"}
    problems = layer_violations(folder_graph(graph))
    assert [p.split(" (")[0] for p in problems] == [
        "upward: rundir -> runtime",
        "upward: runtime -> history",
    ], problems
    graph["bench.history.store"] = {*graph["bench.history.store"], "bench.report.build"}
    assert any(p.startswith("mutual: history <-> report") for p in layer_violations(folder_graph(graph)))


def test_the_cycle_finder_sees_a_function_level_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_function_level_imports_are_edges(tmp_path: Path) -> None:
    graph = import_graph()
    # bench.frame.finish imports the report builder inside a function (pandas loads only when drawing).
    assert "bench.report.build" in graph["bench.frame.finish"]


def test_nothing_below_commands_imports_commands() -> None:
    graph = import_graph()
    offenders = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if not module.startswith("bench.commands") and module != "bench.cli"
        for target in targets
        if target.startswith("bench.commands")
    )
    assert offenders == []


RAILS_FLOORS = ("bench.rails.measurement", "bench.rails.diagnosis", "bench.rails.plan")
"""Inside rails/, top to bottom: the rank side, rank 0's pure judgment, the plan (docs/design.md, "Layers");
``bench.rails.rank`` and ``bench.rails.output`` stand above all three."""
TORCH_SIDE = ("torch", "mpi4py", "bench.runtime.coord", "bench.runtime.dist")


def _rails_floor(module: str) -> int:
    for index, floor in enumerate(RAILS_FLOORS):
        if module == floor or module.startswith(floor + "."):
            return index
    return -1  # rank, output: above the three


def test_the_rails_floors_import_only_downward() -> None:
    graph = import_graph()
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module.startswith("bench.rails.")
        for target in targets
        if target.startswith("bench.rails.") and _rails_floor(target) < _rails_floor(module)
    )
    assert upward == []


def test_the_diagnosis_and_the_plan_never_touch_torch_or_the_ranks() -> None:
    offenders = []
    for name, path in _modules().items():
        if _rails_floor(name) < 1:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            offenders += [f"{name} imports {n}" for n in names if n.split(".")[0] in TORCH_SIDE or n in TORCH_SIDE]
    assert offenders == []
