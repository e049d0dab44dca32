"""railbench's version, recorded in every run.json and import (the ground: imports nothing)."""

__version__ = "0.1.0"
