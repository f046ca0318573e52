"""Names read from the outside (a process's comm and command line, a
capture file's interface names) as one line of printable text.

Whoever runs a process names it (prctl(2) PR_SET_NAME takes any byte but
NUL), and whoever wrote a capture file named its interfaces: a newline,
tab or escape sequence in such a name would split a table row, reach the
terminal as a control sequence, or end up raw in an HTML page. Each
character that is not printable (str.isprintable: controls, format
characters such as U+202E RIGHT-TO-LEFT OVERRIDE, separators other than
the space) is replaced by ``fill``.
"""

from __future__ import annotations


def printable(text: str, fill: str = "?") -> str:
    """``text`` with each unprintable character replaced by ``fill``.

    >>> printable("nginx"), printable("a\\nb\\x1b[2J\\u202ez\\t")
    ('nginx', 'a?b?[2J?z?')
    >>> printable("sh -c sleep 1\\nsleep 2", " ")
    'sh -c sleep 1 sleep 2'
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else fill for c in text)
