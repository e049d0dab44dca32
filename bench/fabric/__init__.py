"""The fabric as the node sees it: sysfs (IB ports, net devices, GPUs and their NUMA/PCIe places), the
NCCL_IB_HCA and NCCL_SOCKET_IFNAME grammars, byte and error counters, link flaps in the kernel log.

Every module here is torch-free at import time; ``topology`` imports torch lazily and only when asked for
GPUs through CUDA. NCCL's own logs are read in ``bench.nccllogs``; the checks that judge a node against a
profile are ``bench.preflight``.
"""
