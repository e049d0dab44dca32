"""The rank side of ``railbench run``: start the process group, sweep, and (on rank 0) record.

Rank 0 owns the run directory: it writes run.json first (status ``running``), appends each size's row to
results.csv as soon as every rank has reported it, and finishes run.json with the verdict and the exit
status every rank returns. A hang ends with exit 3 and a run.json that names the ranks that did not
arrive; a lost rank leaves run.json ``failed``, Ctrl-C or SIGTERM ``interrupted`` (exit 130/143); every
finished row stays on disk.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.errors import (
    EXIT_FAIL,
    EXIT_INFRA,
    EXIT_PASS,
    UserError,
)
from bench.frame import evidence
from bench.frame.finish import finish_run
from bench.frame.guard import guarded
from bench.frame.record import RunRecord, base_metadata, iso_utc
from bench.measure import device as device_ops
from bench.measure.collectives import Collective, Dtype, get_collective, get_dtype
from bench.measure.memory_fit import check_sizes_fit, free_memory_bytes, largest_fitting
from bench.measure.results import result_row
from bench.measure.table import row_line, section_header, write_summary
from bench.measure.targets import judge_min_bytes, world_target_gbps
from bench.measure.timing import graph_capture_works, measure
from bench.profiles import Profile, load_profile
from bench.rundir.files import ResultsWriter, default_cluster_name, default_run_dir, proposed_run_dir
from bench.runtime import env as benv
from bench.runtime.before_init import run_directory
from bench.runtime.dist import DistContext, agree_on_exit_status, broadcast_str, quiet_usage_exit, run_as_rank
from bench.runtime.env import RankInfo
from bench.runtime.placement import blocking_wait_conflict
from bench.runtime.progress import Mode, Progress
from bench.sweep.config import RunConfig, validate
from bench.units import format_size


def verdict(rows: list[dict[str, Any]], min_bytes: int, pass_fraction: float) -> tuple[str, list[str]]:
    """pass/measured/fail and the reasons: wrong elements anywhere, or busbw under target at judged sizes.

    ``measured`` when no row had a target to meet (the ``local`` CPU profile): PASS would claim a judgement
    that was never made (DESIGN.md, verdict words).
    """
    reasons = [
        f"{r['collective']} at {format_size(r['bytes'])}: {r['wrong']} wrong elements" for r in rows if r.get("wrong")
    ]
    for r in rows:
        eff = r.get("efficiency")
        if eff is not None and r["bytes"] >= min_bytes and eff < pass_fraction:
            reasons.append(
                f"{r['collective']} at {format_size(r['bytes'])}: busbw {r['busbw_Gbps']:.0f} Gb/s is "
                f"{100 * eff:.0f}% of {r['target_Gbps']:g} Gb/s (needs {100 * pass_fraction:.0f}%)"
            )
    if reasons:
        return "fail", reasons
    judged = any((r.get("target_Gbps") or 0) > 0 for r in rows)
    return ("pass" if judged else "measured"), reasons


def _load_profile(name: str) -> Any:
    return load_profile(name)


def _progress_mode(config: RunConfig, ctx: DistContext) -> Mode:
    """How rank 0 shows progress (see ``bench.runtime.progress``): markers for a railbench parent, a bar on
    its own terminal under the user's launcher, nothing when the output is not a terminal."""
    if ctx.info.rank != 0 or config.progress == "off":
        return "off"
    if benv.get(benv.PARENT_VAR):
        return "marker" if config.progress == "on" else "off"
    if config.progress == "on":
        return "bar"
    # Open MPI hands every rank a pseudo-terminal, so isatty() says nothing about the user's screen there.
    return "bar" if ctx.info.launcher != "openmpi" and sys.stdout.isatty() and sys.stderr.isatty() else "off"


def run_rank(config: RunConfig, info: RankInfo) -> int:
    """One rank's whole run; every rank returns the same exit status."""
    try:
        validate(config)  # under the user's own launcher: the checks the parent makes under --np
    except UserError:
        if info.rank != 0:
            return quiet_usage_exit()  # rank 0 says it once
        raise
    return run_as_rank(
        info,
        config.backend,
        config.timeout_s,
        config.oob_ifname,
        lambda ctx: sweep(config, ctx),
        before_init=lambda prelude: run_directory(prelude, lambda: proposed_run_dir(config.out, config.cluster)),
    )


def sweep(config: RunConfig, ctx: DistContext, *, finish: bool = True, seconds: dict[str, float] | None = None) -> int:
    """The world sweep on every rank; with ``finish``, rank 0 also adds the run to the history and draws the
    report (``accept`` finishes once, after its rails phase). ``seconds`` receives each collective's wall
    time (its JUnit testcase's time in ``accept``)."""
    import torch

    rank, nranks, nnodes = ctx.info.rank, ctx.info.world_size, ctx.info.nnodes
    is_rank0 = rank == 0
    cluster = config.cluster or default_cluster_name(ctx.hosts[0])
    out_dir = ctx.out_dir or Path(
        broadcast_str(ctx.store, "out_dir", str(config.out or default_run_dir(cluster)), rank, config.timeout_s)
    )
    if config.graph and ctx.backend != "nccl":
        raise UserError("--graph captures CUDA graphs and needs the nccl backend: this run uses gloo")
    graph = _resolve_graph(config.graph, ctx)
    profile = _load_profile(config.profile)
    dtype = get_dtype(config.dtype)
    tdtype = getattr(torch, dtype.torch_name)
    colls = [get_collective(c) for c in config.collectives]
    sizes = config.sizes
    _check_memory(ctx, colls, sizes, dtype)

    record: RunRecord | None = None
    writer: ResultsWriter | None = None
    if is_rank0:
        out_dir.mkdir(parents=True, exist_ok=True)
        record = RunRecord(out_dir, _metadata(config, ctx, cluster, profile, graph))
        writer = ResultsWriter(out_dir / "results.csv")

    def record_end(status: str, exit_status: int, failure: dict[str, Any] | None) -> None:
        if record is not None:
            extra = {"failure": failure} if failure else {}
            record.update(
                status=status,
                verdict="error" if status == "failed" else None,
                exit_status=exit_status,
                finished_utc=iso_utc(),
                **extra,
            )

    before = evidence.node_snapshot(ctx.info.local_rank)
    progress = Progress([nbytes for _ in colls for nbytes in sizes], _progress_mode(config, ctx))
    try:
        with guarded(ctx, config.timeout_s, record_end) as watchdog:
            for coll in colls:
                started = time.monotonic()
                target = world_target_gbps(profile, coll.name, nnodes)
                if is_rank0:
                    progress.line(section_header(coll.name, nranks, nnodes, ctx.backend, coll.placement, graph))
                for nbytes in sizes:
                    watchdog.enter(f"{coll.name} at {format_size(nbytes)}")
                    res = _measure(config, ctx, coll, nbytes, tdtype, dtype.size, graph)
                    watchdog.leave()
                    if writer is not None:
                        row = result_row(
                            coll,
                            nbytes=res.nbytes,
                            count=res.count,
                            dtype=dtype.name,
                            nranks=nranks,
                            nnodes=nnodes,
                            iters=res.iters,
                            time_us=res.time_us,
                            time_us_min=res.time_us_min,
                            time_us_max=res.time_us_max,
                            wrong=res.wrong,
                            target_gbps=target,
                            algo=benv.get("NCCL_ALGO") or "",
                        )
                        writer.append(row)
                        progress.line(row_line(row))
                    progress.advance(f"{coll.name} {format_size(nbytes)}")
                if seconds is not None:
                    seconds[coll.name] = seconds.get(coll.name, 0.0) + time.monotonic() - started
    finally:
        progress.close()

    per_host = evidence.gather_node_deltas(evidence.node_deltas(before), ctx.hosts[rank])
    status = EXIT_PASS
    if record is not None and writer is not None:
        bound = ctx.world_ifname if nnodes > 1 else None
        findings = evidence.audit_counters(per_host, profile, bound_ifname=bound)
        nccl_json, nccl_findings = evidence.nccl_log_evidence(out_dir, profile) if ctx.backend == "nccl" else (None, [])
        findings += nccl_findings
        record.update(counters=per_host, nccl_evidence=nccl_json, findings=[f.to_json() for f in findings])
        result, reasons = verdict(writer.rows, judge_min_bytes(profile), profile.pass_fraction)
        reasons += [f.message for f in findings if f.severity == "fail"]
        result = "fail" if reasons else result
        status = EXIT_FAIL if result == "fail" else EXIT_PASS
        write_summary(sys.stdout, writer.rows, str(out_dir))
        for reason in reasons:
            print(f"# FAIL {reason}")
        sys.stdout.flush()
        record.update(status="complete", verdict=result, reasons=reasons, exit_status=status, finished_utc=iso_utc())
        if finish and finish_run(out_dir, profile, history=config.history, no_history=config.no_history):
            # A FAIL verdict keeps exit 1; a passing run whose history or report failed is exit 3.
            status = status or EXIT_INFRA
            record.update(exit_status=status, finish="failed")
    return agree_on_exit_status(ctx, status)


def _measure(config: RunConfig, ctx: DistContext, coll: Any, nbytes: int, tdtype: Any, elsize: int, graph: bool) -> Any:
    return measure(
        coll,
        nbytes,
        ctx.info.rank,
        ctx.info.world_size,
        None,
        dtype=tdtype,
        elsize=elsize,
        device=ctx.device,
        iters=config.iters,
        warmup=config.warmup,
        check=config.check,
        graph=graph,
    )


def _resolve_graph(asked: bool | None, ctx: DistContext) -> bool:
    """``--graph``/``--no-graph`` as given; by default on with NCCL when every rank can capture.

    Eager small-message numbers carry torch's per-call launch overhead, so nccl-tests' ``-G`` numbers are
    matched only with capture. Under blocking wait capture cannot work (an event queried while capturing),
    and a driver or build that refuses capture on any rank turns it off on every rank, said in one line.
    """
    import torch
    import torch.distributed as dist

    if asked is not None or ctx.backend != "nccl":
        return bool(asked)
    if blocking_wait_conflict(benv.environ(), True) is not None:
        return False
    why = graph_capture_works(ctx.device)
    works = torch.tensor([0 if why else 1], dtype=torch.int32, device=ctx.device)
    dist.all_reduce(works, op=dist.ReduceOp.MIN)
    device_ops.synchronize(ctx.device)  # read on the host: NCCL's wait() does not block it
    if int(works.item()) == 1:
        return True
    if ctx.info.rank == 0:
        print(f"# CUDA graph capture does not work on every rank ({why or 'another rank refused'}): eager timing")
    return False


def _check_memory(ctx: DistContext, colls: list[Collective], sizes: Sequence[int], dtype: Dtype) -> None:
    """Exit 2 before anything is measured when the largest size does not fit this node's memory.

    Every rank measures its own device; the smallest answer wins so that every rank stops together.
    """
    import torch
    import torch.distributed as dist

    free, reserve, where = free_memory_bytes(ctx.device, ctx.info.local_world_size)
    mine = largest_fitting(colls, sizes, dtype, ctx.info.world_size, free, reserve)
    agreed = torch.tensor([mine], dtype=torch.int64, device=ctx.device)
    dist.all_reduce(agreed, op=dist.ReduceOp.MIN)
    device_ops.synchronize(ctx.device)  # read on the host: NCCL's wait() does not block it
    check_sizes_fit(colls, sizes, dtype, ctx.info.world_size, int(agreed.item()), where)


def _metadata(config: RunConfig, ctx: DistContext, cluster: str, profile: Profile, graph: bool) -> dict[str, Any]:
    return {
        **base_metadata(ctx, cluster, profile, "run"),
        "sweep": {
            "collectives": list(config.collectives),
            "min_bytes": config.min_bytes,
            "max_bytes": config.max_bytes,
            "step_factor": config.step_factor,
            "step_bytes": config.step_bytes,
            "iters": config.iters,
            "warmup": config.warmup,
            "dtype": config.dtype,
            "check": config.check,
            "graph": graph,
            "timeout_s": config.timeout_s,
        },
    }
