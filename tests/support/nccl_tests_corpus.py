"""What the nccl-tests parser must read from each nccl-tests log of the shared corpus: per file, each table's
collective, nranks, row count and the first and last rows' size and busbw (out-of-place, in-place), as printed
in the file. The corpus test checks the parser against it and the import command imports the same logs."""

from __future__ import annotations

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
