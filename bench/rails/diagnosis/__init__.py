"""The pure diagnosis of the rails test: rank 0 judging what the ranks sent (numpy, no torch, no communicator), from
the pair matrix to the named defects and the judged items. Imports the plan only."""
