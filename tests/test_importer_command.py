"""railbench import nccl-tests: every corpus log becomes a run directory in the history; re-imports are
idempotent; JSON, failed and truncated logs; imported runs feed compare."""

from __future__ import annotations

import csv
import json
import os
from contextlib import closing
from pathlib import Path

import jsonschema
import pytest

from bench.commands.importer import ImportConfig, run
from bench.history.store import list_runs, open_store
from bench.rundir.results_csv import RESULT_COLUMNS, read_results_rows
from bench.rundir.runjson import SCHEMA_PATH, read_run_json
from tests.support import railbench
from tests.support.history_fixtures import json_log, text_log
from tests.support.nccl_tests_corpus import EXPECTED

RUN_SCHEMA = json.loads(SCHEMA_PATH.read_text())
SIZES = [1 << k for k in range(20, 31, 2)]
HOSTS = ("gpu-a01", "gpu-a02")


def _imported(out: str) -> list[Path]:
    return [Path(line.split(" -> ")[1].split(":")[0]) for line in out.splitlines() if line.startswith("imported ")]


@pytest.mark.slow
def test_every_corpus_log_imports(corpus: Path, tmp_path: Path, capsys: object) -> None:
    logs = tuple(corpus / f"{stem}.txt" for stem in sorted(EXPECTED))
    config = ImportConfig(
        "nccl-tests", logs, cluster="corpus", out_root=tmp_path / "runs", history=tmp_path / "h.sqlite"
    )
    assert run(config) == 0
    run_dirs = _imported(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert len(run_dirs) == len(logs) == len(set(run_dirs))
    for stem, run_dir in zip(sorted(EXPECTED), run_dirs, strict=True):
        meta = read_run_json(run_dir).to_json()
        jsonschema.validate(meta, RUN_SCHEMA)  # imports write the same typed record as live runs
        rows = read_results_rows(run_dir)
        tables = EXPECTED[stem]
        assert meta["command"] == "import" and meta["cluster"] == "corpus"
        assert meta["nranks"] == max(n for _, n, _, _, _ in tables)
        assert [t["collective"] for t in meta["source"]["tables"]] == [c for c, _, _, _, _ in tables]
        assert len(rows) == sum(2 * n for _, _, n, _, _ in tables)  # out-of-place and in-place halves
        first = rows[0]
        assert (int(first["bytes"]), float(first["busbw_GBps"])) == tables[0][3][:2]
        assert first["placement"] == "out-of-place" and rows[1]["placement"] == "in-place"
        assert float(first["busbw_Gbps"]) == round(float(first["busbw_GBps"]) * 8, 6)
    with closing(open_store(tmp_path / "h.sqlite")) as conn:
        assert len(list_runs(conn, limit=None)) == len(logs)
    failed = read_run_json(
        run_dirs[sorted(EXPECTED).index("nccl_tests_all_reduce_h100_128node_maxbytes_failure_issue322")]
    ).to_json()
    assert (failed["status"], failed["verdict"], failed["source"]["truncated"]) == ("failed", "error", True)
    assert failed["nnodes"] == 128 and failed["launcher"] == "mpirun"
    assert failed["env"]["NCCL_ALGO"] == "Ring" and "LD_LIBRARY_PATH" not in failed["env"]
    multi = read_results_rows(run_dirs[sorted(EXPECTED).index("nccl_tests_all_reduce_h100_ndr_1node_2node_issue290")])
    assert {(r["scope"], r["group"], r["table"]) for r in multi} == {
        ("node", "node005", "1"),
        ("world", "world", "2"),
        ("world", "world", "3"),
    }


@pytest.mark.slow
def test_reimport_is_idempotent_and_json_carries_env(tmp_path: Path) -> None:
    log = tmp_path / "all_reduce.json"
    log.write_text(json_log("all_reduce", HOSTS, 8, SIZES))
    args = [
        "import",
        "nccl-tests",
        str(log),
        "--cluster",
        "lab",
        "--out-root",
        str(tmp_path / "runs"),
        "--history",
        str(tmp_path / "h.sqlite"),
    ]
    first, again = railbench(args, timeout=60), railbench(args, timeout=60)
    assert first.returncode == again.returncode == 0, first.stderr
    assert _imported(first.stdout) == _imported(again.stdout)
    assert "history run 1" in first.stdout and "history run 1" in again.stdout
    (run_dir,) = _imported(first.stdout)
    meta = read_run_json(run_dir).to_json()
    assert meta["started_utc"] == "2026-11-20T22:43:10Z" and run_dir.name == "20261120T224310Z-lab"
    assert meta["env"] == {"NCCL_DEBUG": "WARN", "NCCL_IB_HCA": "^=mlx5_0"}
    assert meta["versions"]["nccl"] == "2.29.2" and meta["hosts"] == list(HOSTS) and meta["nranks"] == 16
    assert meta["ranks"][9] == {"rank": 9, "host": "gpu-a02", "local_rank": 1, "node_rank": 1}
    with (run_dir / "results.csv").open() as fh:
        assert tuple(next(csv.reader(fh)))[: len(RESULT_COLUMNS)] == RESULT_COLUMNS


@pytest.mark.slow
def test_bad_logs_exit_2_and_the_rest_still_import(tmp_path: Path) -> None:
    good = tmp_path / "sendrecv.log"
    good.write_text(text_log("sendrecv", HOSTS, 1, SIZES))
    junk = tmp_path / "junk.log"
    junk.write_text("Segmentation fault (core dumped)\n")
    done = railbench(
        ["import", "nccl-tests", str(junk), str(good), "--out-root", str(tmp_path / "runs"), "--no-history"], timeout=60
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no nccl-tests result rows" in done.stderr
    assert len(_imported(done.stdout)) == 1 and not (tmp_path / "reports").exists()
    wrong_kind = railbench(["import", "ib_write_bw", str(good)], timeout=60)
    assert wrong_kind.returncode == 2 and "invalid choice" in wrong_kind.stderr


@pytest.mark.slow
def test_truncated_and_wrong_logs(tmp_path: Path, capsys: object) -> None:
    cut = tmp_path / "cut.log"
    cut.write_text(text_log("all_gather", HOSTS, 8, SIZES, stop_after=3, cut_last_row=True))
    wrong = tmp_path / "wrong.log"
    wrong.write_text(text_log("all_reduce", HOSTS, 8, SIZES, wrong={SIZES[1]: 4}))
    os.utime(wrong, (1_790_000_000, 1_790_000_000))
    config = ImportConfig("nccl-tests", (cut, wrong), out_root=tmp_path / "runs", no_history=True)
    assert run(config) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "warning: truncated" in out
    cut_dir, wrong_dir = _imported(out)
    cut = read_run_json(cut_dir)
    assert (cut.status, cut.verdict) == ("incomplete", "error")
    assert len(read_results_rows(cut_dir)) == 6
    assert read_run_json(wrong_dir).verdict == "fail" and read_run_json(wrong_dir).started_utc == "2026-09-21T14:13:20Z"


@pytest.mark.slow
def test_imported_history_feeds_compare(tmp_path: Path) -> None:
    """Months of old logs start the history: import five nights, then compare a sixth against them."""
    history = tmp_path / "h.sqlite"
    for night in range(6):
        log = tmp_path / f"night{night}.log"
        text = text_log("all_reduce", HOSTS, 8, SIZES)
        if night == 5:  # tonight the largest size is 20% slower
            from tests.support.history_fixtures import float_str, sweep

            p = sweep("all_reduce", 16, SIZES)[-1]
            old, new = float_str(p.busbw, 6), float_str(p.busbw * 0.8, 6)
            text = text.replace(f"{float_str(p.algbw, 6)}  {old}", f"{float_str(p.algbw * 0.8, 6)}  {new}")
        log.write_text(text)
        os.utime(log, (1_790_000_000 + night * 86400,) * 2)
    config = ImportConfig(
        "nccl-tests",
        tuple(tmp_path / f"night{n}.log" for n in range(6)),
        cluster="lab",
        out_root=tmp_path / "runs",
        history=history,
    )
    assert run(config) == 0
    tonight = sorted((tmp_path / "runs").iterdir())[-1]
    done = railbench(["compare", str(tonight), "--history", str(history)], timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    doc = json.loads((tonight / "compare.json").read_text())
    assert {m["metric"] for m in doc["metrics"] if m["state"] == "regressed"} == {f"all_reduce/world/world/{SIZES[-1]}"}
    assert doc["metrics"][0]["baseline_runs"] == 5
