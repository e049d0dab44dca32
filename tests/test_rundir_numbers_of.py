"""What a run's numbers are of, said in one line under the verdict and on the certificate's first screen
(issue 33 item 3: a CPU run never said that its numbers are gloo's over host loopback, not the fabric's)."""

from __future__ import annotations

from bench.rundir.judged_by import JudgedBy
from bench.rundir.numbers import numbers_of
from bench.rundir.runjson import RunDoc, new_record


def _run(backend: str | None, device: str | None, nodes: int, ranks: int, **sections: object) -> RunDoc:
    core = {"format_version": 1, "tool": "railbench", "version": "0", "cluster": "c", "profile": "p"}
    hosts = [f"node{i:02d}" for i in range(1, nodes + 1)]
    return new_record(
        **core,
        command=str(sections.pop("command", "accept")),
        started_utc="2026-11-20T02:00:00Z",
        status="complete",
        backend=backend,
        device=device,
        hosts=hosts,
        nnodes=nodes,
        nranks=ranks,
        **sections,
    )


def _evidence(*transports: str) -> dict[str, object]:
    return {"hosts": {f"node{i:02d}": {"transport": t} for i, t in enumerate(transports, start=1)}}


def test_a_cpu_run_says_its_numbers_are_not_the_fabric() -> None:
    one = numbers_of(_run("gloo", "cpu", 1, 4))
    assert one.startswith("gloo on CPU, 4 ranks on 1 node, over host loopback: host-memory numbers")
    assert "not the GPU fabric's" in one
    two = numbers_of(_run("gloo", "cpu", 2, 4))
    assert "over TCP sockets between the hosts" in two and "not NCCL over the GPU fabric" in two


def test_a_gpu_run_says_which_links_and_network_carried_it() -> None:
    one = numbers_of(_run("nccl", "cuda:0", 1, 8))
    assert one == "NCCL on 8 GPUs of 1 node: the links inside the node (NVLink/NVSwitch or PCIe), no network crossed"
    named = _run(
        "nccl",
        "cuda:0",
        2,
        16,
        judged_by=JudgedBy(
            profile="p",
            source="p.toml",
            pass_fraction=0.9,
            judge_min_bytes=0,
            compare_min_bytes=0,
            idle_devices=(),
            counter_tolerance_bytes=0,
            gpu_models=("NVIDIA B200",),
        ),
        nccl_evidence=_evidence("IB", "IB"),
    )
    assert numbers_of(named) == "NCCL on 16 × NVIDIA B200 across 2 nodes over IB, as NCCL's log says"
    fallback = numbers_of(_run("nccl", "cuda:0", 2, 16, nccl_evidence=_evidence("IB", "Socket")))
    assert fallback.endswith("over IB/Socket: sockets, not RDMA (NCCL fell back)")
    silent = numbers_of(_run("nccl", "cuda:0", 2, 16))
    assert silent.endswith("over the network (NCCL's log names no transport)")


def test_an_import_and_an_unrecorded_backend_say_so() -> None:
    assert "read from an nccl-tests log" in numbers_of(_run("nccl", None, 2, 16, command="import"))
    assert (
        numbers_of(_run(None, None, 2, 16)) == "16 ranks on 2 nodes; run.json does not say on which backend or devices"
    )
