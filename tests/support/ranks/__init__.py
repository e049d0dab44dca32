"""Programs that run as ranks under a launcher (``python -m tests.support.ranks.<name>``): railbench's rank
code on the model of NCCL (``async_ranks``), a torchrun bootstrap probe and the namespace testbed's probe."""
