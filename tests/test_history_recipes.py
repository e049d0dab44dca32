"""The nightly recipes in ci/nightly/ are valid: sbatch directives, bash syntax, systemd units, the cron line
and the GitHub Actions workflow."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import REPO

NIGHTLY = REPO / "ci" / "nightly"
SBATCH = NIGHTLY / "lambda-1cc.sbatch"

# sbatch's long options (Slurm 23.x manual, "OPTIONS"); a misspelt one is a hard error at submit time.
_SBATCH_OPTIONS_TEXT = """
account acctg-freq array batch bb bbf begin chdir cluster-constraint clusters comment constraint container
container-id contiguous core-spec cores-per-socket cpu-freq cpus-per-gpu cpus-per-task deadline delay-boot
dependency distribution error exclude exclusive export export-file extra extra-node-info get-user-env gid
gpu-bind gpu-freq gpus gpus-per-node gpus-per-socket gpus-per-task gres gres-flags hint hold ignore-pbs input
job-name kill-on-invalid-dep licenses mail-type mail-user mcs-label mem mem-bind mem-per-cpu mem-per-gpu
mincpus network nice no-kill no-requeue nodefile nodelist nodes ntasks ntasks-per-core ntasks-per-gpu
ntasks-per-node ntasks-per-socket open-mode output overcommit oversubscribe parsable partition power prefer
priority profile propagate qos quiet reboot requeue reservation signal sockets-per-node spread-job switches
test-only thread-spec threads-per-core time time-min tmp tres-bind tres-per-task uid use-min-nodes verbose
wait wait-all-nodes wckey wrap
"""
SBATCH_OPTIONS = frozenset(_SBATCH_OPTIONS_TEXT.split())


def _directives(script: str) -> list[tuple[str, str | None]]:
    """The #SBATCH options sbatch will read: only those before the first command line count."""
    found: list[tuple[str, str | None]] = []
    for line in script.splitlines()[1:]:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break
        if m := re.match(r"#SBATCH\s+--([a-z-]+)(?:[= ](\S+))?\s*$", stripped):
            found.append((m.group(1), m.group(2)))
        else:
            assert not stripped.startswith("#SBATCH"), f"unreadable directive: {line!r}"
    return found


def test_sbatch_directives_are_valid() -> None:
    script = SBATCH.read_text()
    directives = _directives(script)
    assert directives, "no #SBATCH lines before the first command"
    unknown = [name for name, _ in directives if name not in SBATCH_OPTIONS]
    assert not unknown, f"not sbatch options: {unknown}"
    all_lines = [ln for ln in script.splitlines() if ln.lstrip().startswith("#SBATCH")]
    assert len(all_lines) == len(directives), "an #SBATCH line after the first command is ignored by sbatch"
    options = dict(directives)
    assert options["ntasks-per-node"] == "8" and options["gpus-per-node"] == "8" and "exclusive" in options
    assert re.fullmatch(r"\d+:\d\d:\d\d", options["time"] or "")


def test_sbatch_script_does_the_nightly() -> None:
    script = SBATCH.read_text()
    assert "export NCCL_IB_HCA='^=mlx5_0'" in script
    assert re.search(r'"\$RAILBENCH" accept --profile lambda-1cc', script)
    assert re.search(r'"\$RAILBENCH" compare "\$run_dir"', script)
    assert "srun --ntasks-per-node=8 --mpi=pmix" in script and "--map-by ppr:8:node" in script
    assert script.rstrip().endswith("exit $(( accept_status > compare_status ? accept_status : compare_status ))")
    done = subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    units = [NIGHTLY / "railbench-nightly.service", NIGHTLY / "railbench-nightly.timer"]
    for unit in units:  # verify resolves the timer's service by name in the same folder
        shutil.copy(unit, tmp_path / unit.name)
    done = subprocess.run(
        [analyze, "verify", *(str(tmp_path / u.name) for u in units)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if "System has not been booted with systemd" in done.stderr:
        pytest.skip("systemd-analyze cannot verify units without systemd here")
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr  # warnings count too
    timer = (NIGHTLY / "railbench-nightly.timer").read_text()
    calendar = re.search(r"^OnCalendar=(.+)$", timer, re.M)
    assert calendar is not None
    checked = subprocess.run([analyze, "calendar", calendar.group(1)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and "Next elapse" in checked.stdout


def test_cron_line() -> None:
    service = (NIGHTLY / "railbench-nightly.service").read_text()
    (line,) = [ln.lstrip("# ").strip() for ln in service.splitlines() if "sbatch --wait ci/nightly" in ln]
    fields = line.split(maxsplit=5)
    minute, hour, day, month, weekday = fields[:5]
    assert (minute, hour, day, month, weekday) == ("0", "2", "*", "*", "*")
    done = subprocess.run(["bash", "-n", "-c", fields[5]], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_github_workflow() -> None:
    workflow = yaml.safe_load((NIGHTLY / "github-actions-nightly.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare 'on' key as true
    assert triggers["schedule"] == [{"cron": "0 2 * * *"}] and "workflow_dispatch" in triggers
    (job,) = workflow["jobs"].values()
    assert "self-hosted" in job["runs-on"]
    steps = job["steps"]
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    assert upload["if"].startswith("always()") and "report.html" in upload["with"]["path"]
    for step in steps:
        if "run" in step:
            done = subprocess.run(["bash", "-n", "-c", step["run"]], capture_output=True, text=True, check=False)
            assert done.returncode == 0, f"{step.get('name')}: {done.stderr}"


def test_sbatch_drops_the_metrics_into_the_textfile_directory(tmp_path: Path) -> None:
    """The script's own export block, run as written, leaves one complete railbench.prom and no temp file."""
    from prometheus_client.parser import text_string_to_metric_families

    from tests.history_fixtures import make_run_dir
    from tests.support import rank_env

    script = SBATCH.read_text()
    block = re.search(r'^if \[ -n "\$TEXTFILE_DIR" \].*?^fi$', script, re.M | re.S)
    assert block is not None, "no textfile export block in the sbatch script"
    run_dir = make_run_dir(
        tmp_path / "run", started_utc="2026-11-20T02:00:00Z", busbw={("all_reduce", "world", "world", 1 << 30): 380.0}
    )
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    wrapper = tmp_path / "railbench"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m bench "$@"\n')
    wrapper.chmod(0o755)
    env = rank_env({"RAILBENCH": str(wrapper), "TEXTFILE_DIR": str(textfile), "run_dir": str(run_dir)})
    done = subprocess.run(["bash", "-c", block.group(0)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr, done.stderr
    assert [p.name for p in textfile.iterdir()] == ["railbench.prom"]
    names = {f.name for f in text_string_to_metric_families((textfile / "railbench.prom").read_text())}
    assert {"railbench_busbw_bytes_per_second", "railbench_verdict"} <= names
