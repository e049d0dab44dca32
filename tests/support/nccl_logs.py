"""Our own NCCL_DEBUG=INFO logs, in NCCL's formats (srun's rank prefix, NET/IB and NET/Socket lines, channels
via GDRDMA): a 1CC-style node whose NCCL_IB_HCA leaves mlx5_0 out, a node on two rails and one on sockets."""

from __future__ import annotations

# Our own logs, in NCCL's formats.
GOOD_1CC = "\n".join(
    [
        "0: nodea:4101:4101 [0] NCCL INFO NCCL version 2.21.5+cuda12.4",
        "0: nodea:4101:4101 [0] NCCL INFO NCCL_IB_HCA set to ^=mlx5_0",
        "0: nodea:4101:4188 [0] NCCL INFO NET/IB : Using "
        + " ".join(f"[{k - 1}]mlx5_{k}:1/IB" for k in range(1, 9))
        + " [RO]; OOB eno1:10.1.0.11<0>",
        "0: nodea:4101:4188 [0] NCCL INFO Using network IB",
        "some unrelated line from the benchmark",
        *(
            f"{k % 2}: nodea:4101:4188 [0] NCCL INFO Channel {k:02d}/0 : 8[0] -> 0[0] [receive] via NET/IB/{k}/GDRDMA"
            for k in range(8)
        ),
        "1: nodeb:5202:5290 [1] NCCL INFO NET/IB : Using [0]mlx5_1:1/IB [1]mlx5_2:1/IB ; OOB eno1:10.1.0.12<0>",
        "1: nodeb:5202:5290 [1] NCCL INFO Channel 00/0 : 1[1] -> 9[1] [send] via NET/IB/1(9)",
        "2: nodes:6303:6390 [0] NCCL INFO NET/Socket : Using [0]eth1:10.2.0.1<0> [1]eth2:10.2.1.1<0>",
        "2: nodes:6303:6390 [0] NCCL INFO Using network Socket",
        "2: nodes:6303:6390 [0] NCCL INFO Channel 01/0 : 2[0] -> 3[0] [send] via NET/Socket/1",
    ]
)
