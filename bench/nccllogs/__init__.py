"""NCCL's own ``NCCL_DEBUG=INFO`` logs, read without hints: the lines (``nccl_lines``), one log's facts
(``nccl_log``: the net, the devices, the channels, the versions) and what they prove for a profile
(``nccl_evidence``). Torch-free; bounded against hostile input."""
