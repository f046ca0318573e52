"""Layers point one way (DESIGN.md): model imports nothing of tcplinger;
collect and track import only model; diagnose/track/sim/model do no I/O
imports."""

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
    "ui": {"model", "track", "diagnose", "ui", "i18n", "sim", "lab", "wire"},
    "export": {"model", "track", "diagnose", "export", "i18n", "fsutil"},
    # act plans purely (its own test checks the planning modules) and
    # executes through collect (SOCK_DESTROY, sysctl writes)
    "act": {"model", "track", "diagnose", "act", "collect", "i18n", "fsutil"},
}
PURE = {"model", "track", "diagnose", "sim", "wire"}
IO_MODULES = {"socket", "subprocess", "ctypes", "urllib", "http", "sqlite3"}
#: Names of I/O modules that are pure functions.
PURE_NAMES = {"socket": {"inet_ntop", "inet_pton", "AF_INET", "AF_INET6"}}
#: Modules of a pure layer allowed one I/O module: the watch database.
IO_EXCEPTIONS = {"track/store.py": {"sqlite3"}}


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
