"""A warning that is English text and a catalog key at once."""

from __future__ import annotations

from .plural import fill


class Notice(str):
    """A warning: the English text (what the model stores and ``--json``
    shows) that also carries a stable ``key`` and its ``fields``, from
    which the CLI renders it in the user's language (catalog keys
    ``notice.<key>``; collect/ does not import the i18n layer).

    >>> n = Notice("vanished", "vanished while being read")
    >>> n == "vanished while being read", n.key, n.fields
    (True, 'vanished', {})
    >>> Notice("read_via_pid", "read through /proc/{pid}/net", pid=7)
    'read through /proc/7/net'
    """

    key: str
    fields: dict

    def __new__(cls, key: str, english: str, **fields) -> "Notice":
        # plain values only: the fields go into JSON documents as they are
        fields = {k: v if isinstance(v, (int, float)) else str(v) for k, v in fields.items()}
        self = super().__new__(cls, fill(english, fields))
        self.key = key
        self.fields = fields
        return self

    def __reduce__(self):  # copy/pickle: str.__reduce__ would call __new__(cls, text)
        return _notice, (self.key, str(self), self.fields)


def _notice(key: str, text: str, fields: dict) -> Notice:
    n = Notice(key, "{text}", text=text)
    n.fields = fields
    return n


def notice_text(text: str, msg) -> str:
    """``text`` in ``msg``'s language: a Notice by its key (``notice.<key>``
    in the catalogs), any other (plain English) text as it is.

    >>> notice_text(Notice("vanished", "vanished while being read"), lambda k, **f: k)
    'notice.vanished'
    >>> notice_text("plain", lambda k, **f: k)
    'plain'
    """
    key = getattr(text, "key", None)
    if not key:
        return str(text)
    fields = text.fields
    if fields.get("errno"):  # an OSError's strerror, said by the catalog's errno.<NAME>
        try:
            fields = {**fields, "why": msg(f"errno.{fields['errno']}")}
        except KeyError:
            pass  # an errno the catalogs do not hold: the C library's English
    return msg(f"notice.{key}", **fields)
