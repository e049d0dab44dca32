"""The ``railbench`` command line: a thin dispatcher over ``bench.commands``.

Each subcommand's face is its own module ``bench.commands.<module>``, which provides

* ``add_arguments(parser: argparse.ArgumentParser) -> None``, built from the flags the commands share
  (``bench.commands.flags``) and its own, and
* ``main(args: argparse.Namespace) -> int``, which builds the command's typed config and calls ``run(config)``
  in the command's own folder (``bench.sweep``, ``bench.rails``, ``bench.compare``, ...), usable without argparse.

Only the chosen subcommand's module is imported, so ``railbench --help`` and torch-free commands such as
``railbench hca`` stay fast. ``UserError`` becomes one line on stderr and exit 2, ``InfraError`` exit 3, a
path no file system takes (``ENAMETOOLONG``) exit 2, and output into a closed pipe (``| head``) ends quietly
with 141 as SIGPIPE would; any other exception keeps its traceback because it is a bug.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import signal
import sys
from collections.abc import Sequence

from bench.commands.helptext import HelpFormatter
from bench.exits import EXIT_USAGE, FabricFault, InfraError, Interrupted, UserError, interrupt_status
from bench.runtime.env import PARENT_VAR, discover_rank, get, quiet_torch_cpp_log
from bench.version import __version__

# name -> (module under bench.commands, one-line summary). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "sweep message sizes for collectives and print the nccl-tests table"),
    "check": ("check", "preflight: IB ports, rates, NCCL_IB_HCA, GPUs, affinity, versions"),
    "health": ("health", "this node's health check for Slurm (HealthCheckProgram, prolog): drains a bad node"),
    "hca": ("hca", "explain which HCAs NCCL will use for a given NCCL_IB_HCA"),
    "rails": ("rails", "per-rail groups and node x node pairs; names the bad node, rail or HCA"),
    "accept": ("accept", "acceptance of a new cluster: check + run + rails + report + verdict"),
    "soak": ("soak", "burn-in for hours: windows of rails + a world collective; names what fails now and then"),
    "report": ("report", "re-draw charts and the report from a run directory"),
    "compare": ("compare", "tonight against the history baseline, noise-aware"),
    "history": ("history", "add runs to, or list, the nightly history store"),
    "import": ("importer", "ingest nccl-tests logs (text or -J JSON) into results and history"),
    "export": ("export", "a run's headline metrics and verdict in the OpenMetrics text format"),
}


def _top_parser() -> argparse.ArgumentParser:
    lines = [f"  {name:<9} {summary}" for name, (_, summary) in COMMANDS.items()]
    parser = argparse.ArgumentParser(
        prog="railbench",
        description="NCCL and InfiniBand benchmark and validation suite for GPU clusters.",
        epilog="commands:\n" + "\n".join(lines) + "\n\nrun 'railbench COMMAND --help' for a command's options.\n"
        "exit status: 0 pass, 1 a target was missed, 2 bad usage or input, 3 infrastructure fault.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"railbench {__version__}")
    parser.add_argument("command", nargs="?", help=argparse.SUPPRESS)
    return parser


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; we keep its message but make it one line with a hint."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _command_parser(name: str) -> argparse.ArgumentParser:
    module_name, summary = COMMANDS[name]
    module = importlib.import_module(f"bench.commands.{module_name}")
    parser = _OneLineParser(prog=f"railbench {name}", description=summary, formatter_class=HelpFormatter)
    module.add_arguments(parser)
    parser.set_defaults(_handler=module.main)
    return parser


def _run_command(args_list: list[str]) -> int:
    """The command ``args_list`` names, run; the top-level help where it names none."""
    if not args_list or args_list[0] not in COMMANDS:
        top = _top_parser()
        if not args_list or args_list[0].startswith("-"):
            top.parse_args(args_list)  # handles --help/--version and exits
            top.print_help()
            return EXIT_USAGE
        known = ", ".join(COMMANDS)
        raise UserError(f"unknown command {args_list[0]!r}: choose one of {known}")
    parser = _command_parser(args_list[0])
    args = parser.parse_args(args_list[1:])
    status = int(args._handler(args))
    sys.stdout.flush()  # here, not at exit, so a reader that went away (| head) is met by the handler in main
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``railbench``; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run_command(args_list)
    except UserError as exc:
        print(f"railbench: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except InfraError as exc:
        print(f"railbench: infrastructure fault: {exc}", file=sys.stderr)
        return exc.exit_status
    except FabricFault as exc:
        # run.json already says it; rank 0 says it once on the terminal (a parent launcher reads run.json only)
        info = discover_rank()
        if info is None or info.rank == 0:
            print(f"railbench: FAIL: {exc}", file=sys.stderr)
        return exc.exit_status
    except BrokenPipeError:
        return _reader_gone()
    except OSError as exc:
        # A path a user typed that no Linux file system takes (a name over 255 bytes): bad input wherever the
        # kernel first refuses it. The flags checked up front say which one; this covers every other path.
        if exc.errno != errno.ENAMETOOLONG:
            raise
        shown = f"{str(exc.filename)[:80]}..." if exc.filename else "a path"
        print(f"railbench: error: {exc.strerror}: {shown}: give a shorter path", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        # Results are written as they are measured, so an interrupt loses nothing already on disk.
        info = discover_rank()
        if info is None or (info.rank == 0 and not get(PARENT_VAR)):  # one voice: the parent, else rank 0
            why = f": {exc.why}" if isinstance(exc, Interrupted) and exc.why else ""
            print(f"railbench: interrupted{why}; results measured so far are on disk", file=sys.stderr)
        return interrupt_status(exc)


def entry() -> int:
    """The ``railbench`` program (``python -m bench`` too): :func:`main`, then the process's exit. A rank that
    imported torch leaves through ``bench.runtime.rank_exit`` (seconds faster than the interpreter's
    teardown of torch); :func:`main` itself always returns, for callers in the same process."""
    with contextlib.suppress(UserError):  # a launcher variable it cannot read: main says so, in one line
        if discover_rank() is not None:
            quiet_torch_cpp_log()  # before torch is imported: libtorch reads it when it loads
    status = main()
    if "torch" in sys.modules and discover_rank() is not None:
        from bench.runtime.rank_exit import end_rank

        end_rank(status)
    return status


def _reader_gone() -> int:
    """Exit status 141 (128 + SIGPIPE, as a shell reports a tool that ``| head`` closed on): what was already
    written stays written; stdout goes to /dev/null so the interpreter's final flush raises nothing more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout to replace
        pass
    return 128 + signal.SIGPIPE


if __name__ == "__main__":
    raise SystemExit(main())
