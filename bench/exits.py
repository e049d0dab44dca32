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


class FabricFault(Exception):
    """A part the run named failed before the run could finish (a link that died mid-measurement): run.json
    already says the FAIL and the step it ended in; exit status 1, as any run that names a broken part."""

    exit_status = EXIT_FAIL


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: exit status 128 + the signal (130, 143). A KeyboardInterrupt, so every handler that
    keeps rows on Ctrl-C keeps them on SIGTERM (what ``scancel`` and ``timeout`` send) too."""

    def __init__(self, signum: int, why: str | None = None) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_status = 128 + signum
        self.why = why
        """Which process the signal was sent to, where it was not this one (a peer rank's SIGTERM)."""


def interrupt_status(exc: BaseException) -> int:
    """The exit status of an interrupt: 128 + its signal, 130 for a plain KeyboardInterrupt."""
    return exc.exit_status if isinstance(exc, Interrupted) else 130
