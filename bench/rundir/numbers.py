"""What a run's numbers are numbers of, in one line: the backend, the devices, and the path the bytes took.

A run on CPU ranks with gloo measures how fast this host copies memory through its TCP stack, not a GPU
fabric: a user reading ``busbw 0.4 GB/s`` must not take it for NCCL over InfiniBand, nor a clean verdict for
a cluster's. The terminal (under the verdict, ``bench.frame.job``) and the certificate's first screen
(``bench.report.page``) say this same line, from run.json alone:

* gloo on CPU, one node: host loopback, host-memory numbers of this machine, not the GPU fabric's;
* gloo on CPU, several nodes: TCP sockets between the hosts, not NCCL over the GPU fabric;
* NCCL on GPUs, one node: the links inside the node (NVLink/NVSwitch, or PCIe), no network crossed;
* NCCL on GPUs, several nodes: the network NCCL's own log says it used (``nccl_evidence``), a fallback to
  sockets said as one;
* an imported nccl-tests log: the log's numbers, not measured by railbench.
"""

from __future__ import annotations

from collections.abc import Mapping

from bench.rundir.runjson import RunDoc


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _transports(run: RunDoc) -> list[str]:
    """The inter-node transports NCCL's logs name (``IB``, ``RoCE``, ``Socket``), in the order first seen."""
    # nccl_evidence keeps the shape bench.nccllogs gives it: the one part of run.json read as parsed.
    hosts = run.nccl_evidence.get("hosts") if run.nccl_evidence else None
    found = []
    for host in hosts.values() if isinstance(hosts, Mapping) else ():
        transport = host.get("transport") if isinstance(host, Mapping) else None
        if isinstance(transport, str) and transport:
            found.append(transport)
    return list(dict.fromkeys(found))


def _gpus(run: RunDoc) -> str:
    """``16 GPUs`` or, where run.json names the models, ``16 × NVIDIA H100 80GB HBM3``."""
    named = [m for m in run.judged_by.gpu_models if m] if run.judged_by else []
    count = run.nranks or 0
    if len(named) == 1:
        return f"{count} × {named[0]}"
    return _plural(count, "GPU") + (f" ({', '.join(named)})" if named else "")


def numbers_of(run: RunDoc) -> str:
    """One line: the backend and what the run's numbers are of (see the module docstring)."""
    nodes = run.nnodes or len(run.hosts) or 1
    ranks = run.nranks or 0
    where = f"{_plural(ranks, 'rank')} on {_plural(nodes, 'node')}"
    backend = run.backend or "unknown backend"
    if run.command == "import":
        return f"{backend} numbers read from an nccl-tests log ({where}): measured there, not by railbench"
    if run.backend is None and run.device is None:
        return f"{where}; run.json does not say on which backend or devices"
    device = (run.device or "").split(":")[0]
    if device == "cpu" or backend == "gloo":
        if nodes == 1:
            return (
                f"{backend} on CPU, {where}, over host loopback: host-memory numbers of this machine, "
                "not the GPU fabric's (NCCL, NVLink, InfiniBand)"
            )
        return (
            f"{backend} on CPU, {where}, over TCP sockets between the hosts: numbers of their TCP stack, "
            "not NCCL over the GPU fabric"
        )
    gpus = f"{backend.upper() if backend == 'nccl' else backend} on {_gpus(run)}"
    if nodes == 1:
        return f"{gpus} of 1 node: the links inside the node (NVLink/NVSwitch or PCIe), no network crossed"
    transports = _transports(run)
    if not transports:
        return f"{gpus} across {_plural(nodes, 'node')}, over the network (NCCL's log names no transport)"
    said = "/".join(transports)
    if "Socket" in transports:
        return f"{gpus} across {_plural(nodes, 'node')} over {said}: sockets, not RDMA (NCCL fell back)"
    return f"{gpus} across {_plural(nodes, 'node')} over {said}, as NCCL's log says"
