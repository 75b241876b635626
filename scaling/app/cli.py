"""The ``scaling`` command line: a thin layer over the library.

Each subcommand lives in ``scaling/app/commands/<name>.py`` with two functions,
``add_parser(subparsers)`` and ``run(args) -> int``. Errors of the toolkit
(:class:`scaling.errors.ScalingError`) become one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from scaling._version import __version__
from scaling.errors import ScalingError

COMMANDS = ("models", "gpus", "profile", "predict", "compare", "plan", "report", "data", "fit",
            "measure", "sweep", "pareto")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scaling", description="Predict, measure and explain the energy of diffusion-model inference.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"scaling.app.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"scaling.app.commands.{name}":
                continue  # command not built yet
            raise
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    if hasattr(signal, "SIGPIPE") and argv is None:  # `scaling models | head` ends quietly
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except ScalingError as exc:
        print(f"scaling {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        from scaling.extras import EXTRA_OF, missing_message

        if (exc.name or "").split(".")[0] not in EXTRA_OF:
            raise
        print(f"scaling {args.command}: error: {missing_message(exc.name)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"scaling {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
