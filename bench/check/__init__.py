"""Preflight of a node (``railbench check``): its config and the node/cluster report."""
