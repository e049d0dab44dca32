"""Format versions of the run directory's JSON documents, and the named steps that upgrade an older one.

A document written before it carried ``format_version`` is version 0. A reader calls :func:`upgrade` first:
each step turns version N into N + 1, so a reader only ever sees the current shape; a document newer than
this railbench knows is refused in one line (exit 2) rather than misread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from bench.exits import UserError
from bench.jsondoc import Parsed

RUN_FORMAT_VERSION = 2
"""run.json's (``bench.rundir.files``'s format history): 2 since its items say the findings they carry."""
RAILS_FORMAT_VERSION = 3
"""rails.json's: 3 since the pair matrix is written in columns (``pair_cells``) beside each link's aggregate
(``link_levels``), not one ``measurements`` object per pair direction."""
CHECKS_FORMAT_VERSION = 3
COMPARE_FORMAT_VERSION = 1
"""compare.json carried version 1 from its first release, so it has no steps yet."""

Step = Callable[[Parsed], Parsed]


def _stamp(doc: Parsed, version: int) -> Parsed:
    return {**doc, "format_version": version}


def rails_upgrade_0_to_1(doc: Parsed) -> Parsed:
    """Version 1 only adds the version field: a version-less rails.json already has version 1's shape."""
    return _stamp(doc, 1)


def checks_upgrade_0_to_1(doc: Parsed) -> Parsed:
    """Version 1 only adds the version field: a version-less checks.json already has version 1's shape."""
    return _stamp(doc, 1)


def _check_result_1_to_2(entry: object) -> object:
    """One check's answer in version 2's shape: the older single-node layout's ``name`` is ``check``, and the
    ``action`` and ``gpus`` an older railbench did not yet write are null and none. What is not an object is left
    as it is, for the strict read to refuse in its own words."""
    if not isinstance(entry, dict):
        return entry
    out = {("check" if key == "name" and "check" not in entry else key): value for key, value in entry.items()}
    out.setdefault("action", None)
    out.setdefault("gpus", [])
    return out


def _each_result(doc: Parsed, step: Callable[[object], object]) -> Parsed:
    """``doc`` with ``step`` applied to every check's answer: in ``nodes[].results``, ``cross_node``,
    ``cabling`` and the single-node ``checks``."""

    def each(results: object) -> object:
        return [step(r) for r in results] if isinstance(results, list) else results

    out = dict(doc)
    for key in ("cross_node", "cabling", "checks"):
        if key in out:
            out[key] = each(out[key])
    nodes = out.get("nodes")
    if isinstance(nodes, list):
        out["nodes"] = [
            {**n, "results": each(n["results"])} if isinstance(n, dict) and "results" in n else n for n in nodes
        ]
    return out


def checks_upgrade_1_to_2(doc: Parsed) -> Parsed:
    """Version 2 reads every check's answer strictly as the one record of it (``bench.rundir.checksjson``): an
    older answer is given the keys the current writer writes (``name`` renamed ``check``, which that record
    requires; ``action`` null and ``gpus`` none where absent), in ``nodes[].results``, ``cross_node``,
    ``cabling`` and the single-node ``checks``."""
    return _stamp(_each_result(doc, _check_result_1_to_2), 2)


SAID_BY_RAILS = {"railbench.rails": "rails", "railbench.intra_node": "intra-node"}
"""Format 1's item groups whose failures were the rails test's and the intra-node matrix's findings (a rail's
defects, below-target groups and counter findings; a node's GPU defects)."""
NODE_VIEWS = "railbench.nodes"
"""Format 1's group of accept's line per node, which repeats the checks' and the rails test's items."""
CHECK_GROUPS = "railbench.check."
"""Format 1's groups of the preflight checks' items."""


def _item_1_to_2(item: object) -> object:
    """One of format 1's items with what format 2 says of it, derived from its group as the certificate of
    format 1 read it: a rails or intra-node item's failure or warning is that step's finding, a check's the
    preflight's; a node's line repeats others. What is not an object is left for the strict read to refuse."""
    if not isinstance(item, dict):
        return item
    group = item.get("group")
    group = group if isinstance(group, str) else ""
    step = SAID_BY_RAILS.get(group) or ("preflight" if group.startswith(CHECK_GROUPS) else None)
    wrong = item.get("state") in ("fail", "warn")
    found = [{"step": step}] if step is not None and wrong else []
    out = dict(item)
    out.setdefault("repeats", group == NODE_VIEWS)
    out.setdefault("findings", found)
    return out


def run_upgrade_1_to_2(doc: Parsed) -> Parsed:
    """Version 2's items say whether they repeat others (``repeats``) and the step of each finding they carry
    (``findings``): for a version-1 run.json both are derived from the item's group."""
    items = doc.get("items")
    out = {**doc, "items": [_item_1_to_2(i) for i in items]} if isinstance(items, list) else dict(doc)
    return _stamp(out, 2)


def _with_said(entry: object) -> object:
    """One check's answer with ``said``, the words of its reason without the device it opens with, derived as
    the Slurm drain reason of version 2 took them: the reason after ``<device>: `` where it opens so, else
    none."""
    if not isinstance(entry, dict) or "said" in entry:
        return entry
    device, reason = entry.get("device"), entry.get("reason")
    if isinstance(device, str) and device and isinstance(reason, str) and reason.startswith(f"{device}: "):
        return {**entry, "said": reason[len(device) + 2 :]}
    return {**entry, "said": None}


def checks_upgrade_2_to_3(doc: Parsed) -> Parsed:
    """Version 3's answers carry ``said`` (``bench.rundir.checksjson.CheckResult``), written by the checks; a
    version-2 answer's is derived from its reason and device, so an older run directory renders as before."""
    return _stamp(_each_result(doc, _with_said), 3)


def _causes_1_to_2(holder: object) -> object:
    """A record holding ``causes`` (a rails or GPU defect) with each cause's ``said`` derived."""
    if not isinstance(holder, dict) or not isinstance(holder.get("causes"), list):
        return holder
    return {**holder, "causes": [_with_said(c) for c in holder["causes"]]}


def rails_upgrade_1_to_2(doc: Parsed) -> Parsed:
    """Version 2's causes (a check's answer on a node's GPUDirect path, inline) carry ``said`` as checks.json's
    version-3 answers do: derived for a version-1 document as :func:`checks_upgrade_2_to_3` derives it, in
    ``defects[].causes``, the intra-node matrix's ``defects[].causes`` and ``node_causes``."""
    out = dict(doc)
    defects, intra, causes = out.get("defects"), out.get("intra_node"), out.get("node_causes")
    if isinstance(defects, list):
        out["defects"] = [_causes_1_to_2(d) for d in defects]
    gpu_defects = intra.get("defects") if isinstance(intra, dict) else None
    if isinstance(intra, dict) and isinstance(gpu_defects, list):
        out["intra_node"] = {**intra, "defects": [_causes_1_to_2(d) for d in gpu_defects]}
    if isinstance(causes, list):
        out["node_causes"] = [_with_said(c) for c in causes]
    return _stamp(out, 2)


RUN_STEPS: Mapping[int, Step] = {1: run_upgrade_1_to_2}


def rails_upgrade_2_to_3(doc: Parsed) -> Parsed:
    """Version 3 only adds sections (``pair_cells``, ``link_levels``): a version-2 document's pair directions
    stay objects in ``measurements``, and the readers read either (``bench.report.data``)."""
    return _stamp(doc, 3)


RAILS_STEPS: Mapping[int, Step] = {0: rails_upgrade_0_to_1, 1: rails_upgrade_1_to_2, 2: rails_upgrade_2_to_3}
CHECKS_STEPS: Mapping[int, Step] = {0: checks_upgrade_0_to_1, 1: checks_upgrade_1_to_2, 2: checks_upgrade_2_to_3}
COMPARE_STEPS: Mapping[int, Step] = {}


def upgrade(doc: Parsed, path: Path | str, current: int, steps: Mapping[int, Step]) -> Parsed:
    """``doc`` brought to version ``current`` by ``steps`` (version -> step to the next); UserError naming
    ``path`` when its version is not a whole number, or newer than ``current``."""
    version = doc.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise UserError(f"{path}: format_version must be a whole number, not {version!r}: delete it or re-run")
    if version > current:
        raise UserError(f"{path} is format version {version}, this railbench reads up to {current}: upgrade railbench")
    while version < current:
        step = steps.get(version)
        if step is None:  # compare.json was versioned from its start: a version-less one is not railbench's
            raise UserError(f"{path}: format version {version} is not one railbench wrote: delete it or re-run")
        doc = step(doc)
        version += 1
    return doc
