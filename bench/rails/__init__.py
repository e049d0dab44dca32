"""Per-rail tests: rail groups, the pairwise node x node matrix, and localisation of the broken part."""
