"""The ``ls`` text table and ui/table.py: the column-wise renderers give the
same lines as padding cell by cell, from SocketRecords."""

import gc
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as hs

from tcplinger.app.view import NsView, View
from tcplinger.i18n import Messages
from tcplinger.model.kernel import KernelContext
from tcplinger.model.snapshot import NetnsSnapshot, Snapshot
from tcplinger.model.owner_map import OwnerMap
from tcplinger.model.socket import NetnsRef, Owner
from tcplinger.model.states import BY_STATE, TcpState
from tcplinger.model.table import SocketTable, TCP_INFO_DTYPE, empty
from tcplinger.ui import sockets, table

cells = hs.one_of(hs.text(alphabet="abcXYZ019 -:.[]", max_size=12),
                  hs.text(alphabet="状态≥é", max_size=4), hs.integers(-5, 10**6))


@settings(max_examples=200, deadline=None)
@given(hs.integers(1, 5).flatmap(lambda k: hs.tuples(
    hs.lists(hs.text(alphabet="ABC状", min_size=1, max_size=6), min_size=k, max_size=k),
    hs.lists(hs.lists(cells, min_size=k, max_size=k), max_size=6),
    hs.text(alphabet="lr", min_size=k, max_size=k))),
    hs.sampled_from([None, 8, 30]))
def test_render_by_columns_same_as_by_cells(case, max_width):
    headers, rows, align = case
    assert table.render(headers, rows, align=align, max_width=max_width) == \
        table._render_rows(headers, rows, align=align, max_width=max_width)


def test_render_ragged_rows_still_work():
    assert table.render(["A", "B"], [["x"], ["yy", "z"]]) == ["A   B", "x", "yy  z"]


def _reference(view, msg, width=200):
    """The ls table as it was built before: one SocketRecord per row."""
    multi = len(view.parts) > 1
    headers = [msg("col.state"), msg("col.recvq"), msg("col.sendq"), msg("col.local"),
               msg("col.remote"), msg("col.timer"), msg("col.age"), msg("col.owner")]
    if multi:
        headers.insert(0, msg("col.netns"))
    rows = []
    for part in view.parts:
        for rec in part.records(tcp_info=False):
            row = [BY_STATE[TcpState(rec.state)].ss_name if rec.state in BY_STATE
                   else rec.state_name, rec.recv_q, rec.send_q, str(rec.local), str(rec.remote),
                   sockets.timer_text(rec), sockets.age_text(rec),
                   sockets.owner_text(rec, view.owners_resolved, msg)]
            if multi:
                row.insert(0, part.ns.netns.label())
            rows.append(row)
    lines = table._render_rows(headers, rows, align=("l" if multi else "") + "lrrlllll",
                               max_width=width)
    lines.append(msg("ls.footer", n=len(rows)) +
                 ("" if view.owners_resolved else " " + msg("ls.hint_owners")))
    return lines


def _part(seed: int, n: int, name: str) -> NsView:
    rng = np.random.default_rng(seed)
    rows = empty(n)
    rows["family"] = rng.choice([2, 10], n)
    rows["state"] = rng.choice([1, 4, 5, 6, 8, 9, 10, 12, 13, 200], n)
    rows["timer"] = rng.integers(0, 7, n)
    rows["timewait"] = rows["timer"] == 3
    rows["expires_ms"] = rng.integers(0, 120000, n)
    rows["retrans"] = rng.integers(0, 9, n)
    rows["inode"] = rng.choice([0, 11, 12, 13], n)
    rows["sport"] = rng.integers(0, 65536, n)
    rows["recv_q"] = rng.integers(0, 3, n)
    rows["saddr"] = [bytes(rng.integers(0, 256, 16, dtype=np.uint8)) for _ in range(n)]
    rows["daddr"] = [bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 1])] * n
    info = np.zeros(n, TCP_INFO_DTYPE)
    info["present"] = rng.random(n) < 0.5
    info["last_ack_recv"] = rng.integers(0, 10**6, n)
    ns = NetnsSnapshot(NetnsRef(4026531840 + seed, name), SocketTable(rows, info),
                       KernelContext(sysctls={"tcp_fin_timeout": 30}), "netlink", 0.0, 0.0)
    return NsView(ns, ns.table)


@pytest.mark.parametrize("block", [sockets.BLOCK, 7])
def test_ls_table_same_as_from_records(monkeypatch, block):
    """Also made 7 rows at a time (the cells and lines of a block, the
    widths of all: ui/table.render_blocks)."""
    monkeypatch.setattr(sockets, "BLOCK", block)
    owners = {11: (Owner(10, "srv", 3), Owner(10, "srv", 7)), 12: (Owner(20, "状态", 4),)}
    for lang in ("en", "zh"):
        msg = Messages(lang)
        for parts, resolved in (([_part(1, 60, "blue")], False),
                                ([_part(2, 50, "blue"), _part(3, 40, None)], True)):
            view = View(Snapshot(), parts, owners_resolved=resolved)
            if resolved:
                for p in parts:
                    p.owners = owners
            for width in (200, 60):
                assert sockets.render(view, msg, width=width) == _reference(view, msg, width)


def test_ls_table_is_written_without_holding_it():
    """The lines of 40k rows of one namespace, owners resolved (an OwnerMap
    of 200 processes, as the fd walk makes it), written as they come: the
    peak of Python allocations (tracemalloc) is the table's cells kept as
    one str per column and block, plus one block's cells and lines: 10.4 MB
    measured, where the whole table's cells and lines took 31.7 MB (before:
    ``sockets.render`` made every line first; the owners a dict).  40k
    random local addresses are formatted once each here, which real hosts
    do not have."""
    n = 40_000
    part = _part(4, n, None)
    part.table.rows["inode"] = np.arange(1, n + 1)
    part.table.rows["state"] = int(TcpState.CLOSE_WAIT)
    procs = [Owner(1000 + i, "python3", -1, "python3 holder.py", "root", 0) for i in range(200)]
    part.owners = OwnerMap(procs, np.arange(n) % 200, np.arange(n) // 200 + 3,
                           part.table.rows["inode"])
    view = View(Snapshot(), [part], owners_resolved=True)
    msg = Messages("en")
    out = []
    for line in sockets.lines(view, msg):  # warm-up: catalogs, imports
        out.append(len(line))
    gc.collect()
    tracemalloc.start()
    try:
        written = 0
        for line in sockets.lines(view, msg):
            written += len(line)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert written == sum(out) and len(out) == n + 2
    assert peak < 16_000_000, peak
