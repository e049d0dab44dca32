"""What the history and compare need from run.json, read in one place.

run.json is a plain mapping today and becomes a typed record later; everything the history derives from it
(the run's *kind*, its *environment*, where its start time came from) is computed here, so the switch
touches only this module.

* **Kind**: what shape of measurement the run was. Two runs are comparable only when they ran the same
  command with the same sweep (``-b``/``-e``/``-f``/``-i``, dtype, collectives) and the same rail-test sizes;
  iteration counts, timeouts and ``-c`` change the noise, not what was measured, so they are left out.
* **Environment**: the facts whose change can explain a change in busbw (NCCL, torch, CUDA, driver, HCA
  firmware, kernel, the node set, the ``NCCL_*`` variables). Per-node versions come from ``checks.json``
  when the run has one (``accept`` writes it), else run.json's ``versions`` (rank 0's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.codec import Absent, present
from bench.jsondoc import JSONObject, Parsed, table
from bench.rundir.checksjson import read_checks_json
from bench.rundir.runjson import RunDoc
from bench.rundir.sections import RailsTestSettings, SweepSettings

ENVIRONMENT_FACTS: tuple[tuple[str, str], ...] = (
    ("nccl", "NCCL"),
    ("torch", "torch"),
    ("cuda", "CUDA"),
    ("driver", "driver"),
    ("firmware", "HCA firmware"),
    ("kernel", "kernel"),
)
"""(key, label) of each version compare attributes a change to, in the order it names them."""

_SWEEP_SHAPE = ("min_bytes", "max_bytes", "step_factor", "step_bytes", "dtype", "collectives")
_RAILS_SHAPE = ("rail_bytes", "pair_bytes", "collectives", "pairs")


def _shape(settings: SweepSettings | RailsTestSettings | Absent, keys: tuple[str, ...]) -> str:
    if not settings:
        return ""
    parts = []
    for key in keys:
        value = present(getattr(settings, key))  # keys named above, each a field of its settings
        if value in (None, "", (), 0) and key == "step_bytes":
            continue
        if isinstance(value, tuple):
            value = ",".join(str(v) for v in value)
        if value is not None:
            parts.append(f"{key}={value}")
    return " ".join(parts)


def run_kind(doc: RunDoc) -> str:
    """``"run sweep[min_bytes=8 max_bytes=16777216 ...]"``: the command and the shape of what it measured."""
    parts = [doc.command]
    sweep = _shape(doc.sweep, _SWEEP_SHAPE)
    if sweep:
        parts.append(f"sweep[{sweep}]")
    rails = _shape(doc.rails_test, _RAILS_SHAPE)
    if rails:
        parts.append(f"rails[{rails}]")
    return " ".join(parts)


def _per_node_versions(run_dir: Path) -> dict[str, Mapping[str, str | None]]:
    """{node: versions} from checks.json as ``check``/``accept`` write it (``nodes``), else {}."""
    doc = read_checks_json(run_dir)  # bounded and read strictly; a damaged one is one line, exit 2
    nodes = doc.nodes if doc is not None else ()
    return {str(node.node): node.versions for node in nodes if not isinstance(node.versions, Absent)}


def _joined(values: set[str]) -> str | None:
    return ",".join(sorted(values)) if values else None


def run_environment(doc: RunDoc, run_dir: Path | str) -> JSONObject:
    """The environment facts of a run (see the module docstring); absent facts are None."""
    versions = doc.versions
    per_node = _per_node_versions(Path(run_dir))
    env: JSONObject = {}
    for key, _ in ENVIRONMENT_FACTS:
        seen = {str(v[key]) for v in per_node.values() if v.get(key)}
        own = versions.get(key)
        if own:
            seen.add(str(own))
        env[key] = _joined(seen)
    env["nccl_env"] = {str(k): str(v) for k, v in sorted(doc.env.items()) if str(k).startswith("NCCL_")}
    env["hosts"] = sorted(set(doc.hosts))
    return env


@dataclass(frozen=True)
class EnvironmentChange:
    """One fact that differs between the baseline runs and tonight."""

    fact: str
    """``NCCL``, ``driver``, ``node set``, ``NCCL_IB_HCA``, ..."""
    before: str
    after: str

    def describe(self) -> str:
        return f"{self.fact} {self.before} -> {self.after}"


def _text(value: object) -> str:
    return "unset" if value in (None, "") else str(value)


def _hosts(facts: Parsed) -> set[str]:
    hosts = facts.get("hosts")  # a list of names, as run_environment writes it
    return {str(h) for h in hosts} if isinstance(hosts, list | tuple) else set()


def environment_changes(baseline: Sequence[Parsed], tonight: Parsed) -> list[EnvironmentChange]:
    """What changed since the baseline (its runs, newest first), fact by fact.

    A fact counts as changed when tonight's value is not the value of the newest baseline run that knows it;
    a fact no run recorded is not a change.
    """
    changes: list[EnvironmentChange] = []
    for key, label in ENVIRONMENT_FACTS:
        before = next((b.get(key) for b in baseline if b.get(key)), None)
        after = tonight.get(key)
        if before and after and before != after:
            changes.append(EnvironmentChange(label, str(before), str(after)))
    if baseline:
        newest = baseline[0]
        old_hosts, new_hosts = _hosts(newest), _hosts(tonight)
        if old_hosts and new_hosts and old_hosts != new_hosts:
            gone, came = sorted(old_hosts - new_hosts), sorted(new_hosts - old_hosts)
            changes.append(EnvironmentChange("node set", "+".join(gone) or "-", "+".join(came) or "-"))
        old_env, new_env = table(newest, "nccl_env"), table(tonight, "nccl_env")
        for name in sorted(set(old_env) | set(new_env)):
            if old_env.get(name) != new_env.get(name):
                changes.append(EnvironmentChange(name, _text(old_env.get(name)), _text(new_env.get(name))))
    return changes
