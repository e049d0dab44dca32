"""Per-rail tests: rail groups, the pairwise node x node matrix, and localisation of the broken part.

Three floors, each importing only the ones below: ``measurement`` (the rank side), ``diagnosis`` (rank 0's pure
judgment) and ``plan`` (what a run measures and what it costs); ``rank`` (the job's rank entry) and ``output``
(what the test leaves behind) stand on top of them.
"""
