"""A real Slurm cluster on the network-namespace testbed (root only): railbench's Slurm recipes run under it.

Layout, over a :class:`~tests.support.testbeds.netns_testbed.NetnsCluster` (nodes ``node01``.., management
198.18.255.i)::

    munged      this machine's namespace, its own key (made for the test) and socket in the cluster's folder;
                a path-named unix socket is reached from every network namespace
    slurmctld   the switch namespace, hostname ``head``, 198.18.255.254 (SlurmctldHost=head(198.18.255.254))
    slurmd      one per node namespace (``slurmd -N nodeXX``), each under its node's hostname, with its own
                spool, log, pid file and TmpFS (``%n`` in slurm.conf), so PMIx's per-step folders of two
                nodes never meet in one /tmp

slurm.conf is generated (:func:`slurm_conf`): ``ProctrackType=proctrack/linuxproc`` and ``TaskPlugin=task/none``
(a namespace here has no cgroup file system: ``ip netns exec`` remounts /sys, so cgroup.conf names the v1
plugin, which slurmd 22.05 loads without touching a hierarchy), ``MpiDefault=pmix`` (Debian's mpi/pmix_v4
plugin opens libpmix.so from libpmix-dev), ``SlurmdParameters=config_overrides`` (8 CPUs per node are
declared on a 2-core machine, so ``--ntasks-per-node=8`` is accepted as on a GPU node), and, without
slurmdbd, ``JobCompType=jobcomp/filetxt``: ``sacct --completion`` (``-c``) reads every finished job's state
and exit code from that file (``AccountingStorageType=accounting_storage/none``; sacct's accounting side
would need slurmdbd and a database).

Every command (srun, sbatch, sinfo, scontrol, sacct) runs in the switch namespace with ``SLURM_CONF`` set,
as on a head node; a batch script runs on its first node and calls srun from there. Nothing listens
outside the testbed's namespaces, and nothing is sent off this machine.

Use ``build_slurm(bed)`` as a context manager inside ``build_cluster``'s: it skips with the reason where the
machine cannot run Slurm (not root, a package missing), and always stops every daemon it started (and, with
the namespaces, every job step and task: ``NetnsCluster.kill_processes``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import rank_env
from tests.support.testbeds.netns_testbed import HEAD_ADDRESS, MGMT_SUBNET, PREFIX_STEM, NetnsCluster, mgmt_address

SLURM_TMP = "/tmp"
"""Where each cluster's folder goes (see ``build_slurm``)."""
CONTROLLER = "head"
PARTITION = "rb"
CPUS_PER_NODE = 8
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("srun", "sbatch", "sinfo", "scontrol", "sacct", "scancel", "squeue")


def slurm_conf(root: Path, nodes: Sequence[str], *, extra: Sequence[str] = ()) -> str:
    """The testbed's slurm.conf: every path under ``root``, one NodeName line per node."""
    lines = [
        "ClusterName=railbench-testbed",
        f"SlurmctldHost={CONTROLLER}({HEAD_ADDRESS})",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={root}/munge/munge.socket",
        "MailProg=/bin/true",
        f"StateSaveLocation={root}/ctld/state",
        f"SlurmctldPidFile={root}/ctld/slurmctld.pid",
        f"SlurmctldLogFile={root}/ctld/slurmctld.log",
        f"SlurmdSpoolDir={root}/nodes/%n/spool",
        f"SlurmdPidFile={root}/nodes/%n/slurmd.pid",
        f"SlurmdLogFile={root}/nodes/%n/slurmd.log",
        f"TmpFS={root}/nodes/%n/tmp",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "MpiDefault=pmix",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SchedulerType=sched/backfill",
        # A node a railbench health check drained must come back by the health check's own resume, and a
        # slurmd restarted by a test must not leave its node DOWN.
        "ReturnToService=2",
        "SlurmdParameters=config_overrides",
        "SlurmdTimeout=60",
        "InactiveLimit=0",
        "KillWait=5",
        "MinJobAge=600",
        "JobCompType=jobcomp/filetxt",
        f"JobCompLoc={root}/ctld/jobcomp.txt",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        *extra,
    ]
    for index, node in enumerate(nodes, start=1):
        lines.append(f"NodeName={node} NodeAddr={mgmt_address(index)} CPUs={CPUS_PER_NODE} State=UNKNOWN")
    lines.append(f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class JobEnd:
    """How a batch job ended, as ``sacct --completion`` says it."""

    job_id: int
    state: str
    """COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, ..."""
    exit_code: int
    """The batch script's exit status (the first half of sacct's ``ExitCode`` ``3:0``)."""
    signal: int
    nodes: str


@dataclass
class SlurmCluster:
    """A running Slurm cluster on ``bed``; see the module docstring."""

    bed: NetnsCluster
    root: Path
    """slurm.conf, cgroup.conf, munge/, ctld/ (state, log, jobcomp.txt) and nodes/<node>/ (spool, tmp, log)."""
    daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.bed.nodes

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a command run against this cluster: no launcher variables of the test's own,
        ``SLURM_CONF``, railbench's interpreter first on PATH, and Open MPI's traffic on the management
        subnet (a site sets the same in openmpi-mca-params.conf: a rail taken down must not hold up mpi4py's
        rendezvous). And TCP between the two ranks of a pretend node too, as the mpirun testbed has from its
        start (``NetnsCluster.mpirun``): the pretend nodes share one kernel and its /dev/shm, and Open MPI's
        shared-memory transport crashed in MPI_Finalize under load there (a SIGSEGV in
        ``mca_btl_sm_poll_handle_frag``, srun then failing the step after the run had finished and said its
        verdict), which says nothing of a real node."""
        child = rank_env({"TORCH_CPP_LOG_LEVEL": "ERROR", **(extra or {})})
        child["SLURM_CONF"] = str(self.conf)
        child["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), child.get("PATH", os.defpath)])
        child.setdefault("OMPI_MCA_btl_tcp_if_include", MGMT_SUBNET)
        child.setdefault("OMPI_MCA_oob_tcp_if_include", MGMT_SUBNET)
        child.setdefault("OMPI_MCA_btl", "self,tcp")
        return child

    def command(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
        node: str | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` in the switch namespace (the head node), or in ``node``'s namespace, against this cluster.
        A command that outlives ``timeout`` is killed with its whole session and fails the test."""
        where = self.bed.switch if node is None else self.bed.namespace(node)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", where, *argv],
            env=self.env(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            # srun killed leaves its job step's tasks to slurmd: cancel every job, so that the next test
            # finds its nodes idle instead of waiting behind this one's tasks.
            subprocess.run(
                ["ip", "netns", "exec", self.bed.switch, "scancel", "--full", "--user", "root"],
                env=self.env(),
                capture_output=True,
                timeout=30,
                check=False,
            )
            raise AssertionError(f"{' '.join(argv)} did not finish within {timeout} s:\n{out}\n{err}") from None
        return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)

    def sinfo_states(self) -> dict[str, tuple[str, str]]:
        """node -> (Slurm's long state, reason) from ``sinfo -N``; the reason ``none`` when there is none."""
        done = self.command(["sinfo", "-h", "-N", "-o", "%N|%T|%E"])
        assert done.returncode == 0, done.stderr
        states = {}
        for line in done.stdout.splitlines():
            node, state, reason = line.split("|", 2)
            states[node] = (state, reason)
        return states

    def scontrol(self, *args: str) -> None:
        done = self.command(["scontrol", *args])
        assert done.returncode == 0, f"scontrol {' '.join(args)}: {done.stderr}"

    def drain(self, node: str, reason: str) -> None:
        """Drain ``node`` as an administrator would."""
        self.scontrol("update", f"NodeName={node}", "State=DRAIN", f"Reason={reason}")

    def resume(self, node: str) -> None:
        self.scontrol("update", f"NodeName={node}", "State=RESUME")

    def wait_for(self, what: str, test: object, timeout: float = 90) -> None:
        """Poll ``test()`` (a callable returning a bool) every half second until it holds, else fail with the
        nodes' states."""
        assert callable(test)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if test():
                return
            time.sleep(0.5)
        raise AssertionError(f"{what}: not within {timeout} s; nodes: {self.sinfo_states()}")

    def wait_idle(self, nodes: Sequence[str] | None = None, timeout: float = 90) -> None:
        """Until every one of ``nodes`` (default all) is idle and not drained: registered and free."""
        wanted = list(nodes or self.nodes)

        def idle() -> bool:
            states = self.sinfo_states()
            return all(states.get(n, ("", ""))[0] == "idle" for n in wanted)

        self.wait_for(f"nodes {', '.join(wanted)} idle", idle, timeout)

    def sbatch(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path) -> int:
        """Submit a batch job (``sbatch --parsable ARGV``) from ``cwd``; returns its id."""
        done = self.command(["sbatch", "--parsable", f"--chdir={cwd}", *argv], env=env, cwd=cwd)
        assert done.returncode == 0, f"sbatch {' '.join(argv)}: {done.stdout}{done.stderr}"
        return int(done.stdout.strip().split(";")[0])

    def job_end(self, job_id: int) -> JobEnd | None:
        """The job's end from ``sacct --completion``, or None while it has not ended."""
        done = self.command(
            ["sacct", "--completion", "-j", str(job_id), "-n", "-P", "-o", "JobID,State,ExitCode,NodeList"]
        )
        assert done.returncode == 0, done.stderr
        for line in done.stdout.splitlines():
            job, state, code, nodes = line.split("|")
            if job.strip() == str(job_id):
                status, _, sig = code.partition(":")
                return JobEnd(job_id, state.split()[0], int(status), int(sig or 0), nodes)
        return None

    def wait_job(self, job_id: int, timeout: float) -> JobEnd:
        """Until the job ends (seen through sacct); a job still running at ``timeout`` is cancelled and fails
        the test."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            end = self.job_end(job_id)
            if end is not None:
                return end
            time.sleep(1.0)
        self.command(["scancel", str(job_id)])
        raise AssertionError(f"job {job_id} did not end within {timeout} s (cancelled); nodes: {self.sinfo_states()}")

    # --- teardown -------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Every daemon this cluster started, slurmd first (its job steps die with the namespaces after)."""
        for name in sorted(self.daemons, key=lambda n: (n == "munged", n == "slurmctld")):
            proc = self.daemons[name]
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
        self.daemons.clear()

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of every daemon's log, for a failure message."""
        logs = [self.root / "ctld" / "slurmctld.log", self.root / "munge" / "munged.out"]
        logs += [self.root / "nodes" / n / "slurmd.log" for n in self.nodes]
        shown = []
        for log in logs:
            if log.is_file():
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                shown.append(f"== {log.relative_to(self.root)}\n" + "\n".join(tail))
        return "\n".join(shown)


def require_slurm() -> None:
    """Skip, with the reason and the fix, where this machine cannot run the Slurm testbed."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("the Slurm testbed needs root (CI runs as root)")
    for tool in (*DAEMONS, *CLIENTS, "munge"):
        if shutil.which(tool) is None:
            pytest.skip(
                f"the Slurm testbed needs '{tool}': apt-get install slurmctld slurmd munge libpmix-dev (Debian)"
            )


def _remove_stale() -> None:
    """The Slurm folders (and munged, which lives outside the namespaces) of an earlier test process that was
    killed before its teardown; its namespaces and the daemons in them go with ``build_cluster``'s own
    clean-up."""
    for folder in Path(SLURM_TMP).glob(f"{PREFIX_STEM}*-slurm-*"):
        owner = folder.name[len(PREFIX_STEM) : folder.name.index("-")]
        if not owner.isdigit() or int(owner) == os.getpid() or Path(f"/proc/{owner}").exists():
            continue
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if entry.name.isdigit() and str(folder).encode() in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


def _start(
    cluster: SlurmCluster, name: str, argv: Sequence[str], out: Path, env: Mapping[str, str] | None = None
) -> None:
    with out.open("ab") as log:
        cluster.daemons[name] = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else cluster.env(),
            start_new_session=True,
        )


def _in_node(bed: NetnsCluster, namespace: str, hostname: str, argv: Sequence[str]) -> list[str]:
    """``argv`` inside ``namespace`` under ``hostname`` (a UTS namespace of its own): slurmctld finds itself
    in SlurmctldHost by its hostname, and every task a slurmd starts sees its node's name."""
    command = " ".join(f"'{a}'" for a in argv)
    return ["ip", "netns", "exec", namespace, "unshare", "--uts", "sh", "-c", f"hostname {hostname}; exec {command}"]


def _start_munge(cluster: SlurmCluster) -> None:
    munge = cluster.root / "munge"
    munge.mkdir(mode=0o755)
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))  # a key made for this cluster alone
    key.chmod(0o400)
    _start(
        cluster,
        "munged",
        [
            "munged",
            "--foreground",
            f"--key-file={key}",
            f"--socket={munge}/munge.socket",
            f"--pid-file={munge}/munged.pid",
            f"--seed-file={munge}/munged.seed",
            f"--log-file={munge}/munged.log",
        ],
        munge / "munged.out",
    )
    socket = munge / "munge.socket"
    deadline = time.monotonic() + 20
    while not socket.exists():
        if cluster.daemons["munged"].poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"munged did not start:\n{cluster.log_tail()}")
        time.sleep(0.1)


@contextlib.contextmanager
def build_slurm(
    bed: NetnsCluster, *, extra_conf: Callable[[SlurmCluster], Sequence[str]] | None = None
) -> Iterator[SlurmCluster]:
    """Start munge, slurmctld and a slurmd per node on ``bed``, wait until every node is idle, yield the
    cluster, and always stop every daemon. ``extra_conf(cluster)``, called before any daemon starts, returns
    more slurm.conf lines (and may write the scripts they name into ``cluster.root``)."""
    require_slurm()
    _remove_stale()
    # munged refuses a socket below a folder closed to others: not the testbed's own folder, nor a private
    # TMPDIR (tests.support.rank_env gives every launch one), so /tmp itself.
    root = Path(tempfile.mkdtemp(prefix=f"{bed.prefix}-slurm-", dir=SLURM_TMP))
    root.chmod(0o755)
    cluster = SlurmCluster(bed, root)
    try:
        (root / "ctld" / "state").mkdir(parents=True)
        for node in bed.nodes:
            for sub in ("spool", "tmp"):
                (root / "nodes" / node / sub).mkdir(parents=True)
        extra = extra_conf(cluster) if extra_conf is not None else ()
        cluster.conf.write_text(slurm_conf(root, bed.nodes, extra=extra))
        (root / "cgroup.conf").write_text("CgroupPlugin=cgroup/v1\n")
        _start_munge(cluster)
        ctld = _in_node(bed, bed.switch, CONTROLLER, ["slurmctld", "-D", "-i", "-f", str(cluster.conf)])
        _start(cluster, "slurmctld", ctld, root / "ctld" / "slurmctld.out")
        for node in bed.nodes:
            slurmd = _in_node(bed, bed.namespace(node), node, ["slurmd", "-D", "-N", node, "-f", str(cluster.conf)])
            _start(cluster, f"slurmd-{node}", slurmd, root / "nodes" / node / "slurmd.out")
        try:
            cluster.wait_idle(timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{cluster.log_tail()}") from None
        _probe_pmix(cluster)
        yield cluster
    finally:
        cluster.stop()
        bed.kill_processes()  # job steps and tasks left by a failed test: every one lives in a namespace
        shutil.rmtree(root, ignore_errors=True)


def _probe_pmix(cluster: SlurmCluster) -> None:
    """One task per node through PMIx, so that a machine whose Slurm cannot load libpmix skips with the
    reason instead of failing every recipe with a launch error."""
    done = cluster.command(["srun", "-N", str(len(cluster.nodes)), "--ntasks-per-node=1", "true"], timeout=60)
    if done.returncode == 0:
        return
    logs = cluster.log_tail(5)
    if "pmix" in logs.lower() and ("libpmix" in logs.lower() or "cannot open" in logs.lower()):
        pytest.skip(f"Slurm's mpi/pmix plugin cannot load libpmix here (apt-get install libpmix-dev): {done.stderr}")
    raise AssertionError(f"srun on the testbed failed: {done.stderr}\n{logs}")


def main() -> None:
    """``python -m tests.support.testbeds.slurm_testbed [NODES]``: a Slurm cluster on the namespace testbed to try by
    hand, until Enter or Ctrl-C (then every daemon and namespace goes). Root only."""
    import signal as signals

    nodes = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    # SIGTERM ends it as Ctrl-C does, so the teardown runs.
    signals.signal(signals.SIGTERM, signals.default_int_handler)
    try:
        _try_by_hand(nodes)
    except pytest.skip.Exception as exc:  # what a test would skip for: not root, a package missing
        raise SystemExit(f"no Slurm testbed here: {exc}") from None


def _try_by_hand(nodes: int) -> None:
    from tests.support.testbeds.netns_testbed import PROFILE, build_cluster

    with build_cluster(nodes=nodes, rails=2) as bed, build_slurm(bed) as cluster:
        profile = cluster.root / "netns.toml"
        profile.write_text(PROFILE)
        print(f"Slurm is up on {', '.join(cluster.nodes)}: in another shell, as root,")
        print(f"  export SLURM_CONF={cluster.conf} {' '.join(f'{k}={v}' for k, v in _shown_env(cluster).items())}")
        print(f"  ip netns exec {bed.switch} sinfo")
        print(
            f"  ip netns exec {bed.switch} srun -N {nodes} --ntasks-per-node=2 railbench rails --profile {profile} "
            "--out /tmp/try-rails --no-history"
        )
        print("Enter (or Ctrl-C) stops it.", flush=True)
        with contextlib.suppress(KeyboardInterrupt, EOFError):
            input()


def _shown_env(cluster: SlurmCluster) -> dict[str, str]:
    env = cluster.env()
    return {k: env[k] for k in ("OMPI_MCA_btl_tcp_if_include", "OMPI_MCA_oob_tcp_if_include", "OMPI_MCA_btl")}


if __name__ == "__main__":
    main()
