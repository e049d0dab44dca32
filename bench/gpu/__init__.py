"""The GPUs as their own tools see them: ``nvidia-smi -q -x`` (through a bounded XML reader that refuses entity
declarations), ``nvidia-smi nvlink -s``, and Xid events in the kernel log; from the tool on a live node or from
its captured output. Torch-free; the checks that judge them are ``bench.preflight.gpu_checks``."""
