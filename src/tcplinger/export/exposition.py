"""The Prometheus text format (0.0.4), byte for byte what
``prometheus_client.exposition.generate_latest(registry)`` writes, at a
fraction of its cost.

prometheus_client escapes every label name of every sample again (a
regular expression per name; an ``--all-netns`` scrape of 150 pods has
11,300 samples of five or six labels each: 56,000 escapes, 0.19 s of the
scrape's CPU here); the label names of a family repeat, and so do most
values (namespace, pod, state). Here each distinct name, label set and
value is escaped once per exposition, with prometheus_client's own
escaping functions for names and the text format's rule for values
(backslash, newline, double quote), and the lines are laid out as
``generate_latest`` lays them out (tests/unit/test_exposition.py compares
the two on every kind of family, odd names and values included).

The exporter serves it for the plain text format without a ``name[]``
filter, the format Prometheus asks for by default; any other request
(OpenMetrics, an escaping scheme, ``name[]``) goes to prometheus_client.

>>> from prometheus_client import CollectorRegistry, Gauge
>>> reg = CollectorRegistry()
>>> Gauge("x", 'a "gauge"', ["k"], registry=reg).labels('v"1').set(2)
>>> print(text(reg).decode(), end="")
# HELP x a "gauge"
# TYPE x gauge
x{k="v\\"1"} 2.0
"""

from __future__ import annotations

from prometheus_client.openmetrics.exposition import (UNDERSCORES, escape_label_name,
                                                      escape_metric_name)
from prometheus_client.utils import floatToGoString

#: the samples generate_latest moves into a gauge family of their own
_OM_SUFFIXES = ("_created", "_gsum", "_gcount")
_TYPES = {"counter": "counter", "info": "gauge", "stateset": "gauge",
          "gaugehistogram": "histogram", "unknown": "untyped"}
_NAME_SUFFIX = {"counter": "_total", "info": "_info"}


def _value(v: str) -> str:
    """A label value as the text format quotes it.

    >>> print(_value('say "hi"'))
    say \\"hi\\"
    """
    return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _help(doc: str) -> str:
    return doc.replace("\\", r"\\").replace("\n", r"\n")


class _Lines:
    """Sample lines, with every name, label set and value escaped once."""

    def __init__(self):
        self.names: dict[str, str] = {}
        self.keys: dict[tuple, tuple] = {}  # label names -> (sorted names, their escapes)
        self.values: dict[str, str] = {}

    def name(self, s: str) -> str:
        out = self.names.get(s)
        if out is None:
            out = self.names[s] = escape_metric_name(s, UNDERSCORES)
        return out

    def line(self, s) -> str:
        labels = s.labels
        stamp = "" if s.timestamp is None else f" {int(float(s.timestamp) * 1000):d}"
        if not labels:
            return f"{self.name(s.name)} {floatToGoString(s.value)}{stamp}\n"
        key = tuple(labels)
        order = self.keys.get(key)
        if order is None:
            names = sorted(key)
            order = self.keys[key] = (names, [escape_label_name(k, UNDERSCORES)
                                              for k in names])
        values = self.values
        parts = []
        for k, esc in zip(*order):
            v = labels[k]
            q = values.get(v)
            if q is None:
                q = values[v] = _value(v)
            parts.append(f'{esc}="{q}"')
        return f"{self.name(s.name)}{{{','.join(parts)}}} {floatToGoString(s.value)}{stamp}\n"


def text(registry) -> bytes:
    """``generate_latest(registry)``'s bytes (text format 0.0.4, names
    escaped with underscores)."""
    out: list[str] = []
    lines = _Lines()
    for metric in registry.collect():
        mtype = metric.type
        mname = lines.name(metric.name + _NAME_SUFFIX.get(mtype, ""))
        mtype = _TYPES.get(mtype, mtype)
        doc = _help(metric.documentation)
        out.append(f"# HELP {mname} {doc}\n# TYPE {mname} {mtype}\n")
        moved: dict[str, list[str]] = {}
        special = {metric.name + suffix: suffix for suffix in _OM_SUFFIXES}
        for s in metric.samples:
            suffix = special.get(s.name)
            if suffix is None:
                out.append(lines.line(s))
            else:
                moved.setdefault(suffix, []).append(lines.line(s))
        for suffix, found in sorted(moved.items()):
            name = lines.name(metric.name + suffix)
            out.append(f"# HELP {name} {doc}\n# TYPE {name} gauge\n")
            out.extend(found)
    return "".join(out).encode("utf-8")
