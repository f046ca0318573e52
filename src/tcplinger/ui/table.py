"""Plain text tables for terminals and pipes (no colour when not a tty)."""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence


def duration(seconds: float | None) -> str:
    """diagnose.evidence.duration (one formatter for every view), imported
    when first used: importing diagnose costs ls and stats ~13 ms.

    >>> duration(75)
    '1m15s'
    """
    from ..diagnose.evidence import duration as formatter
    return formatter(seconds)


_ASCII = dict.fromkeys(range(128))  # str.translate table deleting ASCII


def width(text: str) -> int:
    """Terminal columns: East Asian wide characters take two.

    >>> width("状态"), width("STATE"), width("≥5m (last_recv)")
    (4, 5, 15)
    """
    if text.isascii():
        return len(text)
    wide = _wide.get(text)
    if wide is None:
        # Only the non-ASCII characters ("≥" of an age, CJK headers) are
        # looked up; the same texts recur (ages, states), so they are kept.
        import unicodedata  # a shared library: loaded when a text needs it

        wide = sum(1 for c in text.translate(_ASCII) if unicodedata.east_asian_width(c) in "WF")
        if len(_wide) > 65536:
            _wide.clear()
        _wide[text] = wide
    return len(text) + wide


_wide: dict[str, int] = {}


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
    rows = rows if isinstance(rows, list) else list(rows)
    if any(len(r) != len(headers) for r in rows):
        return _render_rows(headers, rows, align=align, max_width=max_width)
    columns = [list(map(str, col)) for col in zip(*rows)] if rows else [[] for _ in headers]
    return render_columns(headers, columns, align=align, max_width=max_width)


def render_columns(headers: Sequence[str], columns: Sequence[list[str]], *,
                   align: str | None = None, max_width: int | None = None) -> list[str]:
    """:func:`render` for cells given column by column (lists of str).

    >>> render_columns(["A", "NUM"], [["x", "yy"], ["1", "22"]], align="lr")
    ['A   NUM', 'x     1', 'yy   22']
    """
    n = len(columns[0]) if len(columns) else 0
    return list(render_blocks(headers, [list(columns)] if n else [],
                              align=align, max_width=max_width))


def render_blocks(headers: Sequence[str], blocks: Iterable[list[list[str]]], *,
                  align: str | None = None, max_width: int | None = None) -> Iterator[str]:
    """:func:`render_columns` for cells made a block of rows at a time
    (``blocks`` yields, per block, one list of str per column): the lines,
    as they are made.

    Two passes: the first measures each column (len() where a block's
    cells are all ASCII, width() of each distinct cell otherwise) and keeps
    each block's column as one NUL-joined str; the second pads and joins
    the lines a block at a time.  So neither a str per cell nor a line per
    row ever exists for the whole table at once: at 200k rows the cells
    take ~20 MB instead of ~110 MB of str objects, and the lines one
    block's worth (docs/performance.md, "1M memory").

    >>> list(render_blocks(["A", "NUM"], [[["x"], ["1"]], [["yy"], ["22"]]], align="lr"))
    ['A   NUM', 'x     1', 'yy   22']
    """
    align = align or "l" * len(headers)
    last = len(headers) - 1
    padded_cols = [i for i in range(len(headers)) if not (i == last and align[i] != "r")]
    widths = {i: width(headers[i]) for i in padded_cols}
    kept = []
    for cols in blocks:
        n = len(cols[0])
        if not n:
            continue
        for i in padded_cols:
            col = cols[i]
            w = max(map(len, col)) if all(map(str.isascii, col)) else max(map(width, set(col)))
            if w > widths[i]:
                widths[i] = w
        kept.append((n, [_pack(col) for col in cols]))

    def pad(cells: list[str], i: int) -> list[str]:
        if i not in widths:
            return cells
        w = widths[i]
        right = align[i] == "r"
        if all(map(str.isascii, cells)):
            return [c.rjust(w) for c in cells] if right else [c.ljust(w) for c in cells]
        done = {c: " " * (w - width(c)) + c if right else c + " " * (w - width(c))
                for c in set(cells)}
        return [done[c] for c in cells]

    def cut(line: str) -> str:
        return line if not max_width or len(line) <= max_width else line[: max_width - 1] + "…"

    yield cut("  ".join(pad([h], i)[0] for i, h in enumerate(headers)).rstrip())
    while kept:
        n, packed = kept.pop(0)  # each block's cells are let go once written
        cols = [_unpack(p) for p in packed]
        del packed
        for lo in range(0, n, _SLICE):
            cells = [pad(col[lo:lo + _SLICE], i) for i, col in enumerate(cols)]
            for row in zip(*cells):
                yield cut("  ".join(row).rstrip())


_SLICE = 8192  # rows padded and joined at a time


def _pack(cells: list[str]):
    """A column's cells as one NUL-joined str (the list itself when a cell
    holds a NUL)."""
    joined = "\0".join(cells)
    return joined if joined.count("\0") == len(cells) - 1 else cells


def _unpack(packed) -> list[str]:
    return packed.split("\0") if isinstance(packed, str) else packed


def _render_rows(headers, rows, *, align=None, max_width=None) -> list[str]:
    """Rows of different lengths: padded cell by cell."""
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
