"""The acceptance report's sections as plain data: what an operator hands over.

Pure functions over a run's inputs (``RunInputs``) and compare.json; ``bench.report.page`` lays them out.
Each function returns None (or an empty table) when its data is absent, so a section appears only when
there is something to show.

* ``checks_grid``: preflight checks as a node x check grid, read from checks.json as ``check`` and
  ``accept`` write it (``nodes``: one entry per node with its ``results``), or the older flat ``checks``;
* ``grid_groups`` and ``grid_reasons``: the grid with identical rows merged and every reason said once for
  all the checks and nodes that gave it, so 64 healthy nodes read as one row and one line per reason;
* ``compare_rows``: the regressed/missing/failed/improved metrics of compare.json, with what changed;
* ``environment``: versions per node with the odd ones marked, and the NCCL variables.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.codec import Absent
from bench.report.inputs import RunInputs
from bench.report.sweep_table import number_cell
from bench.rundir.checksjson import CheckResult, ChecksDoc
from bench.rundir.comparedoc import CompareDoc
from bench.rundir.runjson import RunDoc
from bench.units import rate_unit_of

CHECK_STATUSES = ("pass", "warn", "fail", "skip")
VERSION_KEYS = ("railbench", "python", "torch", "nccl", "cuda", "driver", "firmware", "kernel")


def plural(count: int, word: str) -> str:
    """``1 node``, ``2 nodes``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def human_bytes(count: float) -> str:
    """``0 B``, ``512 B``, ``12.3 MB`` (decimal units, as byte counters are read)."""
    if count < 1000:
        return f"{count:.0f} B"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count:.0f} B"  # unreachable: count >= 1000 matched kB


_NUMBERED = re.compile(r"^(?P<stem>.*?)(?P<number>\d+)$")


def node_list(names: Sequence[str], hosts: Sequence[str] = (), limit: int = 6) -> str:
    """Nodes in few words: ``all 64 nodes`` (when ``hosts`` are all of them), ``node01–node16, node18``
    (runs of consecutive numbers with one stem), ``a, b, c and 12 more`` past ``limit`` parts."""
    names = list(dict.fromkeys(names))
    if hosts and len(names) > 1 and set(names) == set(hosts):
        return f"all {len(names)} nodes"
    parts: list[str] = []
    run: list[tuple[str, int, str]] = []  # (stem, number, name) of the current run of consecutive numbers

    def close() -> None:
        if run:
            last = run[-1][2][len(run[-1][0]) :]  # node-01–16: the stem once, the last number as written
            parts.append(run[0][2] if len(run) < 3 else f"{run[0][2]}–{last}")
            if len(run) == 2:
                parts.append(run[1][2])
            run.clear()

    for name in names:
        match = _NUMBERED.match(name)
        if match is None:
            close()
            parts.append(name)
            continue
        stem, number = match.group("stem"), int(match.group("number"))
        if run and (run[-1][0] != stem or run[-1][1] + 1 != number):
            close()
        run.append((stem, number, name))
    close()
    if len(parts) > limit:
        return f"{', '.join(parts[:limit])} and {len(parts) - limit} more"
    return ", ".join(parts)


NOT_NODES = frozenset({"all nodes", "this node", "fabric"})
"""Rows of the grid that are not one node: the cross-node comparison, a single node's flat list, the cabling."""

_WORST = {"fail": 3, "warn": 2, "pass": 1, "skip": 0, "": -1}


@dataclass(frozen=True)
class Answer:
    """One result of one check on one node (a check may answer once per device)."""

    node: str
    check: str
    status: str
    reason: str
    device: str = ""
    action: str = ""
    """What to do about a fail or warning, as checks.json says it (``bench.check.node``: the check's own action, or
    the profile's ``[actions.checks]``)."""


@dataclass(frozen=True)
class Grid:
    """A node x check grid of short status words (a check's worst answer on the node), with every answer."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[str, ...]], ...]
    """(node, one status per column: pass/warn/fail/skip or "" where the node has no such check)."""
    reasons: Mapping[tuple[str, str], str]
    """(node, column) -> the reasons of the cell's worst answers, for hover titles."""
    answers: tuple[Answer, ...] = ()


def _answers(node: str, results: Sequence[CheckResult]) -> list[Answer]:
    """The answers of one node's (or the cross-node, or the cabling's) list of check results."""
    return [Answer(node, r.check, r.status, r.reason, r.device or "", r.action or "") for r in results]


def checks_grid(checks: ChecksDoc | None) -> Grid | None:
    """The preflight grid, or None when the run has no checks.json.

    Reads checks.json as ``check`` and ``accept`` write it (``nodes``: one entry per node with its
    ``results``; ``cross_node``), or the older single-node flat ``checks`` list.
    """
    if not checks:
        return None
    answers: list[Answer] = []
    for entry in checks.nodes:
        answers += _answers(entry.node or "?", entry.results)
    answers += _answers("all nodes", checks.cross_node)
    answers += _answers("fabric", checks.cabling)  # --topology: the cabling against the rail-optimised plan
    answers += _answers("this node", checks.checks)  # a single node's flat list (older layout)
    if not answers:
        return None
    columns = tuple(dict.fromkeys(a.check for a in answers))
    nodes = tuple(dict.fromkeys(a.node for a in answers))
    worst: dict[tuple[str, str], str] = {}
    for a in answers:
        key = (a.node, a.check)
        if _WORST.get(a.status, 0) > _WORST.get(worst.get(key, ""), -1):
            worst[key] = a.status
    reasons: dict[tuple[str, str], list[str]] = {}
    for a in answers:
        if a.reason and a.status == worst[(a.node, a.check)]:
            reasons.setdefault((a.node, a.check), []).append(a.reason)
    rows = tuple((node, tuple(worst.get((node, c), "") for c in columns)) for node in nodes)
    return Grid(columns, rows, {k: "; ".join(dict.fromkeys(v)) for k, v in reasons.items()}, tuple(answers))


_TALLY = (("fail", "failed"), ("warn", "warned"), ("pass", "passed"), ("skip", "skipped"))
_ACROSS = {"all nodes": "across the nodes", "fabric": "of the fabric's cabling"}


def _tallied(cells: Sequence[str]) -> str:
    counts = Counter(cells)
    return ", ".join(f"{counts[s]} {word}" for s, word in _TALLY if counts[s])


def grid_tally(grid: Grid) -> str:
    """What the grid holds, each count in the unit its heading names: one answer per check and node (a check
    answering per device counts once, at its worst), then the checks across the nodes and of the cabling.

    ``11 checks on 64 nodes (704 answers, one per check and node: 1 failed, 447 passed, 256 skipped); 2
    checks across the nodes: 2 passed``: never per-device results under a per-check heading.
    """
    parts = []
    node_rows = [(node, cells) for node, cells in grid.rows if node not in _ACROSS]
    if node_rows:
        columns = [i for i in range(len(grid.columns)) if any(cells[i] for _, cells in node_rows)]
        answers = [cells[i] for _, cells in node_rows for i in columns if cells[i]]
        parts.append(
            f"{plural(len(columns), 'check')} on {plural(len(node_rows), 'node')} ({plural(len(answers), 'answer')}, "
            f"one per check and node: {_tallied(answers)})"
        )
    for node, cells in grid.rows:
        if node in _ACROSS:
            answered = [c for c in cells if c]
            parts.append(f"{plural(len(answered), 'check')} {_ACROSS[node]}: {_tallied(answered)}")
    return "; ".join(parts)


def grid_groups(grid: Grid, hosts: Sequence[str] = ()) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """The grid's rows with identical answers merged: (the nodes in few words, every node, the statuses).

    A healthy 64-node cluster is one row; a node that differs gets a row of its own.
    """
    merged: dict[tuple[str, ...], list[str]] = {}
    for node, cells in grid.rows:
        merged.setdefault(cells, []).append(node)
    nodes = [n for n, _ in grid.rows if n not in NOT_NODES]
    known = [h for h in hosts if h in set(nodes)] if hosts else nodes
    return [(node_list(members, known or nodes), tuple(members), cells) for cells, members in merged.items()]


@dataclass(frozen=True)
class ReasonGroup:
    """One reason said once for every check and node that gave it."""

    status: str
    checks: tuple[str, ...]
    nodes: tuple[str, ...]
    where: str
    """The nodes in few words (``all 64 nodes``, ``node01–node04``)."""
    reason: str

    def text(self) -> str:
        return f"{', '.join(self.checks)} ({self.status}) on {self.where}: {self.reason}"


def grid_reasons(grid: Grid, hosts: Sequence[str] = ()) -> list[ReasonGroup]:
    """Every reason behind a cell that is not a plain pass, each said once: identical reasons are grouped
    across checks and nodes (failures first, then warnings, then skips)."""
    nodes = [n for n, _ in grid.rows if n not in NOT_NODES]
    known = [h for h in hosts if h in set(nodes)] if hosts else nodes
    groups: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for a in grid.answers:
        if a.status in ("pass", "") or not a.reason:
            continue
        checks_of, nodes_of = groups.setdefault((a.status, a.reason), ([], []))
        if a.check not in checks_of:
            checks_of.append(a.check)
        if a.node not in nodes_of:
            nodes_of.append(a.node)
    out = [
        ReasonGroup(status, tuple(checks_of), tuple(nodes_of), node_list(nodes_of, known or nodes), reason)
        for (status, reason), (checks_of, nodes_of) in groups.items()
    ]
    return sorted(out, key=lambda g: -_WORST.get(g.status, 0))


COMPARE_HEADERS = ("metric", "state", "tonight", "baseline", "change", "what changed since the baseline")
"""The rates carry their unit in each cell: a rail's or pair's in Gb/s, a collective's in GB/s (``rate_unit_of``)."""


def compare_rows(compare: CompareDoc | None) -> tuple[tuple[str, ...], ...]:
    """The metrics compare flagged (regressed, missing, failed, then improved)."""
    if not compare:
        return ()
    order = {"regressed": 0, "missing": 1, "failed": 2, "improved": 3}
    flagged = sorted((m for m in compare.metrics if m.state in order), key=lambda m: (order[m.state], m.metric))
    return tuple(
        (
            m.metric,
            m.state,
            _rate_cell(m.busbw_GBps, m.scope),
            _rate_cell(m.baseline_GBps, m.scope),
            number_cell(m.change, "+.1%"),
            ", ".join(m.changes) or "—",
        )
        for m in flagged
    )


def _rate_cell(GBps: float | None, scope: str) -> str:
    """``0.28 Gb/s`` for a rail or pair, ``231.40 GB/s`` for a collective; the empty cell's mark when absent."""
    unit, factor = rate_unit_of(scope)
    shown = number_cell(None if GBps is None else GBps * factor, ",.2f")
    return f"{shown} {unit}" if GBps is not None else shown


@dataclass(frozen=True)
class Environment:
    """Versions per node (odd values marked) and the NCCL variables of the run."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    odd: frozenset[tuple[str, str]]
    """(node, version key) whose value differs from most nodes."""
    variables: tuple[tuple[str, str], ...]


def environment(inputs: RunInputs) -> Environment | None:
    """Per-node versions from checks.json (else run.json's, for rank 0's node) and the NCCL_* variables."""
    per_node: dict[str, Mapping[str, Any]] = {}
    for node in inputs.checks.nodes if inputs.checks else ():
        if not isinstance(node.versions, Absent):
            per_node[str(node.node)] = node.versions
    versions = inputs.run.versions
    if not per_node and versions:
        hosts = inputs.run.hosts
        per_node["rank 0" if len(hosts) != 1 else str(hosts[0])] = versions
    env = inputs.run.env
    variables = tuple((str(k), str(v)) for k, v in sorted(env.items()) if str(k).startswith("NCCL_"))
    if not per_node and not variables:
        return None
    keys = [k for k in VERSION_KEYS if any(v.get(k) for v in per_node.values())]
    odd: set[tuple[str, str]] = set()
    for key in keys:
        counts = Counter(str(v.get(key) or "") for v in per_node.values())
        if len(counts) > 1:
            usual = counts.most_common(1)[0][0]
            odd |= {(node, key) for node, v in per_node.items() if str(v.get(key) or "") != usual}
    rows = tuple((node, *(str(v.get(k) or "—") for k in keys)) for node, v in per_node.items())
    return Environment(("node", *keys), rows, frozenset(odd), variables)


def environment_groups(
    env: Environment, hosts: Sequence[str] = ()
) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """The version rows with identical versions merged: (the nodes in few words, every node, the values)."""
    merged: dict[tuple[str, ...], list[str]] = {}
    for row in env.rows:
        merged.setdefault(tuple(row[1:]), []).append(row[0])
    everyone = [row[0] for row in env.rows]
    known = [h for h in hosts if h in set(everyone)] if hosts else everyone
    return [(node_list(members, known or everyone), tuple(members), values) for values, members in merged.items()]


def versions_sentence(env: Environment) -> str:
    """``Versions agree on all 16 nodes.`` or which nodes are odd."""
    if not env.odd:
        return f"Versions agree on {'all ' if len(env.rows) > 1 else ''}{plural(len(env.rows), 'node')}."
    odd_nodes = sorted({node for node, _ in env.odd})
    keys = sorted({key for _, key in env.odd})
    return f"Odd nodes: {', '.join(odd_nodes)} ({', '.join(keys)} differ from the other nodes)."


def facts(run: RunDoc) -> tuple[tuple[str, str], ...]:
    """The run's identity in a few lines, with nothing shown as None."""
    placement = ", ".join(
        p
        for p in (
            plural(run.nnodes, "node") if run.nnodes else "",
            plural(run.nranks, "rank") if run.nranks else "",
        )
        if p
    )
    lines: list[tuple[str, str | None]] = [
        ("cluster", run.cluster or None),
        ("command", run.command or None),
        ("profile", run.profile or None),
        ("status", run.status),
        ("started (UTC)", run.started_utc or None),
        ("finished (UTC)", run.finished_utc or None),
        ("placement", placement or None),
        ("launcher", run.launcher or None),
        ("backend", run.backend or None),
        ("versions", ", ".join(f"{k} {v}" for k, v in run.versions.items() if v) or None),
        ("NCCL_IB_HCA", _or_unset(run.env_var("NCCL_IB_HCA"))),
    ]
    return tuple((k, v) for k, v in lines if v is not None)


def _or_unset(value: str | None) -> str:
    return "(unset)" if value is None else value
