"""The default ``railbench export openmetrics`` output is read by every consumer docs/nightly.md names (issue
43): OpenMetrics parsers (prometheus_client's; Prometheus' own through ``promtool tsdb create-blocks-from
openmetrics``) and the Prometheus text format's (prometheus_client's; ``promtool check metrics``, whose parser
the node exporter's textfile collector and the pushgateway share). The promtool cases skip where promtool is
not installed (Debian: ``apt-get install prometheus``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus

from bench.report.openmetrics import openmetrics_text, prometheus_text
from tests.support.history_fixtures import make_run_dir

BUSBW = {("all_reduce", "world", "world", 1 << 30): 380.0, ("all_gather", "world", "world", 1 << 30): 350.0}
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
"""The metric types of the Prometheus text format 0.0.4 (prometheus/docs, exposition_formats.md)."""


def _run_dir(tmp_path: Path) -> Path:
    return make_run_dir(tmp_path / "run", started_utc="2026-11-20T02:00:00Z", busbw=BUSBW)


def test_the_openmetrics_output_uses_only_types_the_prometheus_text_format_has(tmp_path: Path) -> None:
    text = openmetrics_text(_run_dir(tmp_path))
    declared = re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE)
    assert declared and {kind for _, kind in declared} <= TYPES, declared
    om = {s.name: s for f in parse_openmetrics(text) for s in f.samples}
    prom = {s.name: s for f in parse_prometheus(text) for s in f.samples}
    assert om.keys() == prom.keys()
    info = om["railbench_run_info"]
    assert info.value == 1.0 and info.labels["nccl"] == "2.27.3" and info.labels["command"] == "run"
    assert prom["railbench_run_info"].labels == info.labels


@needs_promtool
@pytest.mark.parametrize("render", [openmetrics_text, prometheus_text], ids=["openmetrics", "prometheus"])
def test_promtool_check_metrics_accepts_both_renderings(tmp_path: Path, render: object) -> None:
    text = render(_run_dir(tmp_path))  # type: ignore[operator]
    done = subprocess.run(
        [str(PROMTOOL), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), done


@needs_promtool
def test_prometheus_own_openmetrics_parser_reads_the_default_output(tmp_path: Path) -> None:
    """``create-blocks-from openmetrics`` parses with Prometheus' OpenMetrics parser and wants a timestamp on
    every sample (a backfill), so one is added; the document is otherwise as exported."""
    text = openmetrics_text(_run_dir(tmp_path))
    stamped = re.sub(r"^([^#\n].*)$", r"\1 1795140000", text, flags=re.MULTILINE)
    (tmp_path / "in.om").write_text(stamped)
    done = subprocess.run(
        [str(PROMTOOL), "tsdb", "create-blocks-from", "openmetrics", str(tmp_path / "in.om"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    series = len([line for line in text.splitlines() if not line.startswith("#")])
    assert done.returncode == 0, done
    assert re.search(rf"\s{series}\s+{series}\s+{series}\s", done.stdout), done.stdout
