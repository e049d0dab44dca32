"""Models of what this machine does not have, each property cited to its source: NCCL (``async_backend``, its
log ``async_nccl_log`` and its tuner's choice ``nccl_tuning``), a rail-optimised fabric (``fabric_model``, its
regimes ``fabric_regimes``) and the bounds a GPU's numbers are held to (``gpu_bounds``)."""
