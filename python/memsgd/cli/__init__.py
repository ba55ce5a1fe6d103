"""The ``memsgd`` command. Each subcommand lives in its own module with a ``register(subparsers)``.

Errors end in one line on stderr, never a traceback: bad values exit with status 2 (a misspelt
option or choice gets the closest ones suggested), a missing optional dependency (it names the
extra to install), an unwritable output, memory the run cannot get or a numerical failure of the
core with 1, Ctrl-C with 130 (also while the command is still starting: memsgd._startup).
"""
from __future__ import annotations

import argparse
import difflib
import os
import re
import sys

from .. import _startup
from .._version import __version__
from . import _common, curve, reproduce, sweep, theory

__all__ = ["build_parser", "main"]

_MODULES = (curve, theory, reproduce, sweep)


class _Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for a misspelt choice (``--algo heavyball``, ``memsgd curv``)."""

    def error(self, message):
        match = re.match(r"argument (.+?): invalid choice: '(.*?)' \(choose from (.*)\)$", message)
        if match:
            choices = re.findall(r"'([^']*)'", match.group(3))
            close = difflib.get_close_matches(match.group(2), choices, n=1, cutoff=0.6)
            if close:
                message += f"; did you mean {' or '.join(map(repr, close))}?"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="memsgd", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Exact loss curves, theory and reproductions for SGD with memory.",
        epilog="presets (--algo of curve, stability, phase and sweep; older names in parentheses) and their\n"
               "options with default values (`memsgd COMMAND --help` lists every option of a command):\n"
               + _common.preset_list())
    parser.add_argument("--version", action="version", version=f"memsgd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in _MODULES:
        module.register(sub)
    return parser


def _subparser(parser: argparse.ArgumentParser, args) -> argparse.ArgumentParser:
    """The parser of the subcommand (and target) that ``args`` ran, else ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and getattr(args, action.dest, None) in action.choices:
            return _subparser(action.choices[getattr(args, action.dest)], args)
    return parser


def _unrecognized(parser: argparse.ArgumentParser, extra) -> str:
    """argparse's message for arguments no option takes, with the closest options of the
    subcommand suggested (``--stesp`` -> ``--steps``)."""
    options = [o for action in parser._actions for o in action.option_strings if o.startswith("--")]
    hints = []
    for arg in extra:
        if arg.startswith("--"):
            close = difflib.get_close_matches(arg.split("=", 1)[0], options, n=1, cutoff=0.6)
            if close:
                hints.append(f"{arg.split('=', 1)[0]}: did you mean {' or '.join(close)}?")
    return f"unrecognized arguments: {' '.join(extra)}" + (f" ({'; '.join(hints)})" if hints else "")


def main(argv=None) -> int:
    name = "memsgd"
    try:
        _startup.restore()   # from here on Ctrl-C raises KeyboardInterrupt, answered below
        parser = build_parser()
        try:
            args, extra = parser.parse_known_args(argv)
            if extra:
                sub = _subparser(parser, args)
                sub.error(_unrecognized(sub, extra))
        except SystemExit as exc:  # a usage error (status 2, message printed), --help or --version (0)
            return int(exc.code or 0)
        name = " ".join(["memsgd", args.command] + ([args.target] if getattr(args, "target", None) else []))
        if getattr(args, "plot", None):  # before the computation, not after it
            _common.check_figure_path(args.plot, "--plot")
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ImportError as exc:  # a missing extra: the message names it
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # an output folder or file that cannot be written
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError as exc:  # an allocation this process may not make (e.g. under ulimit -v)
        detail = str(exc) or "an allocation failed"
        print(f"{name}: error: out of memory: {detail} (this process may use less than the machine's physical "
              f"memory, e.g. under ulimit -v); ask for less (fewer steps, points or configurations)", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # the core's numerical failures (e.g. an eigenvalue solver that did not converge)
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
