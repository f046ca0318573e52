"""The ``ls --json`` socket objects (docs/json.md), written fast.

Two writers give the same objects (a unit test checks every row parses to
exactly ``SocketRecord.to_json()``):

* :func:`socket_objects`, one ``%``-format per row (a str each), for the
  few sockets a finding shows;
* :class:`~tcplinger.export.socket_array.SocketArray`, for ``ls --json``
  at a million sockets, which
  builds each block of :data:`BLOCK` rows as one numpy matrix of bytes, a
  fixed-width record per row.  JSON allows whitespace around values, so
  numbers and strings are right-aligned in their columns with spaces
  before them (``"port":   100``); nothing inside a string changes.  Digits
  are computed a column at a time, addresses are formatted once per
  distinct address, and constant parts (keys, the namespace, unknown ages,
  empty owner lists) are copied from a template row.  Rows the matrix
  cannot express (a negative timer, an age outside 0..1e12 s) go through
  the per-row writer.  At 1M sockets this takes ~0.6 s of CPU and ~60 MB
  instead of ~6 s and ~900 MB (docs/performance.md).
"""

from __future__ import annotations

import json
from typing import Iterator

import numpy as np

from ..model.socket import TIMER_NAMES, Age, AgeSource, UNKNOWN_AGE, format_address, is_orphan
from ..model.states import name as state_name
from ..model.table import TCP_INFO_FIELDS
from ..track import age as age_mod

#: Each state number, timer kind and bool as its JSON text (both writers).
STATE_JSON = [json.dumps(state_name(i)) for i in range(256)]
TIMER_JSON = [json.dumps(TIMER_NAMES.get(i, "off")) for i in range(256)]
BOOL_JSON = ("false", "true")

_ROW = ('{"state": %s, "family": %s, "local": {"address": %s, "port": %d}, '
        '"remote": {"address": %s, "port": %d}, "cookie": %d, "inode": %d, '
        '"uid": %d, "orphan": %s, "timewait_type": %s, "timer": {"kind": %s, '
        '"expires_ms": %d, "retransmits": %d}, "recv_q": %d, "send_q": %d, '
        '"shutdown": %s, "netns": %s, "owners": %s, "age": %s%s}')


def _age_json(age: Age) -> str:
    return json.dumps(age.to_json())


def socket_objects(table, *, netns=None, owners=None, ages=None) -> Iterator[str]:
    """One JSON object (a str) per row of ``table``.

    ``owners`` maps inode -> tuple of Owner; ``ages`` is a list of Age
    aligned with the rows (None: all unknown).
    """
    rows = table.rows
    n = len(rows)
    if n == 0:
        return
    netns_s = json.dumps(netns.to_json()) if netns is not None else "null"
    unknown = _age_json(UNKNOWN_AGE)
    cache: dict = {}

    def addr(fam, raw):
        key = (fam, raw)
        s = cache.get(key)
        if s is None:
            s = cache[key] = '"' + format_address(fam, raw) + '"'
        return s

    fam = rows["family"].tolist()
    st = rows["state"].tolist()
    sa = rows["saddr"].tolist()
    da = rows["daddr"].tolist()
    sp = rows["sport"].tolist()
    dp = rows["dport"].tolist()
    ck = rows["cookie"].tolist()
    ino = rows["inode"].tolist()
    uid = rows["uid"].tolist()
    tw = rows["timewait"].tolist()
    tm = rows["timer"].tolist()
    ex = rows["expires_ms"].tolist()
    rt = rows["retrans"].tolist()
    rq = rows["recv_q"].tolist()
    wq = rows["send_q"].tolist()
    sh = rows["shutdown"].tolist()
    fams = {2: '"ipv4"', 10: '"ipv6"'}
    info_rows = _info_json(table)
    age_strs = _ages_json(ages, n, unknown, table)
    owners = owners or {}
    for i in range(n):
        f = fam[i]
        o = owners.get(ino[i]) if ino[i] else None
        yield _ROW % (
            STATE_JSON[st[i]], fams.get(f, '"ipv4"'), addr(f, sa[i]), sp[i], addr(f, da[i]), dp[i],
            ck[i], ino[i], uid[i], BOOL_JSON[is_orphan(st[i], ino[i])], BOOL_JSON[tw[i]],
            TIMER_JSON[tm[i]], ex[i], rt[i], rq[i], wq[i],
            "null" if sh[i] < 0 else str(sh[i]), netns_s,
            json.dumps([x.to_json() for x in o]) if o else "[]",
            age_strs[i], info_rows[i] if info_rows is not None else "")


_SOURCE_NAMES = ("unknown", "timer", "last_recv", "trace", "first_seen", "since_close")


def _ages_json(ages, n, unknown, table=None):
    """``ages`` is None, a list of Age, or an (exact, lower_bound) pair of
    float arrays as track.age.age_arrays() gives (NaN: not known)."""
    if ages is None:
        return [unknown] * n
    if isinstance(ages, list):
        return [unknown if a is UNKNOWN_AGE else _age_json(a) for a in ages]
    if len(ages) == 3:  # tracked: (seconds, at_least, source codes), see _Context
        secs, low, codes = ages
        sources = [AgeSource(v) for v in _SOURCE_NAMES]
        return [unknown if codes[i] == 0 or secs[i] != secs[i] else
                _age_json(Age(float(secs[i]), bool(low[i]), sources[int(codes[i])]))
                for i in range(n)]
    exact, bound = ages
    out = [unknown] * n
    for i in np.flatnonzero(~np.isnan(exact)).tolist():
        out[i] = _age_json(Age(float(exact[i]), False, AgeSource.TIMER))
    lower = age_mod.bound_sources(table) if table is not None else None
    for i in np.flatnonzero(np.isnan(exact) & ~np.isnan(bound)).tolist():
        src = lower[i] if lower is not None else AgeSource.LAST_RECV
        out[i] = _age_json(Age(float(bound[i]), True, src))
    return out


def _info_json(table):
    if table.info is None:
        return None
    info = table.info
    present = info["present"].tolist()
    cols = [(name, info[name].tolist()) for name, _ in TCP_INFO_FIELDS]
    out = []
    for i, p in enumerate(present):
        if not p:
            out.append("")
            continue
        out.append(', "tcp_info": {' + ", ".join(
            f'"{name}": {col[i]}' for name, col in cols) + "}")
    return out


def write_array(write, key: str, objects: Iterator[str], *, first: bool = True) -> None:
    """Stream ``"key": [obj, obj, ...]`` without holding one big string."""
    write(('' if first else ', ') + json.dumps(key) + ': [')
    sep = ""
    batch = []
    for obj in objects:
        batch.append(obj)
        if len(batch) >= 4096:
            write(sep + ",\n".join(batch))
            sep = ",\n"
            batch = []
    if batch:
        write(sep + ",\n".join(batch))
    write(']')
