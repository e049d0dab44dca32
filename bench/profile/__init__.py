"""The cluster profile: its reader (``cluster``) and its tables, one module per TOML table; the profiles railbench
ships are in ``shipped/``."""
