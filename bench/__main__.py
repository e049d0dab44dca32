"""``python -m bench`` is the same as the ``railbench`` command."""

from bench.cli import entry

raise SystemExit(entry())
