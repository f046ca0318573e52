"""Each endpoint's TCP states as far as the packets prove them, in the
timeline vocabulary of the lab and the simulator (model/timeline.py).

An endpoint moves (RFC 793's diagram, as Linux implements it) on four
proven events: it sent its FIN (the FIN is on the wire), its FIN was
acknowledged (the peer's ACK covering it is on the wire), it received the
peer's FIN (proven only by its own ACK covering that FIN; the move is
placed at the FIN's time), and a RST (sent by it, or addressed to it).
ESTABLISHED + FIN sent → FIN_WAIT1, + FIN acked → FIN_WAIT2, + FIN
received → TIME_WAIT; FIN_WAIT1 + FIN received → CLOSING, + FIN acked →
TIME_WAIT; ESTABLISHED + FIN received → CLOSE_WAIT, + FIN sent →
LAST_ACK, + FIN acked → gone. A peer's FIN that this side never
acknowledged did not reach it (seed 003's dropped FIN): its state does not
move. TIME_WAIT's end and an orphan's timeout send nothing, so those spans
stay open (``end_s`` None) up to the end of the capture.

>>> from types import SimpleNamespace as NS
>>> a = NS(syn_t=0.0, synack_t=None, estab_t=0.2, fin_t=1.0, fin_acked_t=1.1,
...        peer_fin_acked_t=None, rst_t=None, fin_ack=None, fin_end=2)
>>> b = NS(syn_t=None, synack_t=0.1, estab_t=None, fin_t=None, fin_acked_t=None,
...        peer_fin_acked_t=1.1, rst_t=None, fin_ack=None, fin_end=None)
>>> [(s.state, s.start_s, s.end_s) for s in endpoint_spans(a, b, True, t0=0.0)]
[(2, 0.0, 0.1), (1, 0.1, 1.0), (4, 1.0, 1.1), (5, 1.1, None)]
>>> [(s.state, s.start_s, s.end_s) for s in endpoint_spans(b, a, False, t0=0.0)]
[(3, 0.1, 0.2), (1, 0.2, 1.0), (8, 1.0, None)]
"""

from __future__ import annotations

from ..model.states import TcpState
from ..model.timeline import StateSpan
from .zeek import seq_delta


class S:
    """TcpState numbers as plain ints (enum members are slow in a loop
    run for every connection of a large capture)."""

    ESTABLISHED, SYN_SENT, SYN_RECV = (int(TcpState.ESTABLISHED), int(TcpState.SYN_SENT),
                                       int(TcpState.SYN_RECV))
    FIN_WAIT1, FIN_WAIT2, TIME_WAIT = (int(TcpState.FIN_WAIT1), int(TcpState.FIN_WAIT2),
                                       int(TcpState.TIME_WAIT))
    CLOSE_WAIT, LAST_ACK, CLOSING = (int(TcpState.CLOSE_WAIT), int(TcpState.LAST_ACK),
                                     int(TcpState.CLOSING))

#: Events, numbered in the order they are taken at equal times (one segment
#: carrying both: the ACK before the FIN, RFC 793 "SEGMENT ARRIVES" checks
#: the ACK field before the FIN bit), so that (time, event) tuples sort right.
FIN_SENT, FIN_ACKED, FIN_RECEIVED, RST = range(4)

#: (state, event) -> next state; None: the endpoint forgets the connection.
_NEXT = {
    (S.ESTABLISHED, FIN_SENT): S.FIN_WAIT1,
    (S.ESTABLISHED, FIN_RECEIVED): S.CLOSE_WAIT,
    (S.SYN_RECV, FIN_RECEIVED): S.CLOSE_WAIT,
    (S.SYN_RECV, FIN_SENT): S.FIN_WAIT1,
    (S.FIN_WAIT1, FIN_ACKED): S.FIN_WAIT2,
    (S.FIN_WAIT1, FIN_RECEIVED): S.CLOSING,
    (S.FIN_WAIT2, FIN_RECEIVED): S.TIME_WAIT,
    (S.CLOSING, FIN_ACKED): S.TIME_WAIT,
    (S.CLOSE_WAIT, FIN_SENT): S.LAST_ACK,
    (S.LAST_ACK, FIN_ACKED): None,
}


def _opening(me, peer, is_orig: bool, first_t: float) -> list[tuple[int, float]]:
    if is_orig and me.syn_t is not None:
        out = [(S.SYN_SENT, me.syn_t)]
        if peer.synack_t is not None:
            out.append((S.ESTABLISHED, peer.synack_t))
        return out
    if not is_orig and me.synack_t is not None:
        out = [(S.SYN_RECV, me.synack_t)]
        if peer.estab_t is not None:
            out.append((S.ESTABLISHED, peer.estab_t))
        return out
    if not is_orig and peer.syn_t is not None:
        return []  # a SYN never answered: the responder held nothing we saw
    return [(S.ESTABLISHED, first_t)]  # first seen mid-stream


def endpoint_spans(me, peer, is_orig: bool, *, t0: float, first_t: float | None = None,
                   peer_fin_t: float | None = None) -> list[StateSpan]:
    """Spans of one endpoint; ``me``/``peer`` are observe.Side objects,
    times are made relative to ``t0``."""
    first = t0 if first_t is None else first_t
    moves = _opening(me, peer, is_orig, first)
    events = []
    if me.fin_t is not None:
        events.append((me.fin_t, FIN_SENT))
    if me.fin_acked_t is not None:
        events.append((me.fin_acked_t, FIN_ACKED))
    if me.peer_fin_acked_t is not None:
        fin_t = peer.fin_t if peer.fin_t is not None else peer_fin_t
        got = min(fin_t, me.peer_fin_acked_t) if fin_t is not None else me.peer_fin_acked_t
        if (me.fin_t is not None and peer.fin_end is not None and me.fin_ack is not None
                and seq_delta(me.fin_ack, peer.fin_end) < 0):
            # its own FIN did not acknowledge the peer's: it was sent before
            # that FIN arrived (a simultaneous close), whatever the capture saw
            got = max(got, me.fin_t)
        events.append((got, FIN_RECEIVED))
    rst = [t for t in (me.rst_t, peer.rst_t) if t is not None]
    if rst:
        events.append((min(rst), RST))
    events.sort()
    state = moves[-1][0] if moves else None
    gone_at = None
    for t, ev in events:
        if state is None:
            break
        if ev == RST:
            gone_at = t
            break
        nxt = _NEXT.get((state, ev), state)
        if nxt is None:
            gone_at = t
            break
        if nxt != state:
            moves.append((nxt, t))
            state = nxt
    spans = []
    for i, (st, t) in enumerate(moves):
        end = moves[i + 1][1] if i + 1 < len(moves) else gone_at
        spans.append(StateSpan(st, round(t - t0, 6), None if end is None
                               else round(end - t0, 6)))
    return spans
