"""The run directory: one self-describing folder per run (docs/design.md, "Records and schemas").

``reports/runs/<UTC time>-<cluster>/`` holds ``run.json`` (metadata), ``results.csv`` (long format, one
row per measurement), ``checks.json``, ``nccl/<host>-<rank>.log``, ``charts/``, ``report.md``,
``report.html`` and ``junit.xml``.

Every file is replaced atomically (write a temporary file in the same folder, fsync, rename), so a crash,
a hang or Ctrl-C never leaves a half-written file and never loses a row that was already measured.

Format history (``run.json["format_version"]``; results.csv carries the same version in ``run.json``):

* 1 — first release: the RESULT_COLUMNS below.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.exits import UserError

FORMAT_VERSION = 1

# The long-format columns of results.csv, in order. Extra columns may follow; readers use names.
RESULT_COLUMNS: tuple[str, ...] = (
    # what was measured
    "collective",
    "scope",
    "group",
    "nranks",
    "nnodes",
    "bytes",
    "count",
    "dtype",
    "placement",
    "iters",
    # time, microseconds: mean over ranks of each rank's mean, then the fastest and slowest rank
    "time_us",
    "time_us_min",
    "time_us_max",
    # bandwidth
    "algbw_GBps",
    "busbw_GBps",
    "busbw_Gbps",
    "target_Gbps",
    "efficiency",
    # checks
    "wrong",
    # provenance of the number: redop/root as nccl-tests prints them, the NCCL algorithm when known
    "redop",
    "root",
    "algo",
)

SCOPES = ("world", "rail", "pair", "local-pair", "node")


def utc_stamp(now: float | None = None) -> str:
    """``20261120T224310Z``: sortable and safe in a path on every filesystem."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))


def default_cluster_name(hostname: str) -> str:
    """A cluster name from a node's hostname: ``gpu-node017.lambda`` -> ``gpu-node``."""
    return hostname.split(".")[0].rstrip("0123456789-_") or "local"


def default_run_dir(cluster: str, root: Path | str = "reports/runs", now: float | None = None) -> Path:
    """``reports/runs/<UTC time>-<cluster>``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in cluster) or "cluster"
    return Path(root) / f"{utc_stamp(now)}-{safe}"


def proposed_run_dir(out: Path | None, cluster: str | None) -> Path:
    """This rank's proposal for the run directory (rank 0's wins): ``--out``, else the default named after
    ``--cluster`` or this host's cluster."""
    return out or default_run_dir(cluster or default_cluster_name(socket.gethostname()))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes 0600 files; reports and CSVs are read by web servers and other users' docs builds.
        os.fchmod(fd, 0o644 & ~_umask())
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


def atomic_write_json(path: Path | str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def results_csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] = RESULT_COLUMNS) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buf.getvalue()


class ResultsWriter:
    """Keeps results.csv complete on disk after every measurement.

    Each ``append`` rewrites the file atomically with every row so far: a sweep has tens to thousands of
    rows, so the rewrite is cheap, and the file is always whole.
    """

    def __init__(self, path: Path | str, columns: Sequence[str] = RESULT_COLUMNS) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        self.rows: list[dict[str, Any]] = []

    def append(self, *rows: Mapping[str, Any]) -> None:
        self.rows.extend(dict(r) for r in rows)
        atomic_write_text(self.path, results_csv_text(self.rows, self.columns))

    def replace_from(self, index: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Rows ``index`` onwards become ``rows`` (provisional rows replaced by the final ones)."""
        self.rows[index:] = [dict(r) for r in rows]
        atomic_write_text(self.path, results_csv_text(self.rows, self.columns))


def read_json_object(path: Path, fix: str) -> dict[str, Any]:
    """A JSON object from ``path``; UserError saying ``fix`` when it is not valid JSON or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}): {fix}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} does not hold a JSON object: {fix}")
    return data


def read_results_rows(run_dir: Path | str) -> list[dict[str, str]]:
    """results.csv as a list of dicts (strings), checked for the expected header."""
    return list(iter_results_rows(run_dir))


def iter_results_rows(run_dir: Path | str) -> Iterator[dict[str, str]]:
    """results.csv row by row (strings), checked for the expected header: for readers of any size of run."""
    path = Path(run_dir) / "results.csv"
    if not path.is_file():
        raise UserError(f"{path} is missing: the run recorded no results")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in RESULT_COLUMNS if c not in header]
            if missing:
                raise UserError(
                    f"{path} lacks columns {', '.join(missing)}: it is not a railbench results.csv "
                    f"of format {FORMAT_VERSION}"
                )
            yield from reader
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path} cannot be read ({exc}): the run directory is damaged") from None
