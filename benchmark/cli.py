"""The ``kdbench`` command line: one sub-command per module in :mod:`benchmark.commands`.

Every sub-command module defines ``add_parser(subparsers)`` (which sets ``func`` on its parser)
and does its imports lazily, so ``kdbench --help`` stays fast. A :class:`UserError` anywhere
becomes its one-paragraph message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from benchmark import __version__
from benchmark.errors import UserError

# Sub-command modules, in the order ``kdbench --help`` lists them.
COMMANDS = ["run", "perf", "teachers", "models", "tune", "studies", "leaderboard", "validate",
            "probe", "check_fast_path"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kdbench",
        description="Benchmark and reproducibility suite for knowledge-distillation losses.",
    )
    parser.add_argument("--version", action="version", version=f"kdbench {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"benchmark.commands.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ["run"]  # the main job: the default digits suite
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from benchmark.interrupts import exit_code, handling_signals, signal_name

    try:
        with handling_signals():
            return int(args.func(args) or 0)
    except UserError as err:
        print(f"kdbench: error: {err}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt as err:  # SIGINT, or SIGTERM (interrupts.Terminated)
        print(f"kdbench: interrupted ({signal_name(err)}); finished runs are kept, interrupted "
              "ones are marked KILLED and resume on the next run.", file=sys.stderr)
        return exit_code(err)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
