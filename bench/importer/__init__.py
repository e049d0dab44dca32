"""Old logs into run directories and the history (``railbench import``): its config and the import."""
