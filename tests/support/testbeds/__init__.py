"""Clusters built on this one host (root only): the network-namespace testbed (``netns_testbed``) and a real
Slurm cluster over it (``slurm_testbed``)."""

TESTBED = "testbed"
"""The xdist group of the namespace testbed's tests (tests/conftest.py), unless a module or a test names
:data:`SECOND_TESTBED`."""
SECOND_TESTBED = "slurm-testbed"
"""The other testbed worker's xdist group: the Slurm cluster's tests, and the testbed modules and tests that name it
(the soak's, the diagnosis campaign's, the switch layer's shaped uplink) so that neither testbed worker alone holds up
the suite."""
