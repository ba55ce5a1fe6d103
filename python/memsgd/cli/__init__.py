"""The ``memsgd`` command. Each subcommand lives in its own module with a ``register(subparsers)``.

Errors end in one line on stderr, never a traceback: bad values exit with status 2, a missing
optional dependency (it names the extra to install) or an unwritable output with 1, Ctrl-C with
130.
"""
from __future__ import annotations

import argparse
import os
import sys

from .._version import __version__
from . import _common, curve, reproduce, sweep, theory

__all__ = ["build_parser", "main"]

_MODULES = (curve, theory, reproduce, sweep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (status 2, message printed), --help or --version (0)
        return int(exc.code or 0)
    name = " ".join(["memsgd", args.command] + ([args.target] if getattr(args, "target", None) else []))
    try:
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
    except (ValueError, TypeError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
