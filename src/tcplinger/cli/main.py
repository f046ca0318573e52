"""``tcplinger`` entry point: parse, dispatch, turn errors into exit codes.

``main()`` is thin on purpose (as httpie's core.py): every expected failure
is a :class:`CliError` or an OSError that becomes one line on stderr and a
documented exit code; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import re
import sys
from typing import Callable

from .. import __version__, dataclass_cache
from ..i18n import Messages, lang_from_env
from ..model.files import NotOurFile
from .commands import BY_NAME, COMMANDS, DEFAULT_COMMAND
from .errors import CatalogError, CliError, Exit, exit_for, one_line
from .formatter import Formatter
from .options import OptionError
from .output import strerror_text
from .terminal import Terminal


class UsageError(CliError):
    """A CliError whose text can be rendered in the user's language:
    ``message`` stays the English text, ``render(msg)`` gives the
    catalog's."""

    def __init__(self, message: str, code: Exit, render: Callable[[Messages], str]):
        super().__init__(message, code)
        self.render = render


#: argparse's own English messages (Lib/argparse.py, Python 3.11; argparse
#: has no catalog of ours) -> our catalog key. Unmatched ones stay English.
#: Pattern texts, compiled by ``re`` when an error needs them (and cached
#: there): compiling all of them cost every start ~2 ms (issue 16).
ARGPARSE_MESSAGES = [
    (r"argument (?P<arg>\S+): invalid choice: (?P<value>.*?)"
     r" \(choose from (?P<choices>.*)\)", "usage.invalid_choice"),
    (r"argument (?P<arg>\S+): not allowed with argument (?P<other>\S+)",
     "usage.not_allowed_with"),
    (r"argument (?P<arg>\S+): expected one argument", "usage.expected_one"),
    (r"argument (?P<arg>\S+): expected at least one argument",
     "usage.expected_at_least_one"),
    (r"argument (?P<arg>\S+): expected at most one argument",
     "usage.expected_at_most_one"),
    (r"ambiguous option: (?P<option>\S+) could match (?P<matches>.*)",
     "usage.ambiguous"),
    (r"argument (?P<arg>\S+): invalid (?P<type>\w+) value: (?P<value>.*)",
     "usage.invalid_typed"),
    (r"argument (?P<arg>\S+): ignored explicit argument (?P<value>.*)",
     "usage.ignored_explicit"),
    (r"unrecognized arguments: (?P<args>.*)", "usage.unrecognized"),
    (r"the following arguments are required: (?P<args>.*)", "usage.required"),
    (r"one of the arguments (?P<args>.*) is required", "usage.one_required"),
]


def _usage_render(prog: str, message: str) -> Callable[[Messages], str]:
    """How to say argparse's ``message`` in the catalog's language.

    >>> _usage_render("tcplinger ls", "unrecognized arguments: --x")(Messages("zh"))
    'tcplinger ls：无法识别的参数：--x'
    """
    exc = sys.exc_info()[1]  # error() is called in argparse's except ArgumentError
    bad = exc.__context__ if isinstance(exc, argparse.ArgumentError) else None
    if isinstance(bad, OptionError):  # one of ours (options.py)
        arg = exc.argument_name
        return lambda msg: msg("usage.line", prog=prog, text=msg(
            "usage.argument", arg=arg, text=msg(bad.key, **bad.fields)))
    for pattern, key in ARGPARSE_MESSAGES:
        m = re.fullmatch(pattern, message)
        if m:
            return lambda msg: msg("usage.line", prog=prog, text=msg(key, **m.groupdict()))
    return lambda msg: msg("usage.line", prog=prog, text=message)


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, and
    says its own words (usage, options, -h) in ``texts``' language."""

    texts: Messages | None = None  # set by _argparse_words

    #: a command may set another code for bad arguments (``check`` answers
    #: 3, UNKNOWN, as the monitoring-plugin guidelines ask)
    usage_exit_code = Exit.USAGE

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)
        # argparse reads a value only if it looks like a negative number
        # (r'^-\d+$|^-\d*\.\d+$', Lib/argparse.py), so `--older-than -3s`
        # said "expected one argument": here anything from "-" and a digit
        # (or -inf, -nan) is a value, and the option's type judges it
        # (model/units.py: "must not be negative"). No option is spelt -<digit>.
        self._negative_number_matcher = re.compile(r"^-(\.?[0-9]|inf|nan)", re.IGNORECASE)

    def _get_formatter(self):
        formatter = super()._get_formatter()
        if self.texts is not None and isinstance(formatter, Formatter):
            formatter.usage_prefix = self.texts("argparse.usage")
        return formatter

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}", self.usage_exit_code,
                         _usage_render(self.prog, message))


#: Not-found texts of collect/netns.py and collect/files.py (English, one
#: line) -> our catalog key; unmatched ones are shown as they are
#: (pattern texts, as ARGPARSE_MESSAGES).
NOT_FOUND_MESSAGES = [
    (r"no network namespace named (?P<name>.*) in (?P<path>\S+)",
     "error.no_netns_named"),
    (r"invalid network namespace name (?P<name>.*)", "error.invalid_netns_name"),
    (r"(?P<path>\S+) is not a network namespace \(a file left by an"
     r" interrupted `ip netns add`\?\)", "error.not_a_netns"),
    (r"no process (?P<pid>\d+) in (?P<root>\S+)", "error.no_process_in"),
    (r"no process (?P<pid>\d+)", "error.no_process"),
    (r"network namespace (?P<netns>.+) vanished while being read",
     "error.netns_vanished"),
]



def _not_found_text(text: str, msg: Messages) -> str:
    for pattern, key in NOT_FOUND_MESSAGES:
        m = re.fullmatch(pattern, text)
        if m:
            return msg(key, **m.groupdict())
    return text


def _os_text(exc: OSError, msg: Messages) -> str:
    """strerror in the catalog's language when it is the C library's own
    text for a known errno, with the file name."""
    text = strerror_text(exc.strerror, msg) if exc.strerror else str(exc)
    return msg("error.os_file", text=text, file=exc.filename) if exc.filename else text


def _early_messages(argv: list[str], env) -> Messages:
    """The catalog for errors before (or without) a parsed --lang.

    >>> _early_messages(["--lang", "zh", "ls"], {}).lang
    'zh'
    >>> _early_messages(["ls"], {"LANG": "zh_CN"}).lang
    'zh'
    """
    for i, arg in enumerate(argv):
        value = argv[i + 1] if arg == "--lang" and i + 1 < len(argv) else \
            arg.partition("=")[2] if arg.startswith("--lang=") else None
        if value in ("en", "zh"):
            return Messages(value)
    return Messages(lang_from_env(env))


def build_parser(selected: str | None = None, h: Messages | None = None
                 ) -> argparse.ArgumentParser:
    """The parser, every help text from ``h``'s catalog (English by
    default); only the ``selected`` command's module is imported and adds
    its arguments, the others are listed by name and help."""
    h = h or Messages("en")
    parser = _Parser(prog="tcplinger", description=h("help.tcplinger.about"),
                     epilog=h("help.tcplinger.epilog", command=DEFAULT_COMMAND))
    parser.add_argument("--version", action="version", version=f"tcplinger {__version__}",
                        help=h("argparse.version"))
    parser.add_argument("--lang", choices=("en", "zh"), help=h("help.tcplinger.lang"))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for command in COMMANDS:
        if command.name == selected:
            command.load().register(sub, h)
        else:
            sub.add_parser(command.name, help=h(command.help))
    _global_everywhere(sub, h)
    _argparse_words(parser, h)
    return parser


def _global_everywhere(sub: argparse._SubParsersAction, h: Messages) -> None:
    """``--lang`` wherever the user types it: after the command
    (``tcplinger report --lang zh``) as before it. The copy on each
    command's parser has no default (SUPPRESS), so it overrides the
    global one only when given (argparse copies a subparser's namespace
    over its parent's)."""
    for parser in set(sub.choices.values()):
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for action in nested:
            _global_everywhere(action, h)
        if "--lang" not in parser._option_string_actions:
            parser.add_argument("--lang", choices=("en", "zh"), default=argparse.SUPPRESS,
                                help=h("help.tcplinger.lang"))


def _argparse_words(parser: _Parser, h: Messages) -> None:
    """argparse's own words on every parser of the tree in ``h``'s
    language: the group titles, -h's help, "usage: " (argparse takes them
    from gettext, which has no catalog of ours)."""
    parser.texts = h
    parser._positionals.title = h("argparse.positionals")
    parser._optionals.title = h("argparse.options")
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            action.help = h("argparse.help")
        elif isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _argparse_words(child, h)


#: Thread counts of the BLAS libraries numpy may be built with (OpenBLAS
#: reads OPENBLAS_NUM_THREADS, then GOTO_NUM_THREADS, then OMP_NUM_THREADS,
#: the first one set winning: blas_get_cpu_number(), driver/others/memory.c;
#: an OpenMP build reads OMP_NUM_THREADS).
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
#: The ones set to one thread when the user set none of BLAS_THREAD_VARS.
ONE_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


@contextlib.contextmanager
def _one_blas_thread():
    """numpy's BLAS with one thread while the command's modules (and so
    numpy) are imported, unless the user chose a thread count.

    Why: tcplinger does no linear algebra, and OpenBLAS starts a thread per
    further CPU when numpy loads it (gotoblas_init(), the library's
    constructor), which busy-waits for work while the import goes on:
    ``python3 -c "import numpy"`` took 0.22 s of CPU on this 2-CPU machine
    against 0.12-0.18 s with OPENBLAS_NUM_THREADS=1 (issue 16). The variables are read when the library
    is loaded, so they are set only around the import and removed after it:
    the programs tcplinger starts (the lab's servers) get the user's
    environment."""
    # Any one of them set is the user's choice: setting OPENBLAS_NUM_THREADS
    # beside a user's OMP_NUM_THREADS would override it (read first).
    chosen = any(name in os.environ for name in BLAS_THREAD_VARS)
    added = [] if chosen else list(ONE_THREAD_VARS)
    for name in added:
        os.environ[name] = "1"
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@contextlib.contextmanager
def _no_collection(program: bool):
    """No garbage collection while the command's modules are imported;
    a ``program`` (the process's own command line: ``python -m
    tcplinger`` or the console script) then moves what exists into the
    permanent generation (gc.freeze).

    Why: an import makes objects (modules, functions, classes, numpy's
    tables) that live as long as the process, and the collector, called
    every 700 allocations, scanned them again and again: 7-8 ms of CPU of
    a report's start (40-50 collections, gc.callbacks, issue 16). Frozen,
    the collections of the command's own work skip them. Only a program
    freezes: a caller of main() in its own process (tests) would keep the
    cycles of its earlier calls that were not collected yet."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if program:
                gc.freeze()
            gc.enable()


def main(argv: list[str] | None = None, term: Terminal | None = None) -> int:
    term = term or Terminal()
    program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    msg: Messages | None = None

    def say(key: str, **fields) -> None:  # one line on stderr, in the user's language
        m = msg or _early_messages(argv, term.env)
        term.err(one_line(m("error.line", text=m(key, **fields) if key else fields["text"])))

    try:
        argv = _with_default_command(argv)
        # build_parser imports the command's modules (and so numpy and
        # most of the command's dataclasses)
        selected = _selected(argv)
        with _one_blas_thread(), dataclass_cache.cached(selected or "tcplinger"), \
                _no_collection(program):
            parser = build_parser(selected, _early_messages(argv, term.env))
        with contextlib.redirect_stdout(term.stdout):  # --help, --version
            args = parser.parse_args(argv)
        msg = Messages(args.lang or lang_from_env(term.env))
        return int(args.run(args, term, msg))
    except CliError as exc:
        if isinstance(exc, UsageError):  # "tcplinger ls: argument ...": its own prefix
            term.err(one_line(exc.render(msg or _early_messages(argv, term.env))))
        elif isinstance(exc, CatalogError):
            say("", text=exc.render(msg or _early_messages(argv, term.env)))
        else:  # commands' own texts: they choose their language themselves
            say("", text=exc.message)
        return int(exc.code)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    except NotOurFile as exc:  # a database or state file that is not tcplinger's: untouched
        say(exc.key, **exc.fields)
        return int(Exit.BAD_INPUT)
    except _not_found_errors() as exc:
        say("", text=_not_found_text(str(exc), msg or _early_messages(argv, term.env)))
        return int(Exit.NOT_FOUND)
    except KeyboardInterrupt:
        say("error.interrupted")
        return int(Exit.INTERRUPTED)
    except PermissionError as exc:
        m = msg or _early_messages(argv, term.env)
        text = _os_text(exc, m)
        english = exc.strerror or str(exc)
        if "root" not in english and "root" not in (exc.filename or ""):
            text = m("error.permission_hint", text=text)
        say("", text=text)
        return int(Exit.PERMISSION)
    except BrokenPipeError:
        return int(Exit.OK)
    except OSError as exc:
        say("", text=_os_text(exc, msg or _early_messages(argv, term.env)))
        return int(exit_for(exc))


COMMAND_NAMES = set(BY_NAME)


def _not_found_errors() -> tuple:
    """The "not found" exceptions (exit 3). An ``except`` clause evaluates
    this only when an exception reaches it, so ``--version``, ``--help``,
    ``rules`` and ``explain`` never import the collectors (issue 16)."""
    from ..collect.netns import NetnsNotFound

    return (NetnsNotFound, ProcessLookupError)


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
