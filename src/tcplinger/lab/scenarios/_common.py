"""Pieces the scenarios share: parameters that mean the same everywhere,
and small measurements on recorded timelines."""

from __future__ import annotations

from ...model.states import TcpState
from ...model.params import Param

FIN_WAIT1, FIN_WAIT2, TIME_WAIT = int(TcpState.FIN_WAIT1), int(TcpState.FIN_WAIT2), \
    int(TcpState.TIME_WAIT)
CLOSE_WAIT, LAST_ACK, ESTABLISHED = int(TcpState.CLOSE_WAIT), int(TcpState.LAST_ACK), \
    int(TcpState.ESTABLISHED)

#: TCP_RTO_MIN (include/net/tcp.h): the retransmission timeout base of the
#: orphan and tcp_retries2 limits (tcp_model_timeout(), net/ipv4/tcp_timer.c).
RTO_MIN_S = 0.2
#: TCP_FIN_TIMEOUT_MAX: TCP_LINGER2 values above it are capped (tcp.c).
LINGER2_MAX_S = 120


def fin_timeout(role: str, default: int = 5) -> Param:
    return Param("tcp_fin_timeout", default, "int", minimum=0, maximum=3600, unit="s",
                 sysctl="net.ipv4.tcp_fin_timeout", roles=(role,))


def model_timeout(retries: int, rto_base: float = RTO_MIN_S) -> float:
    """How long retransmissions go on before ``retries`` gives up:
    tcp_model_timeout() with the linear backoff region (TCP_RTO_MAX 120 s).

    >>> model_timeout(3), round(model_timeout(15), 1)
    (3.0, 924.6)
    """
    thresh = 9  # ilog2(TCP_RTO_MAX / TCP_RTO_MIN) = ilog2(600)
    if retries <= thresh:
        return ((2 << retries) - 1) * rto_base
    return ((2 << thresh) - 1) * rto_base + (retries - thresh) * 120.0


def retry_lifetime(retries: int, rto: float = RTO_MIN_S, pto: float = RTO_MIN_S,
                   rto_max: float = 120.0) -> tuple[float, int]:
    """When a segment retransmitted until ``retries`` gives up is dropped,
    and how many times it was sent (measured on 6.18, docs/lab.md):

    - the first retransmission is a tail loss probe after ``pto``
      (tcp_schedule_loss_probe(), net/ipv4/tcp_output.c), then RTO-based
      retransmissions follow with the RTO doubling (capped at TCP_RTO_MAX);
    - retransmits_timed_out() measures from retrans_stamp, the time of the
      first RTO retransmission (tcp_retransmit_skb() sets it after the
      segment's timestamp was refreshed), against tcp_model_timeout();
    - it is checked only when the RTO timer expires, before
      retransmitting: the socket dies at the first expiry past the limit.

    >>> retry_lifetime(3)
    (6.4, 6)
    """
    limit = model_timeout(retries)
    t = pto  # the loss probe
    sent = 2
    t += rto  # first RTO expiry: retransmit, start counting
    first = t
    sent += 1
    backoff = rto
    while True:
        backoff = min(backoff * 2, rto_max)
        t += backoff
        if t - first >= limit:
            return round(t, 3), sent
        sent += 1


def retry_bounds(retries: int) -> tuple[float, float, int, int]:
    """(earliest, latest) time the socket can be dropped and (fewest, most)
    segments sent, for RTOs (and loss-probe timeouts) from TCP_RTO_MIN to
    25% above it (jiffies rounding and the RTT: 0.208-0.218 s measured on
    veth). Near the limit the last check can fall on either side of it,
    so both outcomes are allowed:

    >>> retry_bounds(2)
    (1.834, 3.731, 4, 5)
    """
    runs = [retry_lifetime(retries, rto=rto, pto=pto)
            for rto in (RTO_MIN_S * (1 + k / 1000) for k in range(0, 251))
            for pto in (RTO_MIN_S, rto)]
    return (min(r[0] for r in runs), max(r[0] for r in runs), min(r[1] for r in runs),
            max(r[1] for r in runs))


def socks(observed, side: str):
    return [s for s in observed.sockets if s.side == side]


def time_in(sock, state: int, horizon: float, *, orphan=None, minisock=None) -> float:
    total = 0.0
    for s in sock.spans:
        if s.state != state:
            continue
        if orphan is not None and s.orphan != orphan:
            continue
        if minisock is not None and s.minisock != minisock:
            continue
        total += (s.end_s if s.end_s is not None else horizon) - s.start_s
    return round(total, 3)


def first(observed, side: str):
    found = socks(observed, side)
    return found[0] if found else None


def gone_at(sock) -> float | None:
    """When the socket was last held (None: still held at the end)."""
    return None if not sock.spans or sock.spans[-1].end_s is None else sock.spans[-1].end_s


def entered(sock, state: int) -> float | None:
    for s in sock.spans:
        if s.state == state:
            return s.start_s
    return None
