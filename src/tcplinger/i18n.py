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
import tomllib
from functools import lru_cache
from importlib import resources

from .model.plural import fill

LANGS = ("en", "zh")


@lru_cache(maxsize=None)
def catalog(lang: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    folder = resources.files("tcplinger.messages").joinpath(lang)
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            for key, value in tomllib.loads(entry.read_text("utf-8")).items():
                if key in merged:
                    raise ValueError(f"message {key!r} defined twice ({lang}/{entry.name})")
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
