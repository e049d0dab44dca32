"""The exceptions that become railbench's exit statuses.

Library code raises; only ``bench.cli.main`` turns an exception into an exit status, so nothing deep
inside railbench calls ``sys.exit``.
"""

from __future__ import annotations

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_INFRA = 3


class UserError(Exception):
    """Bad usage or input: printed as one line, exit status 2.

    The message says what is wrong *and* how to fix it, e.g.
    ``"--min-bytes 64M is larger than --max-bytes 1M: swap them or raise -e"``.
    """

    exit_status = EXIT_USAGE


class InfraError(Exception):
    """An infrastructure fault (a hang, a lost rank, a launcher that died): exit status 3."""

    exit_status = EXIT_INFRA
