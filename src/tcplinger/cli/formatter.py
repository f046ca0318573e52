"""argparse's help layout, fit for Chinese as for English.

argparse wraps help with textwrap, which breaks lines at spaces and counts
characters: a Chinese sentence has no spaces (one "word" broken anywhere,
``t`` / ``cp``) and each of its characters takes two terminal columns
(East Asian Width "W"/"F", Unicode UAX #11), so its lines ran past the
terminal. Text with wide characters is wrapped here by display width,
breaking between wide characters or at spaces; English text keeps
argparse's own wrapping.
"""

from __future__ import annotations

import argparse
import re
import unicodedata

#: one wide character, or a run of anything else but spaces, or spaces (the
#: text of the pattern: ``re`` compiles it at the first wrap and caches it;
#: at import it cost every start ~5 ms, for commands that wrap nothing)
_TOKEN = (r"[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f"
          r"\uff00-\uff60\uffe0-\uffe6]|[^\s\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3"
          r"\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]+|\s+")
#: closing punctuation that must not begin a line (the "kinsoku" rule)
_NO_LINE_START = set("，。、；：）」』】》！？")


def width(text: str) -> int:
    """Terminal columns of ``text``.

    >>> width("abc"), width("套接字"), width("（a）")
    (3, 6, 5)
    """
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def is_wide(text: str) -> bool:
    return any(unicodedata.east_asian_width(c) in "WF" for c in text)


def wrap(text: str, columns: int) -> list[str]:
    """Lines of at most ``columns`` display columns (a single token
    longer than that gets a line of its own).

    >>> wrap("只保留匹配 pcap-filter 子集的报文：host、net、tcp", 20)
    ['只保留匹配', 'pcap-filter 子集的报', '文：host、net、tcp']
    """
    lines: list[str] = []
    line = ""
    for token in re.findall(_TOKEN, " ".join(text.split())):
        if token.isspace():
            line += " " if line else ""
        elif not line or width(line + token) <= columns or token in _NO_LINE_START:
            line += token
        else:
            lines.append(line.rstrip())
            line = token
    if line.strip():
        lines.append(line.rstrip())
    return lines


class Formatter(argparse.HelpFormatter):
    """argparse's layout with a chosen word for "usage: " (``None``:
    argparse's own) and display-width wrapping of wide text."""

    usage_prefix: str | None = None

    def add_usage(self, usage, actions, groups, prefix=None):
        # add_subparsers passes prefix "" to compute the subcommands' prog
        super().add_usage(usage, actions, groups,
                          self.usage_prefix if prefix is None else prefix)

    def _format_usage(self, usage, actions, groups, prefix):
        # argparse indents the usage's continuation lines by len(prefix)
        # characters: "用法：" is 3 characters but 6 columns. Lay it out with
        # a stand-in of the prefix's display width, then put the prefix back.
        if prefix is None or not is_wide(prefix):
            return super()._format_usage(usage, actions, groups, prefix)
        stand_in = "\0" * width(prefix)
        text = super()._format_usage(usage, actions, groups, stand_in)
        return prefix + text[len(stand_in):]

    def _split_lines(self, text, width):
        return wrap(text, width) if is_wide(text) else super()._split_lines(text, width)

    def _fill_text(self, text, width, indent):
        if not is_wide(text):
            return super()._fill_text(text, width, indent)
        return "\n".join(indent + line for line in wrap(text, width - len(indent)))
