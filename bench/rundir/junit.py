"""JUnit XML, the report format CI systems (Jenkins, GitLab, GitHub) show as test results.

One ``<testsuite>`` per railbench command, one ``<testcase>`` per check, collective, rail, node or
metric. The element and attribute set is the common subset of the Jenkins ``junit-10.xsd`` and GitLab's
parser: ``testsuites > testsuite[name tests failures errors skipped time timestamp hostname] >
testcase[classname name time] > (failure|error|skipped)[message] + system-out``.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.bounded import MissingInput, read_bytes
from bench.exits import UserError
from bench.rundir.files import atomic_write_bytes

Status = Literal["pass", "fail", "error", "skip"]


@dataclass(frozen=True)
class Case:
    """One JUnit testcase."""

    classname: str
    """Dotted group, e.g. ``railbench.check`` or ``railbench.rails.node03``."""
    name: str
    status: Status
    message: str = ""
    """One line: why it failed or was skipped."""
    details: str = ""
    """Free text shown under the case (measurements, evidence)."""
    time_s: float = 0.0
    """Wall time of the step that judged it, in seconds."""


def junit_xml(
    suite: str,
    cases: Sequence[Case],
    *,
    hostname: str = "",
    timestamp: float | None = None,
    properties: Mapping[str, str] | None = None,
    time_s: float | None = None,
) -> bytes:
    """The JUnit XML document for one suite of ``cases``; ``properties`` (the run's verdict record) go in the
    suite's ``<properties>``.

    ``time_s`` is the suite's wall time; without it the cases' times are summed. Cases that ran at the same
    time (every rail is under test through the whole rails phase) can add up to more than the wall time.
    """
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() if timestamp is None else timestamp))
    counts = {s: sum(1 for c in cases if c.status == s) for s in ("fail", "error", "skip")}
    total_time = sum(c.time_s for c in cases) if time_s is None else time_s
    root = ET.Element(
        "testsuites",
        name=suite,
        tests=str(len(cases)),
        failures=str(counts["fail"]),
        errors=str(counts["error"]),
        time=f"{total_time:.3f}",
    )
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(cases)),
        failures=str(counts["fail"]),
        errors=str(counts["error"]),
        skipped=str(counts["skip"]),
        time=f"{total_time:.3f}",
        timestamp=stamp,
        hostname=hostname or "localhost",
    )
    if properties:
        props = ET.SubElement(ts, "properties")
        for name, value in properties.items():
            ET.SubElement(props, "property", name=name, value=value)
    for case in cases:
        _add_case(ts, case)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


_TAG = {"fail": "failure", "error": "error", "skip": "skipped"}


def _add_case(suite: ET.Element, case: Case) -> None:
    tc = ET.SubElement(suite, "testcase", classname=case.classname, name=case.name, time=f"{case.time_s:.3f}")
    tag = _TAG.get(case.status)
    if tag:
        child = ET.SubElement(tc, tag, message=case.message)
        if tag != "skipped":
            child.set("type", case.status)
            child.text = case.message
    if case.details:
        ET.SubElement(tc, "system-out").text = case.details


MAX_JUNIT_BYTES = 64 << 20
"""junit.xml of 512 nodes' checks and 8 rails is well under a MiB; anything near this is not railbench's."""


def restated_junit(path: Path, properties: Mapping[str, str], classname: str, cases: Sequence[Case]) -> bytes | None:
    """junit.xml at ``path`` (railbench's own) with the suite's ``properties`` set and the testcases of
    ``classname`` replaced by ``cases``, its counts made again; None when the run has no junit.xml (an import,
    a run made by hand). ``compare`` restates the run's verdict this way: every other case, its output and
    time, stays as the run wrote it. A file that is not railbench's JUnit is a UserError, before anything is
    written."""
    fix = "it is not the junit.xml railbench wrote: delete it, or re-run the job"
    try:
        document = read_bytes(path, fix=fix, max_bytes=MAX_JUNIT_BYTES)
    except MissingInput:
        return None
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise UserError(f"{path} is not XML ({exc}): {fix}") from None
    suite = root.find("testsuite")
    if root.tag != "testsuites" or suite is None:
        raise UserError(f"{path} has no <testsuites><testsuite>: {fix}")
    props = suite.find("properties")
    if props is None:
        props = ET.Element("properties")
        suite.insert(0, props)
    for name, value in properties.items():
        found = next((p for p in props.iter("property") if p.get("name") == name), None)
        if found is None:
            found = ET.SubElement(props, "property", name=name)
        found.set("value", value)
    for old in [tc for tc in suite.findall("testcase") if tc.get("classname") == classname]:
        suite.remove(old)
    for case in cases:
        _add_case(suite, case)
    testcases = suite.findall("testcase")
    counts = {
        "tests": len(testcases),
        "failures": sum(1 for tc in testcases if tc.find("failure") is not None),
        "errors": sum(1 for tc in testcases if tc.find("error") is not None),
    }
    for element in (root, suite):
        for name, count in counts.items():
            element.set(name, str(count))
    suite.set("skipped", str(sum(1 for tc in testcases if tc.find("skipped") is not None)))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(
    path: Path | str,
    suite: str,
    cases: Sequence[Case],
    *,
    hostname: str = "",
    properties: Mapping[str, str] | None = None,
    time_s: float | None = None,
) -> None:
    """Write ``junit.xml`` atomically (``time_s``: the suite's wall time, see ``junit_xml``)."""
    atomic_write_bytes(path, junit_xml(suite, cases, hostname=hostname, properties=properties, time_s=time_s))
