"""``railbench health``: a node's health check for the scheduler (``bench.health.node``)."""
