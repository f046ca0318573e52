"""The compiled code of the methods ``dataclasses`` writes, kept across starts.

``@dataclass`` writes the source text of each class's ``__init__``,
``__repr__``, ``__eq__``, ``__hash__`` (and, frozen, ``__setattr__`` and
``__delattr__``) and compiles it with ``exec`` when the class is created,
at import: ~1 ms of CPU a class on Python 3.11, of which ~0.8 ms is the
compiling. A ``tcplinger report`` creates ~60 classes, ``stats`` ~30:
0.05-0.06 s of the report's start (issue 16).

While :func:`cached` is active, the ``exec`` that module calls compiles
each distinct text once per installation: the code objects are kept,
marshalled as a .pyc keeps them, in the package's ``__pycache__``, keyed by
the whole text, so a class whose fields changed gets its own new entry and
an entry can never run for another text. The classes made are the same:
the same text is compiled, with the same file name (``<string>``), and run
in the same namespaces. Like the catalogs' cache (i18n.py), the file is
written only where .pyc files would be (not under PYTHONDONTWRITEBYTECODE,
not in a read-only install), and a missing, unreadable or foreign file
only means compiling, as without it. The file is checked (the
interpreter's exact version and a CRC-32: marshal_file.py) before any code
object in it can run, and only text -> code entries are kept.

Only ``dataclasses``' own calls go through it (a name in that module's
globals shadows the builtin there alone; Python 3.10-3.13 call
``exec(text, globals, namespace)``), and only while the CLI loads a command's modules
(cli/main.py): a program that imports tcplinger as a library is not
touched.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import sys
from pathlib import Path
from types import CodeType

from . import marshal_file

#: Entries above which a file keeps only what the last run used rather
#: than growing (edits of a checkout leave the texts of old class versions
#: behind; a report's classes make ~320 entries).
MAX_ENTRIES = 2000


def cache_file(name: str, folder: Path | None = None) -> Path:
    folder = Path(__file__).resolve().parent / "__pycache__" if folder is None else folder
    return folder / f"dataclasses-{name}.{sys.implementation.cache_tag}.marshal"


def load(path: Path) -> dict:
    """The cached code objects by source text; {} when there is no usable
    file (missing, unreadable, another interpreter's, corrupt, foreign)."""
    codes = marshal_file.read(path)
    if not isinstance(codes, dict):
        return {}
    return {k: v for k, v in codes.items() if type(k) is str and type(v) is CodeType}


@contextlib.contextmanager
def cached(name: str, folder: Path | None = None, *, write: bool | None = None):
    """``dataclasses`` compiles through the cache ``name`` (one per
    command: each reads only its own classes' code, ~0.3 MB for the
    report, where all commands' make 1 MB and ~5 ms to read) in ``folder``
    (default: the package's ``__pycache__``) while the block runs; new
    entries are written after it when ``write`` (default: unless
    PYTHONDONTWRITEBYTECODE)."""
    path = cache_file(name, folder)
    codes: dict = {}
    used: set[str] = set()
    loaded = -1  # entries read from the file (-1: not read yet)

    def exec_(source, globals=None, locals=None, /):
        nonlocal loaded
        if isinstance(source, str):
            if loaded < 0:  # at the first class: --version and --help make none
                codes.update(load(path))
                loaded = len(codes)
            used.add(source)
            code = codes.get(source)
            if code is None:
                # dont_inherit: not this module's ``from __future__ import
                # annotations`` (dataclasses' own exec has no future flags)
                code = codes[source] = compile(source, "<string>", "exec", dont_inherit=True)
            source = code
        builtins.exec(source, globals, locals)

    had = "exec" in vars(dataclasses)
    before = vars(dataclasses).get("exec")
    dataclasses.exec = exec_
    try:
        yield codes
    finally:
        if had:
            dataclasses.exec = before
        else:
            del dataclasses.exec
        if len(codes) > max(loaded, 0) and (not sys.dont_write_bytecode if write is None
                                            else write):
            _save(path, codes if len(codes) <= MAX_ENTRIES else {k: codes[k] for k in used})


def _save(path: Path, codes: dict) -> None:
    marshal_file.write(path, codes)  # a read-only install: compile at every start
