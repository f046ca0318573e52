"""Both catalogs are complete: same keys, same placeholders, no empty text."""

import string

import pytest

from tcplinger.i18n import LANGS, Messages, catalog


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
