"""Plain text tables for terminals and pipes (no colour when not a tty)."""

from __future__ import annotations

import unicodedata
from typing import Iterable, Sequence

from ..diagnose.evidence import duration  # noqa: F401  (one formatter for every view)


def width(text: str) -> int:
    """Terminal columns: East Asian wide characters take two.

    >>> width("状态"), width("STATE")
    (4, 5)
    """
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, n: int, right: bool) -> str:
    fill = " " * max(0, n - width(text))
    return fill + text if right else text + fill


def render(headers: Sequence[str], rows: Iterable[Sequence[object]], *,
           align: str | None = None, max_width: int | None = None) -> list[str]:
    """Columns padded to their widest cell; ``align`` has one of ``l``/``r``
    per column. The last column is cut to ``max_width`` when given.

    >>> print("\\n".join(render(["STATE", "N"], [["TIME_WAIT", 3], ["LISTEN", 12]], align="lr")))
    STATE       N
    TIME_WAIT   3
    LISTEN     12
    """
    rows = [[str(c) for c in r] for r in rows]
    align = align or "l" * len(headers)
    widths = [width(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            w = width(c)
            if w > widths[i]:
                widths[i] = w
    lines = []
    for r in [list(headers)] + rows:
        cells = []
        for i, c in enumerate(r):
            last = i == len(r) - 1
            if last and align[i] != "r":
                cells.append(c)
            else:
                cells.append(_pad(c, widths[i], align[i] == "r"))
        line = "  ".join(cells).rstrip()
        if max_width and len(line) > max_width:
            line = line[: max_width - 1] + "…"
        lines.append(line)
    return lines
