"""Fabric discovery and proof: sysfs, NCCL_IB_HCA, NCCL logs, byte counters, checks.

Every module here is torch-free at import time; ``topology`` imports torch lazily and only when asked for
GPUs through CUDA.
"""
