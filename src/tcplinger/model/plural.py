"""English plurals in message texts: ``{n:socket|sockets}``.

A field whose format spec holds a ``|`` is replaced by the form that goes
with its number: ``one|other``, one for exactly 1 (CLDR's rule for
English cardinals); the number itself is the plain ``{n}`` beside it. The
catalogs (i18n.py) and the English texts collect/ builds (its Notices)
fill their texts here, so both agree.
"""

from __future__ import annotations

import string


class _PluralFormatter(string.Formatter):
    """str.format, and ``{n:one|other}`` for the form that goes with n."""

    def format_field(self, value, format_spec):
        if "|" in format_spec:
            one, _, other = format_spec.partition("|")
            return one if value == 1 else other
        return super().format_field(value, format_spec)


_PLURAL = _PluralFormatter()


def fill(text: str, fields: dict) -> str:
    """``text.format(**fields)``, with plural specs.

    >>> [fill("{n} {n:socket|sockets}, {k} {k:has|have}", {"n": n, "k": n}) for n in (0, 1, 2)]
    ['0 sockets, 0 have', '1 socket, 1 has', '2 sockets, 2 have']
    """
    return _PLURAL.vformat(text, (), fields) if "|" in text else text.format(**fields)
