"""Both catalogs are complete: same keys, same placeholders, no empty text."""

import json
import os
import re
import string
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tcplinger import marshal_file
from tcplinger.i18n import LANGS, Messages, catalog, lang_from_env, load_catalog


def _fields(text):
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_same_keys():
    en, zh = catalog("en"), catalog("zh")
    assert set(en) - set(zh) == set(), "missing in zh"
    assert set(zh) - set(en) == set(), "missing in en"


@pytest.mark.parametrize("lang", LANGS)
def test_no_empty_messages(lang):
    assert all(v.strip() for v in catalog(lang).values())


def test_same_placeholders():
    en, zh = catalog("en"), catalog("zh")
    bad = {k for k in en if _fields(en[k]) != _fields(zh[k])}
    assert not bad


def test_zh_is_translated():
    en, zh = catalog("en"), catalog("zh")
    same = [k for k in en if en[k] == zh[k] and any(c.isalpha() for c in en[k])
            and en[k] not in ("PID",)]
    assert not same


def test_lookup_formats():
    assert Messages("en")("ls.footer", n=3) == "3 sockets."
    assert Messages("zh")("ls.footer", n=3) == "共 3 个套接字。"


# POSIX (XBD 8.2, "Internationalization Variables"): LC_ALL, when set and
# not empty, overrides every LC_* and LANG; LC_MESSAGES (the category of
# messages) overrides LANG; LANG is the default. The README says LC_ALL wins.
@pytest.mark.parametrize("env,lang", [
    ({"LC_ALL": "C", "LC_MESSAGES": "zh_CN.UTF-8", "LANG": "zh_CN.UTF-8"}, "en"),
    ({"LC_ALL": "zh_CN.UTF-8", "LC_MESSAGES": "C", "LANG": "en_US.UTF-8"}, "zh"),
    ({"LC_MESSAGES": "zh_TW.UTF-8", "LANG": "C"}, "zh"),
    ({"LC_MESSAGES": "C", "LANG": "zh_CN.UTF-8"}, "en"),
    ({"LANG": "zh_CN.UTF-8"}, "zh"),
    ({"LC_ALL": "", "LANG": "zh_CN.UTF-8"}, "zh"),  # empty is unset
    ({"LC_ALL": "", "LC_MESSAGES": "", "LANG": ""}, "en"),
    ({}, "en"),
])
def test_locale_variables_in_posix_precedence(env, lang):
    assert lang_from_env(env) == lang


def test_lc_all_wins_end_to_end(cli):
    """The precedence seen by a user: LC_ALL=C over LANG=zh gives English."""
    _, _, err = cli("ls", "--port", "x", env={"LC_ALL": "C", "LANG": "zh_CN.UTF-8"})
    assert "invalid port 'x'" in err
    _, _, err = cli("ls", "--port", "x", env={"LC_ALL": "zh_CN.UTF-8", "LANG": "C"})
    assert "无效的端口 'x'" in err


# ---- plural forms (issue 15, item 6): "1 sockets", "1 have" --------------------------

#: the nouns the catalogs count and the verbs that agree with a count
PLURALS = ("sockets namespaces findings changes values ports pages files expectations polls "
           "events records connections groups retransmissions orphans minisockets warnings "
           "points samples packets keepalives times probes segments processes entries "
           "instances").split()
AGREEING = ("have", "are", "were")
COUNTED = re.compile(r"\b1((?: [\w-]+){0,3}?) (" + "|".join(PLURALS + list(AGREEING)) + r")\b")


def _counted_wrongly(text):
    """Places where the number 1 is followed by a plural noun or verb
    (at most three words between, none of them "of", "per"...: "1 of these
    sockets" is right)."""
    return [m.group(0) for m in COUNTED.finditer(text)
            if not set(m.group(1).split()) & {"of", "per", "than", "in", "at", "for", "to",
                                              "and", "or", "from", "every", "each", "after"}
            and not text[:m.start()].endswith(("of ", "= ", ".."))]


#: fields that are no count (names, paths, a rate, a range's end)
NOT_COUNTS = {"path", "who", "netns", "server", "phase", "tag", "rate", "sender", "side", "src",
              "dest", "program", "name", "comm", "most"}


def test_every_english_count_agrees_with_one():
    """Each en message rendered with one numeric field at 1 (the others at
    2) says "1 socket", "1 has", never "1 sockets", "1 have"."""
    msg = Messages("en")
    bad = {}
    for key, text in catalog("en").items():
        fields = _fields(text)
        for f in fields - NOT_COUNTS:
            try:
                out = msg(key, **{g: 1 if g == f else 2 for g in fields})
            except (ValueError, TypeError):
                continue  # a field that takes no number
            if _counted_wrongly(out) and f"{{{f}}}" in text:
                bad[key, f] = out
    assert not bad


@pytest.mark.parametrize("key,fields,one,two", [
    ("ls.footer", {}, "1 socket.", "2 sockets."),
    ("report.findings", {}, "1 finding:", "2 findings:"),
    ("report.overview", {"sockets": 1, "shown": "x"},
     "1 namespace, 1 TCP socket. With lingering sockets or findings: x",
     "2 namespaces, 1 TCP socket. With lingering sockets or findings: x"),
    ("rule.close-wait-leak.fact.eof_unread", {},
     "1 has Recv-Q 1: the peer's FIN", "2 have Recv-Q 1: the peer's FIN"),
    ("kill.head.act", {}, "Ending 1 socket:", "Ending 2 sockets:"),
    ("stats.more_owners", {}, "... and 1 more process.", "... and 2 more processes."),
    ("rule.common.other_end_unowned", {"state": "FIN_WAIT2", "netns": "x"},
     "1 of the other ends is visible", "2 of the other ends are visible"),
    ("rule.common.young", {"min_age": "10s"}, "This one is not known to be 10s old",
     "None of these 2 is known to be 10s old"),
])
def test_english_plural_forms(key, fields, one, two):
    en, zh = Messages("en"), Messages("zh")
    assert (en(key, n=1, **fields) + ".").startswith(one)
    assert (en(key, n=2, **fields) + ".").startswith(two)
    # Chinese has one form: the same text but the number
    assert zh(key, n=1, **fields).replace("1", "2", 1) == zh(key, n=2, **fields)


# The compiled catalog cache (i18n.load_catalog): valid only for the .toml
# files it was made from, whatever their mtimes say.

def _write(path, text, mtime_ns=None):
    path.write_text(text, encoding="utf-8")
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def test_catalog_cache_is_written_and_read(tmp_path):
    folder, cache = tmp_path / "en", tmp_path / "__pycache__"
    folder.mkdir()
    _write(folder / "core.toml", 'a = "one"\n')
    assert load_catalog(folder, cache) == {"a": "one"}
    (written,) = cache.iterdir()
    # what is read back is the cache's: a cache with the sources' key but
    # other messages is believed (proves the second load does not parse)
    key, _messages = marshal_file.read(written)
    marshal_file.write(written, (key, {"a": "from the cache"}))
    assert load_catalog(folder, cache) == {"a": "from the cache"}


def test_a_corrupt_catalog_cache_is_parsed_again(tmp_path):
    """A byte changed inside a message of the cache: marshal still reads
    it (the key intact), so without marshal_file's CRC the garbled text
    was believed and shown; now the catalog is parsed again and the file
    written again whole."""
    folder, cache = tmp_path / "en", tmp_path / "__pycache__"
    folder.mkdir()
    _write(folder / "core.toml", 'a = "the socket is in CLOSE_WAIT"\n')
    load_catalog(folder, cache)
    (written,) = cache.iterdir()
    good = written.read_bytes()
    at = good.index(b"CLOSE_WAIT")
    written.write_bytes(good[:at] + b"X" + good[at + 1:])
    assert load_catalog(folder, cache) == {"a": "the socket is in CLOSE_WAIT"}
    assert written.read_bytes() == good


def test_catalog_cache_follows_an_edit_of_the_same_size_and_mtime(tmp_path):
    folder, cache = tmp_path / "en", tmp_path / "__pycache__"
    folder.mkdir()
    _write(folder / "core.toml", 'a = "one"\n', mtime_ns=10**18)
    assert load_catalog(folder, cache) == {"a": "one"}
    _write(folder / "core.toml", 'a = "two"\n', mtime_ns=10**18)  # same size, same mtime
    assert load_catalog(folder, cache) == {"a": "two"}


def test_catalog_cache_follows_added_and_removed_files(tmp_path):
    folder, cache = tmp_path / "en", tmp_path / "__pycache__"
    folder.mkdir()
    _write(folder / "core.toml", 'a = "one"\n')
    assert load_catalog(folder, cache) == {"a": "one"}
    _write(folder / "rules.toml", 'b = "two"\n')
    assert load_catalog(folder, cache) == {"a": "one", "b": "two"}
    (folder / "core.toml").unlink()
    assert load_catalog(folder, cache) == {"b": "two"}


def test_catalog_cache_not_written_when_told_and_garbage_ignored(tmp_path):
    folder, cache = tmp_path / "en", tmp_path / "__pycache__"
    folder.mkdir()
    _write(folder / "core.toml", 'a = "one"\n')
    assert load_catalog(folder, cache, write=False) == {"a": "one"}
    assert not cache.exists()  # PYTHONDONTWRITEBYTECODE: nothing beside the package
    cache.mkdir()
    (cache / f"catalog-en.{sys.implementation.cache_tag}.marshal").write_bytes(b"\x00garbage")
    assert load_catalog(folder, cache) == {"a": "one"}


def test_catalog_cache_keeps_the_duplicate_check(tmp_path):
    folder, cache = tmp_path / "en", tmp_path / "__pycache__"
    folder.mkdir()
    _write(folder / "a.toml", 'x = "one"\n')
    _write(folder / "b.toml", 'x = "two"\n')
    with pytest.raises(ValueError, match="defined twice"):
        load_catalog(folder, cache)


ZIP_PROBE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from tcplinger import i18n
print(json.dumps({"file": i18n.__file__, "en": i18n.catalog("en"), "zh": i18n.catalog("zh")}))
"""


def test_catalogs_of_a_zipped_package(tmp_path):
    """A package imported from a zip finds its catalogs through
    importlib.resources (imported only then: i18n.catalog), the same
    messages as the files beside the module."""
    src = Path(__file__).resolve().parents[2] / "src"
    with zipfile.ZipFile(tmp_path / "tl.zip", "w") as z:
        for path in (src / "tcplinger").rglob("*"):
            if path.suffix in (".py", ".toml") and "__pycache__" not in path.parts:
                z.write(path, path.relative_to(src))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", ZIP_PROBE, str(tmp_path / "tl.zip")],
                         capture_output=True, text=True, env=env, timeout=60, check=True)
    doc = json.loads(out.stdout)
    assert doc["file"].startswith(str(tmp_path / "tl.zip"))
    assert doc["en"] == catalog("en") and doc["zh"] == catalog("zh")
