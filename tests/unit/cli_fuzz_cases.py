"""The input space of tests/unit/test_cli_fuzz.py: which value classes
each option of each command takes (from the parser itself, so a new
option is fuzzed the day it is added), a valid bounded command line for
each command, valid values, and the items that fail today
(cli_fuzz_known.txt). Loaded by path (tests/ is not a package)."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from tcplinger.cli.commands import COMMANDS
from tcplinger.cli.main import build_parser

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CAPTURE = ROOT / "tests" / "data" / "lab" / "fin_dropped.client.pcap"
#: Items that fail today (issue 13): "command:option:class" -> the property that breaks.
KNOWN = dict(line.split(" ", 1) for line in (HERE / "cli_fuzz_known.txt").read_text().splitlines()
             if line and not line.startswith("#"))


def readme_exit_codes() -> set[int]:
    table = (ROOT / "README.md").read_text().split("### Exit codes", 1)[1].split("\n\n")[1]
    return {int(m) for m in re.findall(r"^\| (\d+) \|", table, re.M)}


OK_CODES = readme_exit_codes() - {1}
CHECK_CODES = {0, 1, 2, 3}  # the monitoring-plugin convention (README)

# ---- what each option takes -----------------------------------------------------------

NUMBER = {"--netns-pid", "--interval", "--sockets", "--port", "--sport", "--dport", "--pid",
          "--older-than", "--cookie", "--max", "--horizon", "--show", "--seconds",
          "--duration", "--top-owners", "--top-destinations", "--samples", "--full-every",
          "--keep", "--raw-keep", "--since", "--refresh", "--inactivity"}
NAME = {"--netns", "--container", "--pod", "--rule", "--preset", "--interface", "--by",
        "--peer", "--listen", "--uid", "--comm", "--filter", "rule", "scenario"}
NAME_STRICT = NAME - {"--comm", "--filter", "--uid"} | {"--lang"}  # an empty filter or name may mean "all"
KEYVALUE = {"--threshold": "close-wait-leak.warning_count", "--set": "tcp_fin_timeout",
            "--vary": "tcp_fin_timeout"}
#: options that write a file; "state" ones keep tcplinger's own data (refuse foreign files)
WRITES = {"--svg", "--png", "--write", "--textfile", "--html"}
STATE = {("check", "--state"), ("watch", "--db")}
NEVER = {"--yes", "--apply", "--revert", "--force", "--help", "--version"}  # not on this host
STATES = {("ls", "--state"), ("kill", "--state"), ("history", "--state")}

#: a valid, bounded invocation of each command (the fuzzed option replaces its own part)
BASE = {
    "kill": ["--state", "close-wait"], "explain": ["close-wait-leak"], "top": ["--once"],
    "watch": ["--samples", "1", "--interval", "0.2", "--db", "{tmp}/w.db"],
    "exporter": ["--textfile", "{tmp}/prom"], "pcap": [str(CAPTURE)],
    "sim run": ["--preset", "linux-orphan-fin-wait-2", "--horizon", "300"],
    "sim sweep": ["--preset", "linux-orphan-fin-wait-2", "--vary", "tcp_fin_timeout=30,90",
                  "--horizon", "300"],
    "lab run": ["orphan-fin-wait-2", "--duration", "1", "--no-capture", "--no-diagnose"],
    "capture": ["--seconds", "0.2", "--interface", "lo"],
}
VALID = {
    "--netns-pid": ["{pid}"], "--pid": ["{pid}"], "--interval": ["0.1"], "--sockets": ["5"],
    "--port": ["80"], "--sport": ["80"], "--dport": ["80"], "--older-than": ["5m"],
    "--cookie": ["12345"], "--max": ["3"], "--horizon": ["120"], "--show": ["3"],
    "--seconds": ["0.2"], "--capture": ["0.2"], "--duration": ["1"], "--top-owners": ["5"], "--web-config":
    ["{tmp}/web.yml"],
    "--top-destinations": ["5"], "--samples": ["1"], "--full-every": ["10s"], "--keep": ["1h"],
    "--raw-keep": ["1h"], "--since": ["1h"], "--refresh": ["1"], "--inactivity": ["5m"], "--netns": ["tl-fuzz-none"],
    "--container": ["tl-fuzz-none"], "--pod": ["tl-fuzz-none"], "--rule": ["close-wait-leak"],
    "--preset": ["linux-orphan-fin-wait-2"], "--interface": ["lo"], "--by": ["owner"],
    "--peer": ["127.0.0.1"], "--listen": ["127.0.0.1:{port}"], "--uid": ["0"],
    "--comm": ["python3"], "--filter": ["tcp"], "rule": ["close-wait-leak"],
    "--threshold": ["close-wait-leak.warning_count=5"], "--set": ["tcp_fin_timeout=30"],
    "--vary": ["tcp_fin_timeout=30,90"], "--state": ["close-wait"], "--lang": ["zh"],
}
VALID_FOR = {("lab run", "--interval"): ["0.05"], ("exporter", "--interval"): ["1"],
             ("watch", "--interval"): ["0.2"]}
POSITIONAL_VALID = {"sim run": [], "sim sweep": [], "lab run": ["orphan-fin-wait-2"],
                    "pcap": [str(CAPTURE)], "explain": ["close-wait-leak"]}

# ---- the classes ------------------------------------------------------------------------

NUMBER_CLASSES = {
    # the number/duration grammar (model/units.py) accepts "1.", "0.5",
    # "5s", "1.m": drawn values of those forms are valid, not malformed
    # (a deep run "found" --keep 1. and --capture 0.1 accepted)
    "malformed": (["1x", "1..2", "1,5", "1e", "one", "0x1g"], st.from_regex(
        r"[0-9]{1,3}[a-z.,:]{1,2}[0-9]?", fullmatch=True).filter(lambda v: not re.fullmatch(
            r"[0-9]+(\.[0-9]*)?(w|d|h|m|min|s|ms)?", v))),
    "nan-inf": (["nan", "inf", "-inf", "Infinity"], st.sampled_from(["NaN", "+inf", "INF", "nan(1)"])),
    "negative": (["-1", "-3s", "-0.5"], st.integers(-10**6, -1).map(str)),
    "huge": (["1e308", "99999999999"], st.integers(10**11, 10**18).map(str)),
    "forty-digits": (["1" * 40], st.integers(10**39, 10**40 - 1).map(str)),
    "empty": ([""], st.just("")),
    "unicode": (["５秒", "\u200b5", "１"], st.text(min_size=1, max_size=4).filter(lambda s: "\0" not in s)),
    # widened after issue 13's list: each found a traceback or a hang somewhere
    "zero": (["0", "0s", "-0", "0.0"], st.sampled_from(["0", "0ms"])),
    "tiny": (["1e-9", "0.0000001", "1e-400", "1ns"], st.sampled_from(["1e-9", "1e-7"])),
    "spaces": ([" 5", "5\n", "\t", "5 s"], st.sampled_from([" 5", "5 "])),
    "long": (["9" * 5000, "1" + "0" * 400 + "s"], st.sampled_from(["9" * 5000])),
    "bytes": (["\udcff", "5\udcff"], st.sampled_from(["\udcff"])),  # argv not UTF-8
}
NAME_CLASSES = {
    "empty": ([""], st.just("")),
    "unicode": (["é", "中文", "🙂"], st.text(min_size=1, max_size=6).filter(lambda s: "\0" not in s and not s.startswith("-"))),
    "odd-names": (["..", "a/b", "x" * 300, " ", "tl\nx"], st.sampled_from([".", "../etc", "/run/netns/x", "x" * 256])),
    "long": (["x" * 5000], st.sampled_from(["x" * 5000])),
    "control": (["\x1b[31m", "a\tb", "\r", "-x"], st.sampled_from(["\x1b[31m", "\x7f"])),
    "bytes": (["\udcff", "tl-\udcff"], st.sampled_from(["\udcff"])),  # argv not UTF-8
}
KV_CLASSES = {
    "nan-inf": (["{k}=nan", "{k}=inf"], st.sampled_from(["{k}=-inf", "{k}=NaN"])),
    "negative": (["{k}=-1"], st.integers(-10**6, -1).map(lambda i: f"{{k}}={i}")),
    "forty-digits": (["{k}=" + "1" * 40], st.integers(10**39, 10**40 - 1).map(lambda i: f"{{k}}={i}")),
    "empty": (["", "{k}="], st.just("=")),
    "malformed": (["{k}", "=5", "{k}=1x", "nokey.x=1"], st.from_regex(r"[a-z]{1,5}=?[0-9x]{0,3}", fullmatch=True)),
    "zero": (["{k}=0"], st.just("{k}=0")),
    "long": (["{k}=" + "9" * 5000, "{k}=1e-400"], st.just("{k}=1e-400")),
    "bytes": (["{k}=\udcff", "\udcff=1"], st.just("{k}=\udcff")),
}
FILE_CLASSES = {
    "missing": (["{tmp}/missing/none.x", "{tmp}/none.x"], None),
    "corrupt": (["{tmp}/corrupt.bin", "{tmp}/truncated.db"], None),
    "wrong-kind": (["{tmp}/precious.txt", "{tmp}/foreign.db", "{tmp}/foreign.json"], None),
    "directory": (["{tmp}/dir"], None),
    # a private null device: an atomic writer renaming over it must not destroy /dev/null
    # (`check --state /dev/null` as root did: issue 13)
    "devnull": (["{tmp}/null"], None),
    "read-only": (["{ro}/x"], None),
    "empty": ([""], None),
    "unicode": (["{tmp}/é中🙂.x"], None),
    "bytes": (["{tmp}/\udcff.x"], None),
    "long": (["{tmp}/" + "x" * 300, "{tmp}/" + "d/" * 3000 + "x"], None),
    "fifo": (["{tmp}/fifo"], None),  # `pcap FIFO` waited for a writer forever
    "symlink-loop": (["{tmp}/loop"], None),
}
REFUSE = {"malformed", "nan-inf", "negative", "forty-digits", "empty", "odd-names"}
READ_REFUSE = {"missing", "corrupt", "wrong-kind", "directory", "devnull", "read-only", "empty", "fifo",
               "symlink-loop"}
WRITE_REFUSE = {"directory", "read-only", "empty", "fifo", "symlink-loop"}
DIR_REFUSE = {"corrupt", "wrong-kind", "devnull", "read-only", "empty", "fifo", "symlink-loop"}  # --textfile DIR


@dataclass(frozen=True)
class Item:
    command: str  # "ls", "sim run"
    option: str  # "--port", or a positional's dest
    cls: str

    @property
    def id(self) -> str:
        return f"{self.command.replace(' ', '-')}:{self.option}:{self.cls}"


def _parsers():
    for c in COMMANDS:
        top = build_parser(c.name)
        sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[c.name]
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            yield from ((f"{c.name} {n}", p) for n, p in nested[0].choices.items())
        else:
            yield c.name, parser


def _classes(command: str, option: str) -> dict:
    if option == "files" or (command.startswith("sim ") and option == "scenario"):
        return FILE_CLASSES
    if option in KEYVALUE:
        return KV_CLASSES
    if option in NUMBER:
        return NUMBER_CLASSES
    if (command, option) in STATES or option in NAME or option == "--lang":
        return NAME_CLASSES
    # an option this table does not know yet: by the type its parser converts to
    kind = TYPES.get((command, option), "")
    if kind in PATH_TYPES:
        return FILE_CLASSES
    return NAME_CLASSES if kind in ("", "str") else NUMBER_CLASSES


#: (command, option) -> the name of the parser's type function ("" for none)
TYPES: dict[tuple[str, str], str] = {}
#: the parser's types that take a file name (cli/options.py)
PATH_TYPES = {"Path", "input_file", "output_file", "directory"}


def items() -> list[Item]:
    out = []
    for command, parser in _parsers():
        if command == "lab clean":
            continue  # never: it removes namespaces by pattern (COORD.md)
        for a in parser._actions:
            if a.nargs == 0 or isinstance(a, argparse._HelpAction):
                continue
            option = a.option_strings[0] if a.option_strings else a.dest
            if option in NEVER:
                continue
            TYPES[command, option] = getattr(a.type, "__name__", "") if a.type else ""
            for cls in [*_classes(command, option), "valid"]:
                out.append(Item(command, option, cls))
        # the global option anywhere on the line (issue 13): after the command's own
        if "--lang" not in parser._option_string_actions:
            out += [Item(command, "--lang", cls) for cls in ("empty", "unicode", "valid")]
    return out


def _valid(item: Item) -> list[str]:
    if (item.command, item.option) in VALID_FOR:
        return VALID_FOR[item.command, item.option]
    if item.option in VALID and (item.command, item.option) not in (("check", "--state"),):
        return VALID[item.option]
    if not item.option.startswith("-"):
        return VALID.get(item.option) or POSITIONAL_VALID.get(item.command, [])[:1] or \
            ["{tmp}/none.toml"]
    role = file_role(item)
    if role == "read":
        return {"--db": ["{tmp}/watch.db"], "--web-config": ["{tmp}/none.yml"]}.get(
            item.option, ["{tmp}/none.x"])
    return ["{tmp}/new.out"]


READ = {"--db", "--web-config", "files", "scenario"}  # read when given (watch's --db: STATE)
UNUSED = {"--audit-log", "--state-file"}  # read or written only with --yes / --revert


def file_role(item: Item) -> str:
    if (item.command, item.option) in STATE:
        return "state"
    if item.option in WRITES:
        return "write"
    if item.option in UNUSED:
        return "unused"
    return "read"
