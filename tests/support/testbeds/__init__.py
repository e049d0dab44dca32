"""Clusters built on this one host (root only): the network-namespace testbed (``netns_testbed``) and a real
Slurm cluster over it (``slurm_testbed``)."""
