"""rails.json and checks.json carry a format version: an older (version-less) one reads as a current one
would, a newer one is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.exits import UserError
from bench.rundir.checksjson import read_checks_json
from bench.rundir.docversion import CHECKS_FORMAT_VERSION, RAILS_FORMAT_VERSION
from bench.rundir.railsdoc import read_rails_doc

RAILS_V0: dict[str, object] = {"skipped": "no rails", "nodes": [], "rails": [], "measurements": [], "defects": []}
CHECKS_V0: dict[str, object] = {"profile": "p", "nranks": 2, "verdict": "PASS", "nodes": [], "cross_node": []}


def _write(run_dir: Path, name: str, doc: dict[str, object]) -> Path:
    run_dir.mkdir(exist_ok=True)
    (run_dir / name).write_text(json.dumps(doc))
    return run_dir


def test_a_versionless_rails_json_reads_as_the_current_version(tmp_path: Path) -> None:
    old = read_rails_doc(_write(tmp_path / "old", "rails.json", RAILS_V0))
    new = read_rails_doc(_write(tmp_path / "new", "rails.json", {**RAILS_V0, "format_version": RAILS_FORMAT_VERSION}))
    assert old is not None and old == new
    assert old.to_json()["format_version"] == RAILS_FORMAT_VERSION


def test_a_versionless_checks_json_reads_as_the_current_version(tmp_path: Path) -> None:
    old = read_checks_json(_write(tmp_path / "old", "checks.json", CHECKS_V0))
    current = {**CHECKS_V0, "format_version": CHECKS_FORMAT_VERSION}
    assert old == read_checks_json(_write(tmp_path / "new", "checks.json", current)) == current


@pytest.mark.parametrize(("name", "doc"), [("rails.json", RAILS_V0), ("checks.json", CHECKS_V0)])
def test_a_newer_version_is_refused_in_one_line(tmp_path: Path, name: str, doc: dict[str, object]) -> None:
    _write(tmp_path, name, {**doc, "format_version": 99})
    with pytest.raises(UserError) as refused:
        (read_rails_doc if name == "rails.json" else read_checks_json)(tmp_path)
    message = str(refused.value)
    assert "\n" not in message and name in message and "99" in message and "upgrade railbench" in message


def test_compare_json_version_1_reads_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    from bench.history.outputs import read_compare_json

    doc = {"format_version": 1, "metrics": []}
    (tmp_path / "compare.json").write_text(json.dumps(doc))
    assert read_compare_json(tmp_path / "compare.json") == doc
    (tmp_path / "compare.json").write_text(json.dumps({**doc, "format_version": 99}))
    with pytest.raises(UserError, match="upgrade railbench"):
        read_compare_json(tmp_path / "compare.json")


def test_report_refuses_a_newer_rails_json_with_exit_2_in_one_line(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    shutil.copytree(Path(__file__).parent.parent / "reports" / "sample" / "run", run_dir)
    rails = json.loads((run_dir / "rails.json").read_text())
    (run_dir / "rails.json").write_text(json.dumps({**rails, "format_version": 99}))
    done = subprocess.run(
        [sys.executable, "-m", "bench", "report", str(run_dir), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "upgrade railbench" in done.stderr
