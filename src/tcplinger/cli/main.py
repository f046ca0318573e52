"""``tcplinger`` entry point: parse, dispatch, turn errors into exit codes.

``main()`` is thin on purpose (as httpie's core.py): every expected failure
is a :class:`CliError` or an OSError that becomes one line on stderr and a
documented exit code; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import sys

from .. import __version__
from ..collect.netns import NetnsNotFound
from ..i18n import Messages, lang_from_env
from .commands import BY_NAME, COMMANDS, DEFAULT_COMMAND
from .errors import CliError, Exit
from .terminal import Terminal


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting."""

    #: a command may set another code for bad arguments (``check`` answers
    #: 3, UNKNOWN, as the monitoring-plugin guidelines ask)
    usage_exit_code = Exit.USAGE

    def error(self, message):
        raise CliError(f"{self.prog}: {message}", self.usage_exit_code)


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the ``selected`` command's module is imported and
    adds its arguments, the others are listed by name and help."""
    parser = _Parser(
        prog="tcplinger",
        description="Find, explain and end lingering TCP connections "
                    "(FIN_WAIT_2, CLOSE_WAIT, TIME_WAIT, orphans) on this host.",
        epilog=f"With no command: `tcplinger {DEFAULT_COMMAND}`. "
               "Exit codes: 0 ok, 1 unexpected error, 2 bad arguments, 3 not found, "
               "4 permission denied, 5 kernel feature missing.")
    parser.add_argument("--version", action="version", version=f"tcplinger {__version__}")
    parser.add_argument("--lang", choices=("en", "zh"),
                        help="language of the output (default: from LC_ALL/LANG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for command in COMMANDS:
        if command.name == selected:
            command.load().register(sub)
        else:
            sub.add_parser(command.name, help=command.help)
    return parser


def main(argv: list[str] | None = None, term: Terminal | None = None) -> int:
    term = term or Terminal()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = _with_default_command(argv)
        parser = build_parser(_selected(argv))
        with contextlib.redirect_stdout(term.stdout):  # --help, --version
            args = parser.parse_args(argv)
        msg = Messages(args.lang or lang_from_env(term.env))
        return int(args.run(args, term, msg))
    except CliError as exc:
        term.err(f"tcplinger: {exc.message}")
        return int(exc.code)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    except NetnsNotFound as exc:
        term.err(f"tcplinger: {exc}")
        return int(Exit.NOT_FOUND)
    except ProcessLookupError as exc:
        term.err(f"tcplinger: {exc}")
        return int(Exit.NOT_FOUND)
    except KeyboardInterrupt:
        term.err("tcplinger: interrupted")
        return int(Exit.INTERRUPTED)
    except PermissionError as exc:
        text = exc.strerror or str(exc)
        if exc.filename:
            text = f"{text}: {exc.filename}"
        if "root" not in text:
            text += " (run as root, or with CAP_NET_ADMIN and CAP_SYS_ADMIN)"
        term.err(f"tcplinger: {text}")
        return int(Exit.PERMISSION)
    except BrokenPipeError:
        return int(Exit.OK)
    except OSError as exc:
        code = Exit.UNSUPPORTED if exc.errno in (errno.EOPNOTSUPP, errno.EPROTONOSUPPORT) \
            else Exit.ERROR
        term.err(f"tcplinger: {exc.strerror or exc}"
                 + (f": {exc.filename}" if exc.filename else ""))
        return int(code)


COMMAND_NAMES = set(BY_NAME)


def _selected(argv: list[str]) -> str | None:
    """The command name in an argv that went through _with_default_command."""
    rest = list(argv)
    while rest and (rest[0] == "--lang" or rest[0].startswith("--lang=")):
        rest = rest[2:] if rest[0] == "--lang" else rest[1:]
    return rest[0] if rest and rest[0] in COMMAND_NAMES else None


def _with_default_command(argv: list[str]) -> list[str]:
    """`tcplinger [global flags] [command flags]` means the default command.

    >>> _with_default_command(["--lang", "zh", "--json"])
    ['--lang', 'zh', 'report', '--json']
    >>> _with_default_command(["ls", "--json"]), _with_default_command(["--help"])
    (['ls', '--json'], ['--help'])
    """
    out, rest = [], list(argv)
    while rest:
        if rest[0] == "--lang" and len(rest) > 1:
            out, rest = out + rest[:2], rest[2:]
        elif rest[0].startswith("--lang="):
            out, rest = out + rest[:1], rest[1:]
        else:
            break
    if rest and (rest[0] in COMMAND_NAMES or rest[0] in ("-h", "--help", "--version")):
        return out + rest
    if rest and not rest[0].startswith("-"):
        return out + rest  # an unknown command: let argparse say so
    return out + [DEFAULT_COMMAND] + rest


if __name__ == "__main__":
    sys.exit(main())
