"""The ``scaling`` command line: a thin layer over the library.

Each subcommand lives in ``scaling/app/commands/<name>.py`` with two functions,
``add_parser(subparsers)`` and ``run(args) -> int``. Every refusal is one line on stderr and
exit status 2, with no traceback: the toolkit's errors (:class:`scaling.errors.ScalingError`),
argparse's own (an unknown flag, a missing argument, a number out of range: :class:`Parser`
prints one line instead of the usage block; the numbers are checked by
``scaling/app/commands/_common.py``) and an ``OSError`` on a file (a read-only folder, a full disk).
"""

from __future__ import annotations

import argparse
import importlib
import re
import signal
import sys

from scaling._version import __version__
from scaling.errors import ScalingError

COMMANDS = ("models", "gpus", "profile", "predict", "compare", "plan", "report", "data", "fit",
            "measure", "sweep", "pareto")


class UsageError(Exception):
    """A command line argparse refused: ``prog`` and the one-line message."""

    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog
        self.message = message


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``scaling CMD: error: ...``), not a usage block.

    ``error`` raises :class:`UsageError`; :func:`main` prints it and returns 2. Subparsers are of
    this class too (argparse gives them the parent's class).
    """

    def error(self, message: str):  # noqa: D401 - argparse's hook
        hint = f" (see `{self.prog} --help`)"
        raise UsageError(self.prog, " ".join(str(message).split()) + hint)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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


_DASH_VALUE = re.compile(r"^-(\d|\.\d|inf|nan)", re.IGNORECASE)
"""A value that starts with '-' and reads as a number or a size (``-5``, ``-1e3``, ``-inf``, ``-480x832``,
``-480p``, ``-5,20``): argparse takes ``-inf`` and ``-480x832`` for options (only ``-5`` and ``-.5`` look like
negative numbers to it) and answers "expected one argument", naming no value."""


def _option_action(parser: argparse.ArgumentParser, token: str):
    """The action of option ``token`` in ``parser`` (exact, or an unambiguous ``--`` abbreviation), or None."""
    actions = parser._option_string_actions  # noqa: SLF001 - argparse keeps no public index of its options
    if token in actions:
        return actions[token]
    if token.startswith("--") and parser.allow_abbrev:
        hits = {actions[o] for o in actions if o.startswith(token)}
        return hits.pop() if len(hits) == 1 else None
    return None


def glue_dash_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``--res -480x832`` -> ``--res=-480x832``: an option that takes one value, followed by a value that
    starts with '-' and reads as a number or a size (:data:`_DASH_VALUE`), is given it, so that the
    option's own rule refuses it naming the option, the value and the rule (``argument --guidance:
    `guidance` -inf: not a finite number; ...``). Subcommands are followed (``data import``); after
    ``--`` nothing is touched; a registered option is never taken as a value."""
    out: list[str] = []
    current, i = parser, 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--":
            return out + [token] + argv[i:]
        if token.startswith("-") and "=" not in token:
            action = _option_action(current, token)
            if action is not None and action.nargs is None and i < len(argv):
                value = argv[i]
                if _DASH_VALUE.match(value) and _option_action(current, value) is None:
                    out.append(f"{token}={value}")
                    i += 1
                    continue
                if not value.startswith("-"):  # the option's value: never read as a subcommand
                    out += [token, value]
                    i += 1
                    continue
            out.append(token)
            continue
        out.append(token)
        sub = next((a for a in current._actions if isinstance(a, argparse._SubParsersAction)), None)  # noqa: SLF001
        if sub is not None and token in sub.choices:
            current = sub.choices[token]
    return out


def _refuse(prog: str, message: str) -> int:
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    if hasattr(signal, "SIGPIPE") and argv is None:  # `scaling models | head` ends quietly
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(glue_dash_values(parser, sys.argv[1:] if argv is None else list(argv)))
    except UsageError as exc:
        return _refuse(exc.prog, exc.message)
    except SystemExit as exc:  # --help, --version: printed, status 0
        return exc.code if isinstance(exc.code, int) else 0
    if not getattr(args, "_run", None):
        return _refuse("scaling", f"no command given: use one of {', '.join(COMMANDS)} (see `scaling --help`)")
    prog = f"scaling {args.command}"
    if extra:  # named by the subcommand that did not take them
        action = getattr(args, "data_command", None)
        where = f"{prog} {action}" if action else prog
        return _refuse(where, f"unrecognized arguments: {' '.join(extra)} (see `{where} --help`)")
    try:
        return int(args._run(args) or 0)
    except UsageError as exc:  # a command that refuses its arguments the argparse way
        return _refuse(exc.prog, exc.message)
    except ScalingError as exc:
        return _refuse(prog, str(exc))
    except ModuleNotFoundError as exc:
        from scaling.extras import EXTRA_OF, missing_message

        if (exc.name or "").split(".")[0] not in EXTRA_OF:
            raise
        return _refuse(prog, missing_message(exc.name))
    except OSError as exc:  # a file the OS refused (a read-only folder, a full disk, a folder as a file)
        if isinstance(exc, BrokenPipeError):  # `scaling models | head` in process: the reader left
            return 0
        where = f"{exc.filename}: " if exc.filename else ""
        return _refuse(prog, f"{where}{(exc.strerror or str(exc) or type(exc).__name__).rstrip('.').lower()}")
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
