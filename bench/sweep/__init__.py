"""The world sweep (``railbench run``): its validated config and what each rank does."""
