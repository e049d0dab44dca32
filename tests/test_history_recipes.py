"""The nightly recipes in ci/nightly/ are valid (sbatch directives, bash syntax, systemd units, the cron line
and the GitHub Actions workflow), every one runs on every usable node, and the recipe itself, run with
LAUNCHER=mpirun on this machine as root, tells a pass (0), a regression (1) and a launch fault (3)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.runtime.launch import find_mpirun
from tests.support import REPO, rank_env

NIGHTLY = REPO / "ci" / "nightly"
SBATCH = NIGHTLY / "lambda-1cc.sbatch"
SOAK = REPO / "ci" / "slurm" / "railbench-soak.sbatch"

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


@pytest.mark.parametrize("recipe", [SBATCH, SOAK], ids=["nightly", "soak"])
def test_sbatch_directives_are_valid(recipe: Path) -> None:
    script = recipe.read_text()
    directives = _directives(script)
    assert directives, "no #SBATCH lines before the first command"
    unknown = [name for name, _ in directives if name not in SBATCH_OPTIONS]
    assert not unknown, f"not sbatch options: {unknown}"
    all_lines = [ln for ln in script.splitlines() if ln.lstrip().startswith("#SBATCH")]
    assert len(all_lines) == len(directives), "an #SBATCH line after the first command is ignored by sbatch"
    options = dict(directives)
    assert options["ntasks-per-node"] == "8" and options["gpus-per-node"] == "8" and "exclusive" in options
    assert re.fullmatch(r"\d+:\d\d:\d\d", options["time"] or "")
    done = subprocess.run(["bash", "-n", str(recipe)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_sbatch_script_does_the_nightly() -> None:
    script = SBATCH.read_text()
    assert "export NCCL_IB_HCA='^=mlx5_0'" in script and 'PROFILE="${PROFILE:-lambda-1cc}"' in script
    assert re.search(r'"\$RAILBENCH" accept --profile "\$PROFILE"', script)
    assert re.search(r'"\$RAILBENCH" compare "\$run_dir"', script)
    assert 'RANKS_PER_NODE="${RANKS_PER_NODE:-8}"' in script  # one rank per GPU and rail
    assert 'srun --ntasks-per-node="$RANKS_PER_NODE" --mpi=pmix' in script
    assert '--map-by "ppr:$RANKS_PER_NODE:node"' in script
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
    (line,) = [ln.lstrip("# ").strip() for ln in service.splitlines() if ln.startswith("#") and "sbatch --wait" in ln]
    assert "%" not in line  # cron turns an unescaped % into a newline
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

    from tests.support import rank_env
    from tests.support.history_fixtures import make_run_dir

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


def test_an_empty_textfile_dir_skips_the_metrics() -> None:
    """``TEXTFILE_DIR=`` (empty) skips the metrics, as the script says; only an unset one takes the node exporter's
    folder. (``${TEXTFILE_DIR:-...}`` took the default for an empty one too: the recipe test below, which sets it
    empty, wrote railbench.prom into this machine's /var/lib/prometheus/node-exporter.)"""
    (line,) = [ln for ln in SBATCH.read_text().splitlines() if ln.startswith("TEXTFILE_DIR=")]
    script = f'{line}\nprintf "%s" "$TEXTFILE_DIR"'
    empty = subprocess.run(["bash", "-c", script], env={"TEXTFILE_DIR": ""}, capture_output=True, text=True)
    unset = subprocess.run(["bash", "-c", script], env={}, capture_output=True, text=True)
    assert (empty.stdout, unset.stdout) == ("", "/var/lib/prometheus/node-exporter")


USABLE = NIGHTLY / "usable-nodes.sh"
NODES_FLAG = '--nodes="$(ci/nightly/usable-nodes.sh)"'


def test_every_example_runs_on_every_usable_node() -> None:
    """The sbatch usage line, the systemd unit, the cron line and the workflow all size the job the same way."""
    usage = [ln for ln in SBATCH.read_text().splitlines() if ln.startswith("#   sbatch ")]
    service = (NIGHTLY / "railbench-nightly.service").read_text()
    (exec_start,) = [ln for ln in service.splitlines() if ln.startswith("ExecStart=")]
    (cron,) = [ln for ln in service.splitlines() if ln.startswith("#") and "sbatch --wait" in ln]
    workflow = yaml.safe_load((NIGHTLY / "github-actions-nightly.yml").read_text())
    (job,) = workflow["jobs"].values()
    submits = [step["run"] for step in job["steps"] if "sbatch" in step.get("run", "")]
    assert len(usage) == 2 and len(submits) == 1  # with and without --drain
    for example in (*usage, cron, submits[0]):
        assert NODES_FLAG in example, example
    assert NODES_FLAG.replace("$(", "$$(") in exec_start  # systemd's literal $
    assert all("sinfo" not in line for line in (*usage, cron, exec_start, submits[0]))


def _fake_sinfo(folder: Path, by_node: str) -> Path:
    """An ``sinfo`` that prints what Slurm's would for the options usable-nodes.sh passes: ``-o %P`` the
    partitions (default marked *), ``-N -p P -o '%N|%t|%E'`` one line per node of P, in the format of sinfo(1)
    (the reason, the rest of a ``by_node`` line, ``none`` when there is none). tests/test_slurm_recipes.py runs
    the script against a real slurmctld."""
    sinfo = folder / "sinfo"
    sinfo.write_text(
        "#!/bin/bash\n"
        'if [ "$*" = "-h -o %P" ]; then printf "gpu*\\ndebug\\n"; exit 0; fi\n'
        'part=""; while [ $# -gt 0 ]; do [ "$1" = "-p" ] && part="$2"; shift; done\n'
        f'cat <<\'EOF\' | awk -v p="$part" \'$1 == p {{ r = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ ?/, "", r);'
        f' print $2 "|" $3 "|" (r == "" ? "none" : r) }}\'\n{by_node}EOF\n'
    )
    sinfo.chmod(0o755)
    return sinfo


def test_usable_nodes_is_one_number(tmp_path: Path) -> None:
    # two partitions sharing node01/node02, one drained node, one down and not responding, one powered down:
    # 'sinfo -h -o %D' would print a line per partition and state here
    nodes = (
        "gpu node01 idle\ngpu node02 mix\ngpu node03 alloc\ngpu node04 drain railbench: rail 1 (mlx5_2) link dead | x\n"
        "gpu node05 down*\ngpu node06 idle~\ndebug node01 idle\ndebug node02 mix\n"
    )
    _fake_sinfo(tmp_path, nodes)
    env = rank_env({"PATH": f"{tmp_path}:{os.environ['PATH']}"})

    def count(*args: str, partition: str | None = None) -> subprocess.CompletedProcess[str]:
        extra = {"PARTITION": partition} if partition else {}
        return subprocess.run(
            ["bash", str(USABLE), *args], env={**env, **extra}, capture_output=True, text=True, timeout=30
        )

    done = count()  # the default partition, gpu
    assert (done.returncode, done.stdout) == (0, "4\n"), done.stderr
    assert done.stderr.splitlines() == [
        "usable-nodes: node04 left out (drain: railbench: rail 1 (mlx5_2) link dead | x)",
        "usable-nodes: node05 left out (down*)",
    ]
    assert count("debug").stdout == "2\n" and count(partition="debug").stdout == "2\n"
    _fake_sinfo(tmp_path, "gpu node01 drain\ngpu node02 down*\n")
    empty = count()
    assert empty.returncode == 1 and empty.stdout == "" and "no usable node in partition 'gpu'" in empty.stderr


def _recipe_env(results: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    wrapper = tmp_path / "railbench"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m bench "$@"\n')
    wrapper.chmod(0o755)
    mpirun = Path(find_mpirun()).parent
    return rank_env(
        {
            "PATH": f"{mpirun}:{os.environ['PATH']}",
            "RESULTS": str(results),
            "LAUNCHER": "mpirun",
            "RAILBENCH": str(wrapper),
            "TEXTFILE_DIR": "",
            "PROFILE": "local",
            "RANKS_PER_NODE": "2",
            "ACCEPT_ARGS": "-b 1M -e 2M -n 2 -w 1",
            **extra,
        }
    )


def _recipe(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SBATCH)], env=env, capture_output=True, text=True, timeout=900, check=False)


@pytest.mark.mpi
@pytest.mark.slow
def test_the_recipe_tells_a_pass_a_regression_and_a_launch_fault(tmp_path: Path) -> None:
    from bench.history.store import add_run
    from bench.rundir.results_csv import iter_results_rows, results_csv_text

    # a pass: the first night, nothing to regress against (every metric new), accept measured: exit 0
    first = tmp_path / "first"
    done = _recipe(_recipe_env(first, tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (first / "reports" / "runs").iterdir()
    assert (first / "reports" / "latest-run").read_text().strip() == str(run_dir)
    assert "6 metrics: 0 regressed, 0 improved, 0 unchanged, 6 new" in done.stdout

    # a regression: a history whose two earlier nights of the same kind measured 100 GB/s: exit 1
    second = tmp_path / "second"
    for night, busbw in enumerate((100.0, 101.0)):
        fake = second / "reports" / "runs" / f"2026010{night + 1}T020000Z-earlier"
        fake.mkdir(parents=True)
        meta = json.loads((run_dir / "run.json").read_text())
        meta["started_utc"] = meta["finished_utc"] = f"2026-01-0{night + 1}T02:00:00Z"
        (fake / "run.json").write_text(json.dumps(meta))
        rows = [{**row, "busbw_GBps": busbw, "algbw_GBps": busbw} for row in iter_results_rows(run_dir)]
        (fake / "results.csv").write_text(results_csv_text(rows, list(rows[0])))
        add_run(second / "reports" / "history.sqlite", fake)
    done = _recipe(_recipe_env(second, tmp_path))
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "6 metrics: 6 regressed" in done.stdout and "# compare verdict: REGRESSED" in done.stdout

    # a launch fault: mpirun refuses root without its two variables; no run directory, exit 3, its own line
    env = _recipe_env(tmp_path / "third", tmp_path)
    for name in ("OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"):
        env.pop(name)
    done = _recipe(env)
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
    (said,) = [ln for ln in done.stderr.splitlines() if ln.startswith("railbench nightly:")]
    assert said.startswith("railbench nightly: launcher failed (exit 1, no run directory): ")
    assert said.endswith("has detected an attempt to run as root.")  # prterun's (Open MPI 5) or mpirun's own line
    assert not (tmp_path / "third" / "reports" / "runs").exists()
