"""dataclass_cache: the methods ``dataclasses`` writes are compiled once per
installation, not at every start (issue 16: ~1 ms of CPU a class, ~60
classes in a report's start), and the classes made are the same."""

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tcplinger import dataclass_cache, marshal_file

SRC = Path(__file__).resolve().parents[2] / "src"


def make_classes():
    @dataclass(frozen=True)
    class Point:
        x: int
        y: int = 0
        tags: tuple = field(default_factory=tuple)

    @dataclass(order=True)
    class Item:
        name: str
        n: int = 1

    return Point, Item


METHODS = ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__", "__lt__",
           "__ge__")


def generated(cls) -> dict:
    """The generated methods' code and annotations (a compile that took
    this file's ``from __future__ import annotations`` would make them
    strings)."""
    out = {}
    for name in METHODS:
        method = getattr(cls, name)
        code = getattr(method, "__code__", None)
        if code is not None:
            out[name] = (code, code.co_filename, code.co_flags, repr(method.__annotations__))
    return out


def test_classes_made_through_the_cache_are_the_same(tmp_path):
    plain = make_classes()
    with dataclass_cache.cached("test", tmp_path, write=True) as codes:
        first = make_classes()  # compiled, then written
    assert len(codes) >= 8 and dataclass_cache.cache_file("test", tmp_path).exists()
    with dataclass_cache.cached("test", tmp_path, write=True) as codes:
        second = make_classes()  # from the file
    assert len(dataclass_cache.load(dataclass_cache.cache_file("test", tmp_path))) == len(codes)
    assert "exec" not in vars(dataclasses)  # the builtin again once the block ended
    for a, b, c in zip(plain, first, second):
        assert generated(a) == generated(b) == generated(c)
        assert len(generated(a)) >= 4
    for Point, Item in (plain, first, second):
        p = Point(1, tags=(2,))
        assert (p, repr(p), hash(p) == hash(Point(1, 0, (2,)))) == \
            (Point(1, 0, (2,)), f"{Point.__qualname__}(x=1, y=0, tags=(2,))", True)
        with pytest.raises(dataclasses.FrozenInstanceError):
            p.x = 3
        assert Item("a") < Item("b") and Item("a", 2) > Item("a")


def test_no_file_written_when_asked_not_to_and_a_foreign_file_is_ignored(tmp_path):
    with dataclass_cache.cached("test", tmp_path, write=False):
        make_classes()
    assert not dataclass_cache.cache_file("test", tmp_path).exists()
    dataclass_cache.cache_file("test", tmp_path).write_bytes(b"not marshal")
    with dataclass_cache.cached("test", tmp_path, write=True):
        Point, _ = make_classes()
    assert Point(4).x == 4
    assert dataclass_cache.load(dataclass_cache.cache_file("test", tmp_path))  # rewritten whole


PROBE = r"""
import builtins, contextlib, io, json, sys
from pathlib import Path
from tcplinger import dataclass_cache
from tcplinger.cli.main import main
real = dataclass_cache.cache_file
dataclass_cache.cache_file = lambda name, folder=None: real(name, Path(sys.argv[1]))
texts = []  # dataclasses' texts compiled, by exec(text) or compile(text)
def counting(builtin):
    def call(source, *args, **kwargs):
        if isinstance(source, str) and "__create_fn__" in source:
            texts.append(source)
        return builtin(source, *args, **kwargs)
    return call
builtins.exec, builtins.compile = counting(builtins.exec), counting(builtins.compile)
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[2:])
print(json.dumps({"code": code, "compiled": len(texts)}))
"""


def compiled_in_a_start(folder: Path, *argv: str, write: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if not write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    out = subprocess.run([sys.executable, "-c", PROBE, str(folder), *argv], capture_output=True,
                         text=True, env=dict(env, PYTHONPATH=str(SRC)), timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_start_compiles_no_dataclass_method(tmp_path):
    """The first ``report`` start compiles its classes' methods (the probe
    sees them: ~50 classes, several methods each) and keeps them; the
    next one compiles none."""
    first = compiled_in_a_start(tmp_path, "report", "--help", write=True)
    assert first["code"] == 0 and first["compiled"] > 100
    again = compiled_in_a_start(tmp_path, "report", "--help", write=False)
    assert again == {"code": 0, "compiled": 0}


def _corrupt_files(path: Path) -> dict:
    """Bad contents for the cache file at ``path`` (written by a run of
    the current code first): what each would do without the checks."""
    import marshal
    import zlib

    head = marshal_file.VERSION
    good = path.read_bytes()
    payload = good[len(head) + 4:]
    texts = list(marshal.loads(payload))
    # a dict of one entry whose code object has one byte changed so that
    # marshal raises SystemError (1 in 20 random one-byte changes of a cache
    # file did): the first such change of a small code object's bytes
    code = marshal.dumps(compile("x = 1", "<string>", "exec"))
    raising = None
    for i, v in ((i, v) for i in range(len(code)) for v in range(256)):
        bad = b"{" + marshal.dumps(texts[0]) + code[:i] + bytes([v]) + code[i + 1:] + b"0"
        try:
            marshal.loads(bad)
        except SystemError:
            raising = bad
            break
        except Exception:  # noqa: BLE001 - the others were caught already
            continue
    assert raising is not None

    def signed(data: bytes) -> bytes:  # a header that checks out
        return head + zlib.crc32(data).to_bytes(4, "little") + data

    return {
        # the format before the header: one changed byte made marshal raise SystemError
        "old format, corrupt": raising,
        "truncated": good[:len(good) // 2],
        "one bit flipped": good[:-40] + bytes([good[-40] ^ 4]) + good[-39:],
        "another interpreter's": (sys.hexversion - 1).to_bytes(4, "little") + good[4:],
        # foreign entries under the right header: exec(5) raised TypeError
        "not code objects": signed(marshal.dumps({t: 5 for t in texts})),
        "source texts": signed(marshal.dumps({t: "x = 1" for t in texts})),
        "marshal raising SystemError": signed(raising),
        "a list": signed(marshal.dumps([1, 2])),
        "empty": b"",
    }


def test_a_bad_cache_file_only_means_compiling(tmp_path):
    """A corrupt, truncated, foreign or other interpreter's file: the
    classes are compiled (and the same), the file written again whole;
    before, some of these raised SystemError or TypeError at every start
    (a traceback of every command until the file was removed)."""
    with dataclass_cache.cached("test", tmp_path, write=True):
        make_classes()
    path = dataclass_cache.cache_file("test", tmp_path)
    good = path.read_bytes()
    n = len(dataclass_cache.load(path))
    assert n >= 8
    for what, data in _corrupt_files(path).items():
        path.write_bytes(data)
        assert dataclass_cache.load(path) == {}, what
        with dataclass_cache.cached("test", tmp_path, write=True) as codes:
            Point, Item = make_classes()
        assert Point(1, 2) == Point(1, 2) and repr(Item("a")) .endswith("Item(name='a', n=1)")
        assert len(codes) == n and path.read_bytes() == good, what


def test_a_start_with_a_bad_cache_file(tmp_path):
    """The CLI's own start (``stats --help``) over each bad file: exit 0."""
    first = compiled_in_a_start(tmp_path, "stats", "--help", write=True)
    assert first["code"] == 0 and first["compiled"] > 50
    path = dataclass_cache.cache_file("stats", tmp_path)
    for what, data in _corrupt_files(path).items():
        path.write_bytes(data)
        assert compiled_in_a_start(tmp_path, "stats", "--help", write=False) == \
            {"code": 0, "compiled": first["compiled"]}, what
