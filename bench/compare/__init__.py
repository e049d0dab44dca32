"""Tonight's run against its baseline (``railbench compare``): its config and the comparison."""
