"""Readings of the verbatim corpus in ``tests/data/wild/``: one module per reader, named as its folder there.

Each module ``tests/support/wild/<folder>.py`` defines ``read(path: Path) -> dict``: what railbench makes of one corpus
file, as plain data (str, int, float, bool, lists and tables) that a TOML manifest can hold. The corpus folder's
``cases.toml`` gives, per file, where it came from and the reading a correct reader gives
(``tests/test_project_wild_corpus.py`` compares the two exactly).
"""
