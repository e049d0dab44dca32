"""``python -m bench`` is the same as the ``railbench`` command."""

from bench.cli import main

raise SystemExit(main())
