"""Acceptance of a cluster (``railbench accept``): check, the world sweep and rails in one set of ranks."""
