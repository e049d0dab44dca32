"""Slurm, as railbench meets it: the nodes' states and reasons (sinfo), draining and resuming (scontrol), and
the drain policy (which part of a node a finding names, and the short reason that says it)."""
