"""Layers point one way (DESIGN.md): model imports nothing of tcplinger;
collect and track import only model; diagnose/track/sim/model do no I/O
imports; the application layer (app/) is called by the front ends and
calls the layers below; a CLI command never imports another command; the
lab never imports the CLI nor app/; the CLI reaches the simulator and the
lab through app/ only."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "tcplinger"

ALLOWED = {
    "model": {"model"},
    "collect": {"model", "collect"},
    "track": {"model", "track"},
    "diagnose": {"model", "track", "diagnose", "i18n"},
    "sim": {"model", "sim"},
    "wire": {"model", "wire"},
    # renderers only: neither the simulator nor the lab (what both draw,
    # timelines, is model/timeline.py)
    "ui": {"model", "track", "diagnose", "ui", "i18n", "wire"},
    "export": {"model", "track", "diagnose", "export", "i18n", "fsutil"},
    # act plans purely (its own test checks the planning modules) and
    # executes through collect (SOCK_DESTROY, sysctl writes)
    "act": {"model", "track", "diagnose", "act", "collect", "i18n", "fsutil"},
    # use cases composed once; never a front end (cli); it is the front ends'
    # one way to the simulator
    "app": {"model", "collect", "track", "diagnose", "wire", "act", "export", "ui", "app",
            "sim", "lab", "i18n", "fsutil"},
    # real namespaces, peers, recorder and captures; never the CLI nor app/
    # (app/lab.py runs it and hands it its diagnosis, app/lab_diagnosis.py);
    # it reads its captures with wire/ (the one packet reader and analyser)
    "lab": {"model", "collect", "track", "diagnose", "act", "sim", "lab", "i18n",
            "fsutil", "wire"},
}
PURE = {"model", "track", "diagnose", "sim", "wire"}
IO_MODULES = {"socket", "subprocess", "ctypes", "urllib", "http", "sqlite3"}
#: Names of I/O modules that are pure functions.
PURE_NAMES = {"socket": {"inet_ntop", "inet_pton", "AF_INET", "AF_INET6"}}
#: Modules of a pure layer allowed one I/O module: the watch database (its file, its tables).
IO_EXCEPTIONS = {"track/store.py": {"sqlite3"}, "track/dbfile.py": {"sqlite3"}}


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    pkg = path.relative_to(SRC).parts
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(pkg[:-node.level]) if node.level <= len(pkg) - 1 else []
                mod = (base + (node.module.split(".") if node.module else []))
                yield "tcplinger." + ".".join(mod) if mod else "tcplinger"
            elif node.module:
                pure = PURE_NAMES.get(node.module, set())
                if not all(a.name in pure for a in node.names):
                    yield node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name


def _layer_files():
    for layer in ALLOWED:
        for path in sorted((SRC / layer).rglob("*.py")):
            yield layer, path


@pytest.mark.parametrize("layer,path", list(_layer_files()),
                         ids=lambda v: str(v.relative_to(SRC)) if isinstance(v, Path) else v)
def test_layer_imports(layer, path):
    for name in _imports(path):
        if name.startswith("tcplinger."):
            target = name.split(".")[1]
            assert target in ALLOWED[layer], f"{path.name} imports {name}"
        elif layer in PURE:
            root = name.split(".")[0]
            if root in IO_EXCEPTIONS.get(path.relative_to(SRC).as_posix(), ()):
                continue
            assert root not in IO_MODULES, f"{path.name} imports {name} (I/O in a pure layer)"


def _modules(text: str, parts: tuple[str, ...]):
    """Every module the import statements of ``text`` (the file at
    ``parts`` under src/tcplinger) may name, as dotted names: ``from .
    import report`` in cli/commands names tcplinger.cli.commands.report."""
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom):
            base = ["tcplinger", *parts[:-node.level]] if node.level else []
            mod = base + (node.module.split(".") if node.module else [])
            yield ".".join(mod)
            for alias in node.names:
                yield ".".join(mod + [alias.name])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name


COMMANDS = sorted(p for p in (SRC / "cli" / "commands").glob("*.py") if p.name != "__init__.py")


def _command_imports(path: Path, text: str | None = None) -> list[str]:
    """Other commands' modules that the command at ``path`` imports."""
    text = path.read_text() if text is None else text
    return [name for name in _modules(text, path.relative_to(SRC).parts)
            if name.startswith("tcplinger.cli.commands.") and name.split(".")[3] != path.stem]


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: p.name)
def test_commands_never_import_another_command(path):
    """What two commands share lives in app/ (or cli/options.py, cli/output.py)."""
    assert _command_imports(path) == []


def test_command_imports_are_seen_in_every_form():
    """The check above would pass vacuously if it missed one of these forms."""
    path = SRC / "cli" / "commands" / "history.py"
    text = ("from . import report\nfrom .watch import _duration\n"
            "import tcplinger.cli.commands.kill\nfrom ..options import add_scope\n"
            "from .history import x\n")
    assert _command_imports(path, text) == [
        "tcplinger.cli.commands.report", "tcplinger.cli.commands.watch",
        "tcplinger.cli.commands.watch._duration", "tcplinger.cli.commands.kill"]


CLI_FILES = sorted((SRC / "cli").rglob("*.py"))


def _below_app(path: Path, text: str | None = None) -> list[str]:
    """What the CLI file at ``path`` imports of sim/ or lab/."""
    text = path.read_text() if text is None else text
    return [n for n in _modules(text, path.relative_to(SRC).parts)
            if n.split(".")[:2] in (["tcplinger", "sim"], ["tcplinger", "lab"])]


@pytest.mark.parametrize("path", CLI_FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_the_cli_reaches_the_simulator_and_the_lab_through_app(path):
    """``sim`` and ``lab`` parse, call app/simulation.py and app/lab.py,
    render: loading a scenario, running it, diagnosing a lab run and
    cleaning up are composed there, once."""
    assert _below_app(path) == []


def test_a_cli_import_of_the_simulator_or_the_lab_is_seen():
    path = SRC / "cli" / "commands" / "sim.py"
    text = ("from ...sim import presets\nfrom ...app.simulation import predict\n"
            "import tcplinger.lab.runner\n")
    assert _below_app(path, text) == ["tcplinger.sim", "tcplinger.sim.presets",
                                      "tcplinger.lab.runner"]
