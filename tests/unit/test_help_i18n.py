"""Every command's --help in Chinese: argparse's own words ("usage:",
"options:", "show this help message and exit") and every description and
option help come from the catalogs (messages/*/help.toml and the areas'
*.help.* keys), for every command of the registry and every action under
it, chosen by --lang or by LANG (issue 15, item 6)."""

from __future__ import annotations

import argparse
import re

import pytest

from tcplinger.cli.commands import COMMANDS
from tcplinger.cli.main import build_parser
from tcplinger.diagnose.metadata import BY_ID
from tcplinger.i18n import Messages
from tcplinger.model.params import Param, ParamError
from tcplinger.model.states import UnknownState, parse_states

CJK = re.compile(r"[\u4e00-\u9fff]")

#: proper nouns, acronyms and program names a Chinese help text keeps as
#: they are (each one a name, not an English word to translate)
GLOSSARY = {
    "BSD", "CRI-O", "DIR", "FreeBSD", "HP-UX", "HTML", "HTTP", "ID", "IP", "Icinga", "JSON",
    "Kubernetes", "Linux", "MPLS", "NAT", "Nagios", "PNG", "Pod", "Prometheus", "RFC", "SLL",
    "SQLite", "SVG", "SIGTERM", "Solaris", "TCP", "TLS", "TOML", "TcpExt", "VLAN", "Windows",
    "Zeek", "conntrack", "containerd", "cookie", "docker", "exporter-toolkit", "ipfw",
    "matplotlib", "pcap", "pcap-filter", "pcapng", "pf", "podman", "root", "ss", "sysctl",
    "tcpdump", "textfile", "tracefs", "tracepoint", "veth", "uid", "owner", "other", "cooked",
    "ip-sysctl", "sock_diag", "node_exporter",
    # command-line words inside examples: `ss -tan`, `tcpdump -w`, tcpdump's flag,
    # the pcap-filter primitives, top's keys
    "-tan", "-w", "--immediate-mode", "host", "net", "port", "portrange", "src", "dst", "tcp",
    "ip", "and", "or", "not", "q", "s", "f", "o", "n", "c", "k", "y", "any",
    # Zeek's history letters and `zeek -r` without `-C` (pcap --checksums)
    "C", "zeek", "-r", "-C",
}


def _parsers(parser: argparse.ArgumentParser, path=()):
    """(path, parser) for the parser and every subcommand under it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, path + (name,))


def _command_parsers(lang: str):
    """(argv path, parser) for every command of the registry, its module
    loaded, and every subcommand under it; the top-level parser first."""
    h = Messages(lang)
    yield (), build_parser(None, h)
    for command in COMMANDS:
        top = build_parser(command.name, h)
        sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
        yield from _parsers(sub.choices[command.name], (command.name,))


def _names(parser: argparse.ArgumentParser) -> set[str]:
    """The words a help may show untranslated: option flags, metavars,
    choices, command names."""
    words = {"tcplinger"}
    for _, p in _parsers(parser):
        words.update(p.prog.split())
        for a in p._actions:
            words.update(a.option_strings)
            for metavar in (a.metavar if isinstance(a.metavar, tuple) else (a.metavar,)):
                words.update(re.split(r"[^A-Za-z0-9_.=:-]+", metavar or ""))
            words.update(str(c) for c in (a.choices or ()))
            words.add(a.dest.upper())  # argparse's metavar when none is given
    return words


def _state_word(token: str) -> bool:
    """A state or group name as --state takes it (close-wait, FIN_WAIT2...)."""
    try:
        return bool(parse_states(token))
    except UnknownState:
        return False


def english_words(text: str, names: set[str]) -> list[str]:
    """The runs of ASCII letters in ``text`` that are none of: an option
    flag, metavar, choice or command name (``names``), a state or group
    name, a rule id, a path or file name (a "/" or "." inside), an
    identifier (an "_" or a digit inside), a `quoted command`, or a
    name of the glossary.

    >>> english_words("只看 --pid 进程（默认 /proc/PID/comm）", {"--pid"})
    []
    >>> english_words("only 进程 sockets held by --pid", {"--pid"})
    ['only', 'sockets', 'held', 'by']
    """
    text = re.sub(r"`[^`]*`", " ", text)
    bad = []
    for token in re.split(r"[^A-Za-z0-9_./*~=:+\-]+", text):
        token = token.strip(".:")
        if not re.search(r"[A-Za-z]", token) or token in names or token in GLOSSARY:
            continue
        if _state_word(token) or token in BY_ID or re.search(r"[/._0-9]", token):
            continue
        if "=" in token and all(p in names or p in GLOSSARY or not p or re.search(r"[_.0-9]", p)
                                for p in token.split("=")):
            continue
        bad.append(token)
    return bad


ZH_PARSERS = list(_command_parsers("zh"))


@pytest.mark.parametrize("path", [p for p, _ in ZH_PARSERS], ids=lambda p: " ".join(p) or "-")
def test_help_in_chinese_has_no_english_word(cli, path):
    names = _names(ZH_PARSERS[0][1]) | set().union(*(_names(p) for _, p in ZH_PARSERS))
    for argv, env in ((("--lang", "zh", *path, "--help"), {"LANG": "C"}),
                      ((*path, "--help"), {"LANG": "zh_CN.UTF-8"})):
        code, out, err = cli(*argv, env=env)
        assert code == 0 and err == "", (argv, err)
        assert out.startswith("用法：tcplinger") and CJK.search(out)
        assert "选项" in out and "显示本帮助信息并退出" in out
        assert english_words(out, names) == [], (argv, out)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_usage_continuation_lines_line_up_in_columns(lang, monkeypatch):
    """A wrapped usage continues under the first option, counted in
    terminal columns: "用法：" is 3 characters but 6 columns."""
    from tcplinger.cli.formatter import width

    monkeypatch.setenv("COLUMNS", "80")  # argparse's width, where usages wrap

    wrapped = 0
    for path, parser in _command_parsers(lang):
        lines = parser.format_usage().splitlines()
        head = lines[0].split("[", 1)[0]  # "用法：tcplinger report "
        for line in lines[1:]:
            if line.strip():
                wrapped += 1
                assert len(line) - len(line.lstrip(" ")) == width(head), (path, lines)
    assert wrapped  # some usage does wrap at argparse's width


def test_english_help_keeps_english(cli):
    code, out, _ = cli("ls", "--help", env={"LANG": "C"})
    assert code == 0 and out.startswith("usage: tcplinger ls") and not CJK.search(out)
    assert "show this help message and exit" in out and "options:" in out
    assert "List TCP sockets" in out


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_action_and_command_has_a_catalog_help(lang):
    """Every option, positional and subcommand of every command has a
    help text, and it is the catalog's (the zh text differs from the en
    one: it came from the zh catalog, not from a string in the code)."""
    en = {path: p for path, p in _command_parsers("en")}
    for path, parser in _command_parsers(lang):
        assert parser.description or path == (), path
        other = en[path]
        for mine, theirs in zip(parser._actions, other._actions):
            where = (path, mine.option_strings or mine.dest)
            if isinstance(mine, argparse._SubParsersAction):
                for c, c_en in zip(mine._choices_actions, theirs._choices_actions):
                    assert c.help and (lang == "en" or c.help != c_en.help), (where, c.dest)
                continue
            if isinstance(mine, argparse._VersionAction) or mine.help == argparse.SUPPRESS:
                continue
            assert mine.help, where
            assert "%" not in mine.help.replace("%%", ""), where  # argparse %-formats help
            if lang == "zh":
                assert mine.help != theirs.help and CJK.search(mine.help), where
        if lang == "zh" and path:
            assert CJK.search(parser.description), path


# ---- errors in Chinese ----------------------------------------------------------------

#: bad input per command: argparse's errors, option types, and the
#: commands' own argument checks
BAD_INPUT = {
    "report": [["--rule", "nope"], ["--threshold", "x"], ["--sockets", "-1"]],
    "ls": [["--port", "x"], ["--s", "1"]],
    "stats": [["--owners", "--no-owners"]],
    "rules": [["extra"]],
    "explain": [[]],
    "check": [["--threshold", "close-wait-leak.nope=3"]],
    "doctor": [["--json=x"]],
    "kill": [["--peer", "zz"], ["--cookie", "q"], ["--older-than"]],
    "tune": [["--threshold", "close-wait-leak.min_age=abc"], ["--apply", "--revert"]],
    "sim": [[], ["run"], ["run", "--set", "x"], ["sweep", "--preset", "x"]],
    "pcap": [[]],
    "capture": [["--seconds", "0"]],
    "lab": [[], ["run"], ["list", "--bogus"]],
    "exporter": [["--listen", "bad"], ["--interval", "5"],
                 ["--textfile", "/tmp", "--web-config", "x"]],
    "watch": [["--interval", "0"], ["--samples", "0"]],
    "history": [["--by", "pid"]],
    "top": [["--refresh", "0"]],
}


def test_bad_input_covers_every_command():
    assert set(BAD_INPUT) == {c.name for c in COMMANDS}


@pytest.mark.parametrize("argv", [[c.name, *bad] for c in COMMANDS for bad in
                                  [["--no-such-option-xyz"], *BAD_INPUT[c.name]]],
                         ids=" ".join)
def test_usage_errors_in_chinese(cli, argv):
    names = set().union(*(_names(p) for _, p in ZH_PARSERS)) | set(argv)  # the user's words
    code, out, err = cli("--lang", "zh", *argv, env={"LANG": "C"})
    text = err or out  # check, a monitoring plugin, answers on stdout
    assert code in (2, 3), (argv, code, text)
    assert text.count("\n") == 1 and CJK.search(text), (argv, text)
    text = re.sub(r"'[^']*'|TCPLINGER UNKNOWN", " ", text)  # the user's own values
    assert english_words(text, names) == [], (argv, text)


#: the simulator's and the lab's parameter errors (ParamError: a catalog key
#: and fields); none of these touches the kernel
PARAM_ERRORS = [
    ["sim", "run", "--preset", "linux-orphan-fin-wait-2", "--set", "nope=1"],
    ["sim", "run", "--preset", "linux-orphan-fin-wait-2", "--set", "tcp_fin_timeout=abc"],
    ["sim", "run", "--preset", "linux-orphan-fin-wait-2", "--set", "tcp_fin_timeout=-5"],
    ["sim", "run", "--preset", "linux-orphan-fin-wait-2", "--set", "client.nope.x=1"],
    ["sim", "sweep", "--preset", "linux-orphan-fin-wait-2", "--vary", "tcp_fin_timeout=5..1"],
    ["sim", "sweep", "--preset", "linux-orphan-fin-wait-2", "--vary", "tcp_fin_timeout=a..b"],
    ["sim", "sweep", "--preset", "linux-orphan-fin-wait-2", "--vary",
     "tcp_fin_timeout=1..100000000"],
    ["sim", "sweep", "--preset", "linux-orphan-fin-wait-2", "--vary", "tcp_fin_timeout=1..1000",
     "--vary", "linger2=1..1000"],
    ["sim", "sweep", "--preset", "linux-orphan-fin-wait-2", "--vary", "tcp_fin_timeout"],
    ["sim", "sweep", "--preset", "linux-orphan-fin-wait-2", "--vary", "tcp_fin_timeout=1e11"],
    ["lab", "run", "close-wait-leak", "--set", "nope=1"],
    ["lab", "run", "close-wait-leak", "--set", "tcp_fin_timeout=99999999"],
    ["lab", "run", "close-wait-leak", "--set", "keepalive=2"],
    ["lab", "run", "close-wait-leak", "--set", "x"],
]


@pytest.mark.parametrize("argv", PARAM_ERRORS, ids=" ".join)
def test_parameter_errors_in_chinese(cli, argv):
    """The same line in English (str() of the ParamError, what the
    library raises) and in Chinese, said from the catalog."""
    names = set().union(*(_names(p) for _, p in ZH_PARSERS)) | set(argv)
    names |= {w for a in argv for w in re.split(r"[=.]", a)}  # a key's parts: client, nope
    code, _, en = cli(*argv, env={"LANG": "C"})
    assert code == 2 and en.count("\n") == 1 and not CJK.search(en), (argv, en)
    for lang_args, env in ((("--lang", "zh"), {"LANG": "C"}), ((), {"LANG": "zh_CN.UTF-8"})):
        code, out, err = cli(*lang_args, *argv, env=env)
        assert code == 2 and out == "" and err.count("\n") == 1 and CJK.search(err), (argv, err)
        text = re.sub(r"'[^']*'", " ", err)  # the user's own values
        # the names the scenario or preset has ("已知：client, drop, ..."): keys, not words
        text = re.sub(r"[\w.-]+(, [\w.-]+)+", " ", text)
        assert english_words(text, names) == [], (argv, err)


def _param_error(call) -> ParamError:
    with pytest.raises(ParamError) as info:
        call()
    return info.value


def test_parameter_errors_english_catalog_is_the_library_text():
    """str() of a ParamError (what a library user and --json see) is the
    English catalog's text for its key and fields, and zh says it otherwise."""
    from tcplinger.cli.errors import said
    from tcplinger.lab import scenario as lab_scenario
    from tcplinger.lab.scenarios import get as lab_get
    from tcplinger.lab.params import parse_sets
    from tcplinger.sim import scenario as sim_scenario
    from tcplinger.sim.sweep import parse_vary

    fin = Param("fin", 60.0, "seconds", minimum=0, maximum=3600)
    errors = [
        _param_error(lambda: fin.parse("abc")), _param_error(lambda: fin.parse("4000")),
        _param_error(lambda: Param("b", 0, "bool").parse("2")),
        _param_error(lambda: Param("c", "a", "choice", choices=("a", "b")).parse("z")),
        _param_error(lambda: Param("r", "1 2", "range", minimum=1, maximum=9).parse("5 3")),
        _param_error(lambda: parse_vary("x=5..1")), _param_error(lambda: parse_vary("x=a..b")),
        _param_error(lambda: parse_vary("x")), _param_error(lambda: parse_vary("x=1..100000000")),
        _param_error(lambda: parse_sets(["x"])),
        _param_error(lambda: lab_scenario.prepare(lab_get("close-wait-leak"), [("nope", "1")])),
        _param_error(lambda: sim_scenario.from_document({"nope": 1})),
        _param_error(lambda: sim_scenario.from_document({"client": {"behaviour": "x"}})),
        _param_error(lambda: sim_scenario.parse_toml("= =")),
        _param_error(lambda: sim_scenario.set_path({}, "box.x", 1)),
    ]
    en, zh = Messages("en"), Messages("zh")
    for e in errors:
        assert said(en, e.key, e.fields) == str(e), e.key
        assert CJK.search(said(zh, e.key, e.fields)), e.key
