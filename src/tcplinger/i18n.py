"""Message catalogs: every sentence a user reads, in English and Chinese.

Catalogs are TOML files in ``tcplinger/messages/<lang>/*.toml`` (one file
per area: core, rules, lab, sim...), flat ``key = "text with {placeholders}"``.
Code asks for a key; a test checks both languages hold the same keys and
placeholders.

Plurals: a field whose format spec holds a ``|`` is replaced by the form
for its number, ``one|other`` in English (one for exactly 1, as CLDR's
English rule): ``"{n} {n:socket|sockets}"``. The number itself is written
by the plain ``{n}`` beside it. Chinese has no plural: zh texts keep one
form and need no spec.
"""

from __future__ import annotations

import os
import sys
import zlib
from functools import lru_cache
from pathlib import Path

from . import marshal_file
from .model.plural import fill

LANGS = ("en", "zh")


#: The catalogs of a package installed as files (what
#: ``importlib.resources.files("tcplinger.messages")`` gives for one).
MESSAGES = Path(__file__).parent / "messages"


@lru_cache(maxsize=None)
def catalog(lang: str) -> dict[str, str]:
    folder = MESSAGES / lang
    if folder.is_dir():  # installed as files (not zipped): the compiled cache
        return load_catalog(folder, folder.parent / "__pycache__",
                            write=not sys.dont_write_bytecode)
    # Only for a zipped package: importlib.resources imports pathlib's
    # neighbours tempfile, zipfile, shutil, random, bz2 and lzma, ~9 ms of
    # CPU that every start paid on a host without them loaded (issue 16).
    from importlib import resources

    folder = resources.files("tcplinger.messages").joinpath(lang)
    return _parse(sorted((e.name, e.read_bytes()) for e in folder.iterdir()
                         if e.name.endswith(".toml")), lang)


def load_catalog(folder: Path, cache_dir: Path, *, write: bool = True) -> dict[str, str]:
    """The messages of ``folder``'s ``*.toml`` files, from the compiled
    cache in ``cache_dir`` while it was made from the same files.

    Why a cache: tomllib parses the ~1,100 messages of a language in about
    40 ms of CPU at every start (measured for issue 16), marshal reads
    them back in under 1 ms.  Like a .pyc (PEP 3147), the cache is written
    beside the package, unless PYTHONDONTWRITEBYTECODE (``write``) or the
    directory's permissions say no, and it is valid only for the sources
    it was made from: their names, sizes and CRC-32s are its key (the
    files are read either way; reading and summing them costs ~0.3 ms), so
    an edited, added or removed .toml is parsed again, whatever its mtime.
    """
    sources = sorted((p.name, p.read_bytes()) for p in folder.iterdir()
                     if p.name.endswith(".toml"))
    key = [(name, len(data), zlib.crc32(data)) for name, data in sources]
    cache = cache_dir / f"catalog-{folder.name}.{sys.implementation.cache_tag}.marshal"
    cached = marshal_file.read(cache)  # None: no cache yet, or not one to believe
    if isinstance(cached, tuple) and len(cached) == 2 and cached[0] == key \
            and isinstance(cached[1], dict):
        return cached[1]
    messages = _parse(sources, folder.name)
    if write:  # not in a read-only install: parse at every start, as before
        marshal_file.write(cache, (key, messages))
    return messages


def _parse(sources: list[tuple[str, bytes]], lang: str) -> dict[str, str]:
    import tomllib  # only without a valid cache (its import is ~5 ms)

    merged: dict[str, str] = {}
    for name, data in sources:
        for key, value in tomllib.loads(data.decode("utf-8")).items():
            if key in merged:
                raise ValueError(f"message {key!r} defined twice ({lang}/{name})")
            merged[key] = value
    return merged


def lang_from_env(env=None) -> str:
    """``zh`` when LC_ALL / LC_MESSAGES / LANG start with zh, else ``en``.

    >>> lang_from_env({"LANG": "zh_CN.UTF-8"}), lang_from_env({"LC_ALL": "C"})
    ('zh', 'en')
    """
    env = os.environ if env is None else env
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(var)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


class Messages:
    """``msg("key", n=3)`` -> the text in the chosen language."""

    def __init__(self, lang: str = "en"):
        if lang not in LANGS:
            raise ValueError(lang)
        self.lang = lang
        self._cat = catalog(lang)
        self._en = catalog("en")

    def __call__(self, key: str, /, **fields) -> str:  # a field may be named "key"
        text = self._cat.get(key) or self._en[key]
        if not fields:
            return text
        return fill(text, fields)
