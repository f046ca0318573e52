"""How long a lingering socket lives on Linux: the kernel's own arithmetic.

Pure functions of the sysctls, each checked on Linux 6.18 in namespaces
(docs/rules.md, "Measured on this kernel"; tests/privileged/test_diagnose_e2e.py).

Orphaned FIN_WAIT2 (``tcp_close()`` in net/ipv4/tcp.c, ``tcp_keepalive_timer()``
in net/ipv4/tcp_timer.c): with fin time ``T`` (TCP_LINGER2, else
tcp_fin_timeout) at most TCP_TIMEWAIT_LEN (60 s) the socket becomes a
timewait-type minisocket for ``T``; above it, it stays a full socket with
the keepalive timer for ``T - 60`` and then becomes a minisocket for
another ``T - 60``: ``2T - 120`` in all (measured: T=70 -> 10 s + 10 s,
T=90 -> 30 s + 30 s).

>>> fin_wait2_phases(5), fin_wait2_phases(60), fin_wait2_phases(70), fin_wait2_phases(90)
((0.0, 5.0), (0.0, 60.0), (10.0, 10.0), (30.0, 30.0))

Retransmission limits (``tcp_write_timeout()``, ``retransmits_timed_out()``,
``tcp_model_timeout()`` in net/ipv4/tcp_timer.c): N retries are turned into
a time budget computed with a 200 ms base, ``((2 << N) - 1) * 0.2`` s while
doubling stays under TCP_RTO_MAX (120 s), then 120 s per retry. The budget
counts from the first RTO retransmission (a tail loss probe before it does
not start it), and it is checked only when the retransmission timer fires,
so the socket dies at the first firing past it. With the 204 ms RTO of a
fast link (RTO is never below 200 ms):

>>> round(model_timeout(15), 1), round(model_timeout(8), 1), round(model_timeout(2), 1)
(924.6, 102.2, 1.4)
>>> [round(retransmit_deadline(n, 0.204), 1) for n in (2, 3, 8, 15)]
[3.1, 6.3, 104.2, 928.7]

Measured between two namespaces with every FIN dropped by nftables (the
tail loss probe adds ~0.2 s): tcp_orphan_retries=2 -> gone after 4 RTO
firings, ~3.3 s; tcp_retries2=3 (not orphaned) -> 5 firings, ~6.5 s;
tcp_retries2=15 (not orphaned) -> 16 firings, gone by 939 s (ETIMEDOUT);
tcp_orphan_retries=0 (8) -> 9 firings, ~104 s.
"""

from __future__ import annotations

from ..model.kernel import TCP_TIMEWAIT_LEN_S

TCP_RTO_MIN_S = 0.2  # include/net/tcp.h TCP_RTO_MIN (HZ/5)
#: The RTO of a fast path when the socket's own is not known: the 200 ms
#: floor plus a little RTT variance (loopback and veth here show 204 ms).
#: Exactly 200 ms would put the 9th firing of a tcp_orphan_retries=8 orphan
#: 0.2 s short of its budget and double the predicted lifetime.
TYPICAL_RTO_S = 0.204
TCP_RTO_MAX_S = 120.0  # include/net/tcp.h TCP_RTO_MAX
#: tcp_orphan_retries of 0 means 8 while the peer seems alive
#: (tcp_orphan_retries() in net/ipv4/tcp_timer.c).
ORPHAN_RETRIES_DEFAULT = 8
DEFAULT_FIN_TIMEOUT = 60
DEFAULT_KEEPALIVE_TIME = 7200


def fin_wait2_phases(fin_timeout: float) -> tuple[float, float]:
    """(seconds as a full socket, seconds as a minisocket) of an orphan."""
    t = float(fin_timeout)
    if t <= TCP_TIMEWAIT_LEN_S:
        return 0.0, t
    return t - TCP_TIMEWAIT_LEN_S, t - TCP_TIMEWAIT_LEN_S


def fin_wait2_lifetime(fin_timeout: float) -> float:
    """Total seconds an orphaned FIN_WAIT2 waits for the peer's FIN.

    >>> fin_wait2_lifetime(30), fin_wait2_lifetime(120), fin_wait2_lifetime(70)
    (30.0, 120.0, 20.0)
    """
    full, mini = fin_wait2_phases(fin_timeout)
    return full + mini


def effective_orphan_retries(sysctl: int | None) -> int:
    """Retries an orphan gets: 0 means 8 while the peer answers.

    >>> effective_orphan_retries(0), effective_orphan_retries(3), effective_orphan_retries(None)
    (8, 3, 8)
    """
    if not sysctl:
        return ORPHAN_RETRIES_DEFAULT
    return int(sysctl)


def model_timeout(retries: int, rto_base: float = TCP_RTO_MIN_S) -> float:
    """``tcp_model_timeout()``: the time budget for ``retries`` retransmissions."""
    # ilog2(TCP_RTO_MAX / rto_base): the last doubling that stays below the cap
    thresh = int(TCP_RTO_MAX_S / rto_base).bit_length() - 1
    if retries <= thresh:
        return ((2 << retries) - 1) * rto_base
    return ((2 << thresh) - 1) * rto_base + (retries - thresh) * TCP_RTO_MAX_S


def retransmit_deadline(retries: int, rto: float = TCP_RTO_MIN_S) -> float:
    """Seconds from the first transmission of a segment (our FIN) until the
    kernel gives up, with an initial RTO of ``rto`` doubling up to 120 s.

    The first firing (after ``rto``) is the first retransmission and starts
    the budget; at each later firing the socket is aborted once the time
    since then reaches :func:`model_timeout`.
    """
    budget = model_timeout(retries)
    interval = max(float(rto), TCP_RTO_MIN_S)
    now = interval  # first retransmission
    start = now
    for _ in range(10_000):
        interval = min(interval * 2, TCP_RTO_MAX_S)
        now += interval
        if now - start >= budget - 1e-9:
            return now
    return now


def retransmit_deadline_after(retries: int, retransmits_done: int,
                              rto: float = TCP_RTO_MIN_S) -> float:
    """Seconds left for a socket that has already retransmitted
    ``retransmits_done`` times: the deadline minus the time those took.

    >>> round(retransmit_deadline_after(2, 0, 0.204), 2), round(retransmit_deadline_after(2, 2, 0.204), 2)
    (3.06, 2.45)
    """
    interval = max(float(rto), TCP_RTO_MIN_S)
    elapsed, step = 0.0, interval
    for _ in range(retransmits_done):
        elapsed += step
        step = min(step * 2, TCP_RTO_MAX_S)
    return max(retransmit_deadline(retries, rto) - elapsed, 0.0)


def keepalive_deadline(idle_time: float, interval: float, probes: int) -> float:
    """Seconds of peer silence after which a SO_KEEPALIVE socket is reset
    (ETIMEDOUT): the idle time, then ``probes`` unanswered probes.

    >>> keepalive_deadline(7200, 75, 9)
    7875.0
    """
    return float(idle_time + interval * probes)


def zero_window_orphan_deadline(rto: float = TCP_RTO_MIN_S) -> float:
    """Seconds an orphan whose data (and FIN) waits behind a zero window
    lives while the peer keeps answering the probes.

    ``tcp_probe_timer()`` (net/ipv4/tcp_timer.c) resets the probe count on
    every answer (RFC 1122 4.2.2.17: stay open while the receiver responds),
    so an owned socket probes forever; an orphan is aborted at the first
    probe once the backed-off interval reaches TCP_RTO_MAX (then
    tcp_orphan_retries(alive=false) is the sysctl itself, 0 by default).
    Probes go out after rto, 2 rto, 4 rto... capped at 120 s.

    >>> round(zero_window_orphan_deadline(0.208), 1)
    332.8
    """
    base = max(float(rto), TCP_RTO_MIN_S)
    total, backoff = 0.0, 0
    while base * (1 << backoff) < TCP_RTO_MAX_S:
        total += base * (1 << backoff)
        backoff += 1
    return total + TCP_RTO_MAX_S
