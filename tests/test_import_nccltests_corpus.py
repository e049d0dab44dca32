"""The nccl-tests parser on every nccl-tests output in the shared corpus of real logs.

Per file and table: the collective, nranks, the row count, and the size and busbw (out-of-place, in-place)
of the first and last rows, as printed in the file. Then every printed busbw is re-derived from the printed
time and size with railbench's formula and must agree to the log's printed precision.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.nccltests import busbw_factor, read_log

# file stem -> [(collective, nranks, rows, (first bytes, oop busbw, ip busbw), (last bytes, oop, ip)), ...]
EXPECTED: dict[str, list[tuple[str, int, int, tuple[float, ...], tuple[float, ...]]]] = {
    "nccl_tests_5collectives_h100_10node_80rank_cluster01": [
        ("all_reduce", 80, 10, (33554432, 82.99, 77.32), (17179869184, 320.54, 322.70)),
        ("all_gather", 80, 10, (33553920, 48.57, 49.30), (17179868160, 324.29, 322.95)),
        ("reduce_scatter", 80, 10, (33553920, 48.08, 44.60), (17179868160, 323.40, 321.44)),
        ("alltoall", 80, 10, (33553920, 34.15, 33.79), (17179868160, 50.38, 50.58)),
        ("sendrecv", 80, 10, (33554432, 14.77, 14.65), (17179869184, 15.22, 15.23)),
    ],
    "nccl_tests_all_gather_h200_gke_a3ultra_2node_1gpu_dranet": [
        ("all_gather", 2, 24, (1024, 0.02, 0.02), (8589934592, 32.20, 33.32)),
    ],
    "nccl_tests_all_reduce_a100_1node_oldformat_interleaved_info_superbench": [
        ("all_reduce", 8, 34, (0, 0.0, 0.0), (8589934592, 235.26, 235.03)),
    ],
    "nccl_tests_all_reduce_h100_128node_maxbytes_failure_issue322": [
        ("all_reduce", 1024, 5, (1073741824, 110.84, 111.80), (17179869184, 367.29, 367.44)),
    ],
    "nccl_tests_all_reduce_h100_2node_gcp_a3mega": [
        ("all_reduce", 16, 31, (8, 0.0, 0.0), (8589934592, 338.82, 337.35)),
    ],
    "nccl_tests_all_reduce_h100_crusoe_nompi_avgbw0_issue294": [
        ("all_reduce", 1, 24, (134217728, 0.0, 0.0), (2147483648, 0.0, 0.0)),
        ("all_reduce", 16, 5, (134217728, 340.67, 340.12), (2147483648, 444.25, 442.99)),
    ],
    "nccl_tests_all_reduce_h100_ndr_1node_2node_issue290": [
        ("all_reduce", 8, 6, (134217728, 382.99, 382.34), (4294967296, 473.60, 476.53)),
        ("all_reduce", 16, 11, (8388608, 73.04, 87.38), (8589934592, 155.57, 155.56)),
        ("all_reduce", 16, 11, (8388608, 38.60, 38.79), (8589934592, 89.90, 89.40)),
    ],
    "nccl_tests_alltoall_a100_1node_oldformat_superbench": [
        ("alltoall", 8, 34, (0, 0.0, 0.0), (8589934592, 224.31, 226.16)),
    ],
    "nccl_tests_alltoall_sendrecv_h100_2node_16rank_cluster00": [
        ("alltoall", 16, 10, (33554432, 22.76, 23.23), (17179869184, 23.62, 23.63)),
        ("sendrecv", 16, 10, (33554432, 14.98, 15.02), (17179869184, 15.14, 15.15)),
    ],
    "nccl_tests_alltoall_sendrecv_h100_2node_1gpu_degraded_pair_cluster00": [
        ("alltoall", 2, 10, (33554432, 8.99, 8.62), (17179869184, 0.90, 0.84)),
        ("sendrecv", 2, 10, (33554432, 6.57, 6.52), (17179869184, 0.97, 0.99)),
    ],
    "nccl_tests_smoke_allreduce_sendrecv_h100_2node_1gpu_cluster01": [
        ("all_reduce", 2, 5, (33554432, 40.07, 39.49), (536870912, 46.32, 46.46)),
        ("sendrecv", 2, 5, (33554432, 40.02, 42.62), (536870912, 43.57, 43.65)),
    ],
}


def _logs(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.glob("nccl_tests_*.txt") if not p.name.endswith(".source.txt"))


def test_every_corpus_log_has_expectations(corpus: Path) -> None:
    stems = {p.stem for p in _logs(corpus)}
    assert stems == set(EXPECTED), "a corpus nccl-tests log was added or removed: extend EXPECTED"
    for path in _logs(corpus):
        assert (corpus / f"{path.stem}.source.txt").is_file(), f"{path.name} has no .source.txt"


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_rows_match_the_file(corpus: Path, stem: str) -> None:
    log = read_log(corpus / f"{stem}.txt")
    got = [
        (
            t.collective.value,
            t.nranks.value,
            len(t.printed.rows),
            (t.printed.rows[0].bytes, *(m.busbw_GBps.value for m in t.printed.rows[0].measurements)),
            (t.printed.rows[-1].bytes, *(m.busbw_GBps.value for m in t.printed.rows[-1].measurements)),
        )
        for t in log.tables
    ]
    assert got == EXPECTED[stem]


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_busbw_rederived_from_time_and_size(corpus: Path, stem: str) -> None:
    """busbw = size / time x factor(collective, nranks), within the printed precision of time and busbw."""
    checked = 0
    for table in read_log(corpus / f"{stem}.txt").tables:
        factor = busbw_factor(table.collective.value, table.nranks.value)
        for row in table.printed.rows:
            for m in row.measurements:
                t, b = m.time_us, m.busbw_GBps
                slowest = row.bytes / ((t.value + t.half_unit) * 1e3) * factor
                fastest = row.bytes / ((t.value - t.half_unit) * 1e3) * factor if t.value > t.half_unit else 1e30
                assert slowest - b.half_unit <= b.value <= fastest + b.half_unit, (
                    f"{table.collective.value} n={table.nranks.value} {row.bytes} B {m.placement}: "
                    f"printed busbw {b.value} is outside [{slowest:.4f}, {fastest:.4f}] from time {t.value}"
                )
                checked += 1
    assert checked == sum(2 * n for _, _, n, _, _ in EXPECTED[stem])


def test_failure_and_truncation_are_reported(corpus: Path) -> None:
    log = read_log(corpus / "nccl_tests_all_reduce_h100_128node_maxbytes_failure_issue322.txt")
    (table,) = log.tables
    assert log.truncated and not table.printed.complete
    assert len(table.printed.failures) == 10 and all("failure" in f for f in table.printed.failures)
    assert table.nranks.source == "launcher -np"  # the device list was cut at rank 99 by its reporter
    assert any("100 of 1024" in note for note in table.notes)


def test_headers_devices_and_versions(corpus: Path) -> None:
    log = read_log(corpus / "nccl_tests_5collectives_h100_10node_80rank_cluster01.txt")
    table = log.tables[0]
    header = table.printed.header
    assert header is not None
    assert (header.nthreads, header.ngpus, header.min_bytes) == (1, 1, 33554432)
    assert (header.max_bytes, header.step_factor, header.iters) == (68719476736, 2, 20)
    assert table.hosts == tuple(f"cnode3-{i:03d}" for i in range(2, 12))
    assert table.printed.gpus == ("NVIDIA H100 80GB HBM3",)
    assert (table.printed.quoted.nccl_version, table.printed.quoted.nccl_tests_version) == ("2.29.2", "2.17.8")
    assert table.printed.avg_busbw_GBps == 265.631
    gke = read_log(corpus / "nccl_tests_all_gather_h200_gke_a3ultra_2node_1gpu_dranet.txt").tables[0]
    assert (gke.printed.quoted.nccl_version, gke.printed.quoted.cuda_version, gke.printed.gpus) == (
        "2.25.1",
        "12.8",
        ("NVIDIA H200",),
    )
    old = read_log(corpus / "nccl_tests_alltoall_a100_1node_oldformat_superbench.txt").tables[0]
    assert (
        old.printed.gpus == ("A100-SXM4-40GB",) and old.printed.rows[0].root is None and old.printed.rows[0].redop == ""
    )
    assert all(m.wrong is None for r in old.printed.rows for m in r.measurements)  # 'N/A' in the error column


def test_srun_prefix_and_exponent_times(corpus: Path) -> None:
    tables = read_log(corpus / "nccl_tests_all_reduce_h100_ndr_1node_2node_issue290.txt").tables
    assert [t.hosts for t in tables] == [("node005",), ("node005", "node007"), ("node005", "node007")]
    degraded = read_log(corpus / "nccl_tests_alltoall_sendrecv_h100_2node_1gpu_degraded_pair_cluster00.txt")
    in_place = degraded.tables[0].printed.rows[-1].measurements[1]
    assert (in_place.time_us.value, in_place.time_us.half_unit) == (1.0e7, 5e5)


def test_non_mpi_build_reads_as_one_rank_tables(corpus: Path) -> None:
    """nccl-tests built without MPI=1 under mpirun: every process is its own 1-rank communicator."""
    first, second = read_log(corpus / "nccl_tests_all_reduce_h100_crusoe_nompi_avgbw0_issue294.txt").tables
    assert (first.nranks.value, first.nranks.source, first.printed.avg_busbw_GBps) == (1, "NCCL INFO", 0.0)
    assert (second.nranks.value, second.printed.avg_busbw_GBps) == (16, 406.034)
    assert second.hosts == ("h100-test-rg-1", "h100-test-rg-2")
