"""Both catalogs are complete: same keys, same placeholders, no empty text."""

import string

import pytest

from tcplinger.i18n import LANGS, Messages, catalog, lang_from_env


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
