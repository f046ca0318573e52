"""The rules' thresholds as text: what ``rules`` lists for every rule and
``explain`` for one."""

from __future__ import annotations


def number(value: float) -> str:
    """A threshold as written on the command line.

    >>> number(240.0), number(0.25)
    ('240', '0.25')
    """
    return str(int(value)) if float(value).is_integer() else str(value)


def threshold_lines(meta, msg) -> list[str]:
    """``  RULE.NAME = DEFAULT  (description)`` for each threshold of a rule."""
    out = []
    for t in meta.thresholds:
        default = msg("report.rules.off") if t.default is None else number(t.default)
        out.append(f"  {meta.id}.{t.name} = {default}  ({msg(meta.threshold_key(t.name))})")
    return out
