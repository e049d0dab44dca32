"""The run directory: one self-describing folder per run (docs/design.md, "Records and schemas").

``reports/runs/<UTC time>-<cluster>/`` holds ``run.json`` (metadata), ``results.csv`` (long format, one
row per measurement), ``checks.json``, ``nccl/<host>-<rank>.log``, ``charts/``, ``report.md``,
``report.html`` and ``junit.xml``.

Every file is replaced atomically (write a temporary file in the same folder, fsync, rename), so a crash,
a hang or Ctrl-C never leaves a half-written file and never loses a row that was already measured. results.csv
alone grows while a run goes on: rows are appended and made durable before the next measurement
(``bench.rundir.results_csv``), and its readers leave out a last line that a crash cut. No write lands on a symlink, a
device node or a FIFO (``check_replaceable``), and folders and files get the modes ``mkdir`` and ``open``
would (0777 and 0666 less the umask), whichever command made them.
Reading goes through ``bench.bounded`` and ``bench.jsondoc``: a run directory may hold anything.

Format history (``run.json["format_version"]``; results.csv carries the same version in ``run.json``):

* 1 — first release: results.csv's columns are ``bench.rundir.results_csv.RESULT_COLUMNS``.
* 2 — run.json's ``items`` say whether they repeat others and the step of each finding they carry
  (``bench.rundir.docversion.run_upgrade_1_to_2`` reads a version-1 run.json); results.csv unchanged.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from bench import jsondoc
from bench.bounded import file_kind
from bench.exits import UserError
from bench.jsondoc import Parsed
from bench.rundir.docversion import RUN_FORMAT_VERSION

FORMAT_VERSION = RUN_FORMAT_VERSION

RUN_FILES = (
    "run.json",
    "results.csv",
    "rails.json",
    "checks.json",
    "junit.xml",
    "report.md",
    "report.html",
    "metrics.prom",
    "compare.json",
    "compare-junit.xml",
    "trend.csv",
)
"""The files railbench writes in a run directory (``docs/design.md``, "Records and schemas")."""
RUN_FOLDERS = ("nccl", "charts")
"""The folders it writes into there."""


def utc_stamp(now: float | None = None) -> str:
    """``20261120T224310Z``: sortable and safe in a path on every filesystem."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))


def default_cluster_name(hosts: str | Sequence[str], environ: Mapping[str, str] | None = None) -> str:
    """The name of the cluster the run's ranks are on, where ``--cluster`` gives none.

    Under Slurm, ``SLURM_CLUSTER_NAME`` (slurm.conf's ClusterName, which Slurm sets in every job's environment):
    the site's own name for it. Else the stem the ranks' host names share, each without its domain and its
    trailing number (``gpu-node017.lambda``, ``gpu-node018.lambda`` -> ``gpu-node``; ``a100-east-01``,
    ``a100-west-01`` -> ``a100``); with nothing shared, the first host's stem; ``local`` when even that is
    empty. One host's name is the stem of that host alone, as before the ranks' names were known."""
    slurm = (os.environ if environ is None else environ).get("SLURM_CLUSTER_NAME", "").strip()
    if slurm and len(slurm) <= MAX_CLUSTER_CHARS and slurm.isprintable():
        return slurm
    stems = list(dict.fromkeys(_host_stem(h) for h in ([hosts] if isinstance(hosts, str) else hosts)))
    if len(stems) == 1:
        return stems[0] or "local"
    # different stems share whole words only: gpu-alpha and gpu-alto share gpu, never gpu-al
    words = [re.findall(r"[^-_]+[-_]*", stem) for stem in stems]
    shared_words = [group[0] for group in itertools.takewhile(lambda g: len(set(g)) == 1, zip(*words, strict=False))]
    shared = "".join(shared_words).rstrip("-_")
    return shared or (stems[0] if stems else "") or "local"


def _host_stem(hostname: str) -> str:
    """``gpu-node017.lambda`` -> ``gpu-node``: the host's name without its domain and its trailing number."""
    return hostname.split(".")[0].rstrip("0123456789-_")


MAX_CLUSTER_CHARS = 64
"""A cluster name is a short label (``gpu-node``, ``lambda-1cc-prod``): it goes into every run directory's name,
the history, the report's title and its images."""


def check_cluster_name(name: str | None, flag: str = "--cluster") -> None:
    """UserError when a cluster name is empty or longer than :data:`MAX_CLUSTER_CHARS` (None: the default)."""
    if name is None:
        return
    if not name.strip():
        raise UserError(f"{flag} must not be empty: name the cluster, e.g. {flag} gpu-prod")
    if len(name) > MAX_CLUSTER_CHARS:
        raise UserError(
            f"{flag} is {len(name)} characters long; a cluster name has at most {MAX_CLUSTER_CHARS}: give a shorter one"
        )


def default_run_dir(cluster: str, root: Path | str = "reports/runs", now: float | None = None) -> Path:
    """``reports/runs/<UTC time>-<cluster>``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in cluster) or "cluster"
    # a folder name has at most 255 bytes: 64 characters of 4 bytes each, after the time, would not fit
    safe = safe.encode("utf-8", "replace")[:200].decode("utf-8", "ignore")
    return Path(root) / f"{utc_stamp(now)}-{safe}"


MAX_CLAIMS = 1000
"""How many names a run tries (``<time>-<cluster>``, then ``-2``, ``-3``, ...) before it gives up: a thousand
runs of one cluster started in one second is a loop, not a cluster."""


def claim_run_dir(base: Path) -> Path:
    """A new, empty run directory at ``base``, or at ``base-2``, ``base-3``, ... when another run holds the name.

    The default name is the start second and the cluster: two runs started in the same second (two nightly
    jobs, a retry loop) would share one folder, and their rows, run.json and history record with it. Each name
    is taken with one ``mkdir`` that fails when the folder exists, which exactly one process wins on a local or
    a network file system alike; a run never writes into a folder it did not make. OSError when the folder
    cannot be made at all (a read-only mount); UserError after :data:`MAX_CLAIMS` names taken.
    """
    base.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, MAX_CLAIMS + 1):
        candidate = base if attempt == 1 else base.with_name(f"{base.name}-{attempt}")
        try:
            candidate.mkdir()  # mode 0777 less the umask, as every run directory gets
        except FileExistsError:
            continue
        return candidate
    raise UserError(f"{MAX_CLAIMS} run directories named {base.name}[-N] already exist: pass --out")


def new_run_dir(cluster: str | None, root: Path | str = "reports/runs") -> Path:
    """The default run directory of a run starting now, claimed (:func:`claim_run_dir`). A folder that cannot be
    made is left to the run's first write, which names the file and why (exit 3) on every rank alike."""
    base = default_run_dir(cluster or default_cluster_name(socket.gethostname()), root)
    try:
        return claim_run_dir(base)
    except OSError:
        return base


def proposed_run_dir(out: Path | None, cluster: str | None) -> Path:
    """This rank's proposal for the run directory (rank 0's wins, and only rank 0 makes one): ``--out``, else a
    new folder named after the start time and ``--cluster`` or this host's cluster, claimed for this run."""
    return out or new_run_dir(cluster)


def current_umask() -> int:
    """The process's umask, read from ``/proc/self/status`` (Linux 4.7+) without changing it: the classic
    ``os.umask(0)`` then back leaves a moment in which another thread (the report draws charts in a pool)
    creates world-writable files."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_staging_dir(root: Path, prefix: str) -> Path:
    """A new hidden folder under ``root`` to build a run directory in before it is renamed into place, with
    the mode ``mkdir`` would give (``tempfile.mkdtemp`` makes 0700 whatever the umask: an imported run would
    be unreadable to teammates and the web server while ``run`` and ``accept`` make theirs 0755)."""
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    os.chmod(staging, 0o777 & ~current_umask())
    return staging


def check_replaceable(path: Path | str, flag: str | None = None) -> None:
    """UserError unless ``path`` is absent or a regular file: an atomic write renames a new file over the path,
    which would put a regular file in place of a device node (``/dev/null``), a FIFO or a socket, and would
    replace a symlink itself rather than write where it points. ``flag`` names the option that gave it."""
    shown = f"{flag} {path}" if flag else str(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UserError(f"{shown} cannot be checked ({exc.strerror or exc}): give another path") from None
    if stat.S_ISLNK(mode):
        raise UserError(
            f"{shown} is a symlink: railbench replaces its files whole and would replace the link, "
            "not what it points to; give the path of the file itself"
        )
    if not stat.S_ISREG(mode):
        raise UserError(
            f"{shown} is a {file_kind(mode)}, not a regular file: railbench never replaces one; name a file"
        )


def check_output_folder(folder: Path, shown: str) -> None:
    """UserError, before any work, unless railbench can write files in ``folder`` (made if absent): a path
    that cannot be looked at (a symlink loop), a file in the way, or a folder that refuses a new file
    (read-only, ``/proc``). A probe file is made and removed: permission bits do not say it for root."""
    probe_in = folder
    try:
        while not probe_in.exists():
            if probe_in.parent == probe_in:
                break
            probe_in = probe_in.parent
        if not probe_in.is_dir():
            raise UserError(f"{shown}: {probe_in} is a {file_kind(os.stat(probe_in).st_mode)}, not a folder")
        fd, probe = tempfile.mkstemp(prefix=".railbench-probe.", dir=probe_in)
    except OSError as exc:
        raise UserError(f"{shown} cannot be written ({exc.strerror or exc}): give a folder you can write") from None
    os.close(fd)
    Path(probe).unlink(missing_ok=True)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix. A path that is
    a symlink or not a regular file is refused (:func:`check_replaceable`), never replaced."""
    path = Path(path)
    check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes 0600 files; give the mode open() would (0666 less the umask): reports and CSVs are
        # read by web servers and teammates, and a group-shared umask (002) makes them group-writable too.
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _finite_or_null(obj: object) -> object:
    """``obj`` with every float that is not finite as None (a copy; the caller's object is not changed)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_null(v) for v in obj]
    return obj


def _container(value: object) -> object:
    """What ``json.dumps`` cannot take itself: a read-only mapping (``jsondoc.JSONValue`` allows any) as an
    object; anything else (a Path, a datetime) as its text."""
    return dict(value) if isinstance(value, Mapping) else str(value)


def _dumps(obj: object, indent: int | None) -> str:
    separators = None if indent is not None else (",", ":")
    try:
        return json.dumps(obj, indent=indent, separators=separators, default=_container, allow_nan=False)
    except ValueError:  # a NaN or an infinity somewhere: rare, so the copy is made only then
        return json.dumps(
            _finite_or_null(obj), indent=indent, separators=separators, default=_container, allow_nan=False
        )


def json_text(obj: object, columns: Collection[str] = ()) -> str:
    """``obj`` as standard JSON, which every reader (``bench.jsondoc``) accepts: a value that is not finite is
    written as ``null``, never as the ``NaN`` or ``Infinity`` that JSON does not have. Each of ``obj``'s keys in
    ``columns`` (a table of columns: rails.json's ``pair_cells``) is written with each of its keys on one line, its
    list on that line: indented, a million numbers would be a million lines."""
    if not columns or not isinstance(obj, Mapping):
        return _dumps(obj, 2) + "\n"
    held = {key: obj[key] for key in columns if isinstance(obj.get(key), Mapping)}
    marks = {key: f"\x00columns:{key}" for key in held}
    text = _dumps({key: marks.get(key, value) for key, value in obj.items()}, 2)
    for key, table in held.items():
        assert isinstance(table, Mapping)  # held only tables
        lines = ",\n".join(f"    {json.dumps(str(k))}: {_dumps(v, None)}" for k, v in table.items())
        text = text.replace(json.dumps(marks[key]), "{\n" + lines + "\n  }" if lines else "{}", 1)
    return text + "\n"


def atomic_write_json(path: Path | str, obj: object, columns: Collection[str] = ()) -> None:
    """``obj`` as JSON (:func:`json_text`, ``columns`` its tables of columns), replacing ``path`` atomically."""
    atomic_write_text(path, json_text(obj, columns))


def overwrite_in_own_blocks(path: Path, data: bytes) -> bool:
    """Write ``data`` over the regular file ``path`` in place, when it fits in the blocks the file already
    holds: on a full disk the atomic write's new copy finds no room, but a record must still be able to say
    that the run failed. False (nothing written) when it does not fit or ``path`` is not a regular file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        held = os.fstat(fd)
        if not stat.S_ISREG(held.st_mode) or len(data) > held.st_blocks * 512:
            return False
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
        return True
    finally:
        os.close(fd)


def read_json_object(path: Path, fix: str) -> Parsed:
    """A JSON object from ``path`` (``bench.jsondoc``: a regular file, size, depth and numbers bounded);
    UserError saying ``fix`` when it is absent, damaged or not an object."""
    return jsondoc.read_json_object(path, fix=fix)
