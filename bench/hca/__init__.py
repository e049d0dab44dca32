"""Which ports NCCL uses for an NCCL_IB_HCA value, and why (``railbench hca``): its config and answer."""
