"""Where Zeek finds content gaps (history ``G``): the bookkeeping of its
TCP reassembler without the bytes (read from Zeek's TCP_Reassembler and
Reassembler, not copied). Per sending endpoint: ``rs``, the sequence
number up to which its data arrived without a hole (Zeek's
``last_reassem_seq``); ``blocks``, data seen above a hole, as sorted
``[lo, hi)`` ranges; ``trim``, the highest acknowledgement taken into
account (``trim_seq``). All are unwrapped sequence numbers (wire/zeek.py
Endpoint), starting after the SYN.

Data (:func:`data_sent`, after the packet's acknowledgement, as Zeek's
Process) extends ``rs`` when it starts at or below it, else waits in
``blocks``. An acknowledgement from the peer (:func:`ack_received`; a
FIN's own sequence number never counts as data) that passes ``rs``
reports one gap per hole below it: before each waiting block, then up to
the acknowledgement; ``rs`` moves to it. Zeek logs a gap only while both
sides are established or closing cleanly (a FIN after ESTABLISHED), and
not for a connection first seen mid-stream whose acknowledgement is at
most 2 past the invented start (the first packet was a keepalive).

Worked example: data 1-100 and 201-300 seen, 101-200 lost by the capture,
then the peer acknowledges 301: one gap (101-200).

>>> from .zeek import Endpoint
>>> a, b = Endpoint(True), Endpoint(False)
>>> a.init_seq(0, 1); b.init_seq(0, 1)
>>> a.state = b.state = Endpoint.ESTABLISHED
>>> data_sent(a, 1, 101); data_sent(a, 201, 301)
>>> a.rs, a.blocks
(101, [[201, 301]])
>>> ack_received(a, b, 301, partial=False), a.rs, a.blocks
(1, 301, None)
"""

from __future__ import annotations

from .zeek import Endpoint

E = Endpoint


def _clean(ep: Endpoint) -> bool:
    return ep.state == E.ESTABLISHED or (ep.state == E.CLOSED
                                          and ep.prev_state == E.ESTABLISHED)


def data_sent(ep: Endpoint, lo: int, hi: int) -> None:
    """``ep`` sent payload [lo, hi)."""
    if hi <= ep.trim:
        return  # already acknowledged and passed: old data
    if lo <= ep.rs:
        if hi > ep.rs:
            ep.rs = hi
            _absorb(ep)
        return
    blocks = ep.blocks
    if blocks is None:
        ep.blocks = [[lo, hi]]
        return
    blocks.append([lo, hi])
    blocks.sort()
    merged = [blocks[0]]
    for b in blocks[1:]:
        if b[0] <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b[1])
        else:
            merged.append(b)
    ep.blocks = merged


def _absorb(ep: Endpoint) -> None:
    """Waiting blocks that now touch ``rs`` are delivered."""
    blocks = ep.blocks
    while blocks and blocks[0][0] <= ep.rs:
        ep.rs = max(ep.rs, blocks.pop(0)[1])
    if not blocks:
        ep.blocks = None


def ack_received(ep: Endpoint, by: Endpoint, ack: int, partial: bool) -> int:
    """``by`` acknowledged ``ep``'s data up to ``ack``: the number of
    gaps Zeek would log now (0 when they are not logged)."""
    if ep.fin_cnt and ack >= ep.fin_seq:
        ack = ep.fin_seq - 1  # the FIN is no data
    if ack <= ep.trim:
        return 0
    ep.trim = ack
    if ack <= ep.rs:
        return 0
    if partial and ack - ep.start <= 2:
        return 0  # Zeek: the first packet of a partial connection was a keepalive
    gaps = 0
    blocks = ep.blocks
    while blocks and blocks[0][0] < ack:
        lo, hi = blocks.pop(0)
        if lo > ep.rs:
            gaps += 1
        ep.rs = max(ep.rs, hi)
        while blocks and blocks[0][0] <= ep.rs:
            ep.rs = max(ep.rs, blocks.pop(0)[1])
    if not blocks:
        ep.blocks = None
    if ack > ep.rs:
        gaps += 1
        ep.rs = ack
    return gaps if _clean(ep) and _clean(by) else 0
