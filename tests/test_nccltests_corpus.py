"""The nccl-tests parser on every nccl-tests output in the shared corpus of real logs.

Per file and table: the collective, nranks, the row count, and the size and busbw (out-of-place, in-place)
of the first and last rows, as printed in the file. Then every printed busbw is re-derived from the printed
time and size with railbench's formula and must agree to the log's printed precision.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.nccltests import busbw_factor, read_log
from tests.support.nccl_tests_corpus import EXPECTED


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
