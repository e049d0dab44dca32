"""railbench export openmetrics: the run's headline metrics and verdict, parsed back with prometheus_client's
own parsers (OpenMetrics and the Prometheus text format the node exporter reads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus

from bench.commands.compare import CompareConfig
from bench.commands.compare import run as compare
from bench.history.store import add_run
from bench.report.openmetrics import prometheus_text
from tests.support import railbench_inline
from tests.support.history_fixtures import make_run_dir

AR = ("all_reduce", "world", "world")
PAIR = ("sendrecv", "pair", "node01-node02/rail0", 1 << 30)
BUSBW = {(*AR, 1024): 0.5, (*AR, 1 << 20): 40.0, (*AR, 1 << 30): 380.0, PAIR: 48.0}
Labels = tuple[tuple[str, str], ...]


def _key(size: int) -> Labels:
    return (
        ("cluster", "lab"),
        ("collective", "all_reduce"),
        ("group", "world"),
        ("scope", "world"),
        ("size_bytes", str(size)),
    )


def _samples(text: str, parse: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in parse(text) for s in f.samples}  # type: ignore[operator]


def test_openmetrics_parses_and_names_units(tmp_path: Path) -> None:
    run_dir = make_run_dir(
        tmp_path / "run", started_utc="2026-11-20T02:00:00Z", busbw=BUSBW, meta_extra={"profile": "local"}
    )
    done = railbench_inline(["export", "openmetrics", str(run_dir)])
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(done.stdout)}
    assert families["railbench_busbw_bytes_per_second"].unit == "bytes_per_second"
    assert families["railbench_time_seconds"].unit == "seconds"
    samples = _samples(done.stdout, parse_openmetrics)
    assert samples[("railbench_busbw_bytes_per_second", _key(1 << 30))] == 380e9
    assert samples[("railbench_busbw_bytes_per_second", _key(1 << 20))] == 40e9
    # below the profile's min_bytes (1M) and per-pair rows stay out
    assert ("railbench_busbw_bytes_per_second", _key(1024)) not in samples
    assert not any(dict(labels).get("scope") == "pair" for _, labels in samples)
    # the local profile judges nothing: MEASURED, not PASS
    verdicts = {dict(labels)["verdict"]: v for (name, labels), v in samples.items() if name == "railbench_verdict"}
    assert verdicts == {"PASS": 0.0, "FAIL": 0.0, "MEASURED": 1.0, "REGRESSED": 0.0, "SKIP": 0.0, "ERROR": 0.0}
    assert (
        samples[("railbench_run_start_timestamp_seconds", (("cluster", "lab"),))] == 1795140000.0
    )  # 2026-11-20T02:00:00Z


@pytest.mark.slow
def test_the_verdict_follows_compare_and_the_textfile_is_atomic(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite"
    for night in range(1, 6):
        add_run(history, make_run_dir(tmp_path / f"n{night}", started_utc=f"2026-11-0{night}T02:00:00Z", busbw=BUSBW))
    tonight = make_run_dir(
        tmp_path / "tonight", started_utc="2026-11-09T02:00:00Z", busbw={**BUSBW, (*AR, 1 << 30): 300.0}
    )
    assert compare(CompareConfig(run_dir=tonight, history=history)) == 1
    beside = (tonight / "metrics.prom").read_text()  # written with the report
    assert beside == prometheus_text(tonight)
    textfile = tmp_path / "textfile" / "railbench.prom"
    textfile.parent.mkdir()
    done = railbench_inline(["export", "openmetrics", str(tonight), "--format", "prometheus", "--out", str(textfile)])
    assert done.returncode == 0 and done.stdout == "", done.stderr
    assert [p.name for p in textfile.parent.iterdir()] == ["railbench.prom"]  # no temporary file left behind
    samples = _samples(textfile.read_text(), parse_prometheus)
    assert samples[("railbench_verdict", (("cluster", "lab"), ("verdict", "REGRESSED")))] == 1.0
    assert samples[("railbench_compare_metrics", (("cluster", "lab"), ("state", "regressed")))] == 1.0
    info = next(labels for name, labels in samples if name == "railbench_run_info")
    assert dict(info)["nccl"] == "2.27.3" and dict(info)["command"] == "run"
    assert json.loads((tonight / "compare.json").read_text())["exit_status"] == 1


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    done = railbench_inline(["export", "openmetrics", str(tmp_path / "nope")])
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    done = railbench_inline(["export", "openmetrics", str(tmp_path), "--format", "json"])
    assert done.returncode == 2 and "--format" in done.stderr


def test_values_read_as_results_csv_wrote_them(tmp_path: Path) -> None:
    # 0.2601359 GB/s x 1e9 is 260135899.99999997 in binary floating point; the exposition says 2.601359e+08
    run_dir = make_run_dir(
        tmp_path / "run", started_utc="2026-11-20T02:00:00Z", busbw={(*AR, 1 << 30): 0.2601359}, meta_extra={}
    )
    text = prometheus_text(run_dir)
    busbw = [line for line in text.splitlines() if line.startswith("railbench_busbw_bytes_per_second{")]
    assert busbw and busbw[0].endswith(" 2.601359e+08"), busbw
    assert not any("99999" in line or "00000001" in line for line in text.splitlines() if not line.startswith("#"))
