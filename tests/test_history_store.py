"""The SQLite history: idempotent adds, named migrations, journal mode, and the history command."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from bench.exits import UserError
from bench.history.records import metrics_from_rows, node_hash, read_run
from bench.history.schema import MIGRATIONS, SCHEMA_VERSION
from bench.history.store import (
    add_run,
    comparable_runs,
    journal_mode_for,
    list_runs,
    metrics_of,
    open_store,
)
from tests.support import railbench_inline
from tests.support.history_fixtures import make_run_dir

AR = ("all_reduce", "world", "world")


def _run(tmp_path: Path, name: str, day: int, value: float = 300.0, **kw: object) -> Path:
    busbw = {
        (*AR, 1 << 20): value / 3,
        (*AR, 1 << 30): value,
        ("sendrecv", "pair", "node01-node02/rail0", 1 << 30): 48.0,
    }
    return make_run_dir(tmp_path / "runs" / name, started_utc=f"2026-11-{day:02d}T02:00:00Z", busbw=busbw, **kw)


def test_add_run_is_idempotent(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite"
    run_dir = _run(tmp_path, "a", 1)
    first = add_run(history, run_dir)
    assert add_run(history, run_dir) == first
    make_run_dir(run_dir, started_utc="2026-11-01T02:00:00Z", busbw={(*AR, 1 << 30): 250.0})  # results rewritten
    assert add_run(str(history), str(run_dir)) == first
    with closing(open_store(history)) as conn:
        (stored,) = list_runs(conn)
        assert (stored.id, stored.metrics, stored.cluster, stored.nranks, stored.nccl) == (
            first,
            1,
            "lab",
            16,
            "2.27.3",
        )
        (metric,) = metrics_of(conn, [first])[first]
        assert (metric.key, metric.busbw_GBps, metric.failed) == ("all_reduce/world/world/1073741824", 250.0, False)


def test_comparable_runs_need_same_cluster_nodes_and_ranks(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite"
    ids = [add_run(history, _run(tmp_path, f"n{d}", d)) for d in (1, 2, 3)]
    add_run(history, _run(tmp_path, "other-nodes", 4, hosts=("node01", "node09")))
    add_run(history, _run(tmp_path, "other-ranks", 5, nranks=8))
    add_run(history, _run(tmp_path, "other-cluster", 6, cluster="prod"))
    add_run(history, _run(tmp_path, "failed", 7, status="failed"))
    with closing(open_store(history)) as conn:
        same = {"cluster": "lab", "nranks": 16, "nnodes": 2, "kind": "run", "command": "run"}
        found = comparable_runs(conn, **same, node_hash=node_hash(["node02", "node01"]), before_utc="2026-11-30")
        assert [r.id for r in found] == ids[::-1]  # newest first, only the comparable ones
        # Without the node-set filter (the default since schema 3), a replaced node keeps the run comparable.
        found = comparable_runs(conn, **same, before_utc="2026-11-30")
        assert len(found) == 4 and found[0].run_dir.endswith("other-nodes")
        assert len(list_runs(conn)) == 7 and len(list_runs(conn, cluster="prod")) == 1


def test_named_migrations_upgrade_an_old_store(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite"
    with closing(sqlite3.connect(history, isolation_level=None)) as conn:  # a store written by schema 1
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_utc TEXT)")
        MIGRATIONS[0].apply(conn)
        conn.execute("INSERT INTO schema_migrations VALUES (1, 'runs_and_metrics', '2026-01-01T00:00:00Z')")
        conn.execute("PRAGMA user_version = 1")
    add_run(history, _run(tmp_path, "a", 1))
    with closing(open_store(history)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY version")]
        assert names == [
            "runs_and_metrics",
            "comparable_runs_index",
            "run_kind_and_environment",
            "rail_errors",
            "phase_times",
            "soak",
        ]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = {r[1] for r in conn.execute("PRAGMA index_list(runs)")}
        assert "runs_comparable" in indexes


def test_newer_or_foreign_files_are_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.sqlite"
    with closing(sqlite3.connect(newer)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(UserError, match="upgrade railbench"):
        open_store(newer)
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database at all, just text " * 100)
    with pytest.raises(UserError, match="not a railbench history"):
        open_store(junk)
    with pytest.raises(UserError, match="no history at"):
        open_store(tmp_path / "absent.sqlite", create=False)


def test_network_filesystems_use_a_rollback_journal(tmp_path: Path) -> None:
    mounts = (
        "/dev/nvme0n1p1 / ext4 rw 0 0\n"
        "10.0.0.5:/export/home /home nfs4 rw,vers=4.2 0 0\n"
        "lambda-fs /lambda/nfs/shared fuse.lambdafs rw 0 0\n"
    )
    assert journal_mode_for(Path("/home/alice/reports/history.sqlite"), mounts) == "delete"
    assert journal_mode_for(Path("/lambda/nfs/shared/h.sqlite"), mounts) == "delete"
    assert journal_mode_for(Path("/var/lib/railbench/history.sqlite"), mounts) == "wal"
    assert journal_mode_for(Path("/homework/h.sqlite"), mounts) == "wal"  # a prefix of a name is not a mount


def test_metrics_take_the_out_of_place_headline() -> None:
    rows = [
        {
            "collective": "all_reduce",
            "scope": "world",
            "group": "world",
            "bytes": "1024",
            "placement": "out-of-place",
            "busbw_GBps": "10",
            "wrong": "0",
            "nranks": "8",
        },
        {
            "collective": "all_reduce",
            "scope": "world",
            "group": "world",
            "bytes": "1024",
            "placement": "in-place",
            "busbw_GBps": "99",
            "wrong": "",
            "nranks": "8",
        },
        {
            "collective": "all_reduce",
            "scope": "world",
            "group": "world",
            "bytes": "1024",
            "placement": "out-of-place",
            "busbw_GBps": "14",
            "wrong": "0",
            "nranks": "8",
        },
        {
            "collective": "all_gather",
            "scope": "world",
            "group": "world",
            "bytes": "1024",
            "placement": "in-place",
            "busbw_GBps": "7",
            "wrong": "3",
            "nranks": "8",
        },
    ]
    reduce, gather = metrics_from_rows(rows)
    assert (reduce.busbw_GBps, reduce.samples, reduce.failed, reduce.nranks) == (12.0, 2, False, 8)
    assert (gather.busbw_GBps, gather.wrong, gather.failed) == (7.0, 3, True)
    with pytest.raises(UserError, match="bytes"):
        metrics_from_rows([{"collective": "x", "bytes": "lots"}])


def test_read_run_refuses_a_folder_without_run_json(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a railbench run directory"):
        read_run(tmp_path)


def test_history_command_adds_and_lists(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite"
    dirs = [str(_run(tmp_path, f"n{d}", d)) for d in (1, 2)]
    added = railbench_inline(["history", "add", *dirs, "--history", str(history)])
    assert added.returncode == 0, added.stderr
    assert added.stdout.splitlines()[0].startswith("history: run 1 <- ")
    listed = railbench_inline(["history", "list", "--history", str(history)])
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "started", "(UTC)"] and len(lines) == 3
    assert lines[1].split()[:4] == ["2", "2026-11-02T02:00:00Z", "lab", "run"]
    as_json = railbench_inline(["history", "list", "--json", "--limit", "1", "--history", str(history)])
    assert json.loads(as_json.stdout)["metrics"] == 3
    missing = railbench_inline(["history", "list", "--history", str(tmp_path / "none.sqlite")])
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "history add" in missing.stderr
    bad = railbench_inline(["history", "add", str(tmp_path), "--history", str(history)])
    assert bad.returncode == 2 and "run.json is missing" in bad.stderr


def test_damaged_run_json_is_bad_input(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, "a", 1)
    meta = json.loads((run_dir / "run.json").read_text())
    meta["nranks"] = "sixteen"
    (run_dir / "run.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="nranks"):
        add_run(tmp_path / "h.sqlite", run_dir)
