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
        tc = ET.SubElement(ts, "testcase", classname=case.classname, name=case.name, time=f"{case.time_s:.3f}")
        tag = {"fail": "failure", "error": "error", "skip": "skipped"}.get(case.status)
        if tag:
            child = ET.SubElement(tc, tag, message=case.message)
            if tag != "skipped":
                child.set("type", case.status)
                child.text = case.message
        if case.details:
            ET.SubElement(tc, "system-out").text = case.details
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
