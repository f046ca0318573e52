"""Ages in state that one snapshot can tell, without a tracker.

Only timewait-type sockets carry their age in their timer: the kernel arms
it with a known length when the socket enters its state. Everything else
is unknown from one look; tcp_info's ``last_ack_recv`` bounds it from
below for states entered on *receiving* a segment (the segment that moved
the socket updated ``tp->rcv_tstamp``; later ACKs only make it smaller).

Lengths, from net/ipv4/tcp_minisocks.c ``tcp_time_wait()`` and
net/ipv4/tcp_input.c (FIN_WAIT1 -> FIN_WAIT2) / tcp_timer.c
``tcp_keepalive_timer()`` on 6.x:

* TIME_WAIT: always TCP_TIMEWAIT_LEN (60 s).
* orphaned FIN_WAIT2, fin time ``T`` = TCP_LINGER2 or tcp_fin_timeout:
  ``T <= 60``: a minisocket for ``T``;
  ``T > 60``: a full socket with the keepalive timer for ``T - 60``, then a
  minisocket for another ``T - 60``.
The per-socket TCP_LINGER2 cannot be read back, so the namespace's
tcp_fin_timeout is assumed; the lab measures both.

An orphaned FIN_WAIT2's timer is armed by ``tcp_close()`` (net/ipv4/tcp.c),
so it tells the time since close(), not since the socket entered FIN_WAIT2:
measured with Apache 2.4 (KeepAliveTimeout 2), the server's FIN left at
2.19 s (tcpdump) and the process closed the socket at 4.25 s, after its
lingering close (docs/real-software.md). Those ages are lower bounds with
the source ``since_close`` (:func:`since_close_mask`).
"""

from __future__ import annotations

import numpy as np

from ..model.kernel import TCP_TIMEWAIT_LEN_S, KernelContext
from ..model.socket import Age, AgeSource, UNKNOWN_AGE
from ..model.states import TcpState
from ..model.table import SocketTable

#: States entered on receiving a segment: last_ack_recv <= age.
LOWER_BOUND_STATES = (int(TcpState.ESTABLISHED), int(TcpState.CLOSE_WAIT),
                      int(TcpState.FIN_WAIT2), int(TcpState.CLOSING))


def timer_ages(table: SocketTable, kernel: KernelContext | None) -> np.ndarray:
    """Seconds in state from the timer, NaN where the timer does not tell.

    >>> from tcplinger.model.table import empty
    >>> rows = empty(3)
    >>> rows["state"] = [6, 5, 8]; rows["timer"] = [3, 3, 0]; rows["timewait"] = [1, 1, 0]
    >>> rows["expires_ms"] = [59000, 1500, 0]
    >>> timer_ages(SocketTable(rows), KernelContext(sysctls={"tcp_fin_timeout": 2})).tolist()
    [1.0, 0.5, nan]
    """
    rows = table.rows
    ages = np.full(len(rows), np.nan)
    expires = rows["expires_ms"]
    fin = float((kernel.get("tcp_fin_timeout") if kernel else None) or 60)
    tw = rows["timewait"] & (rows["timer"] == 3)
    st = rows["state"]
    in_tw = tw & (st == int(TcpState.TIME_WAIT))
    ages[in_tw] = TCP_TIMEWAIT_LEN_S - expires[in_tw] / 1000.0
    fw2_mini = tw & (st == int(TcpState.FIN_WAIT2))
    if fin <= TCP_TIMEWAIT_LEN_S:
        ages[fw2_mini] = fin - expires[fw2_mini] / 1000.0
    else:
        phase = fin - TCP_TIMEWAIT_LEN_S
        ages[fw2_mini] = phase + (phase - expires[fw2_mini] / 1000.0)
        first = (~rows["timewait"] & (st == int(TcpState.FIN_WAIT2))
                 & (rows["inode"] == 0) & (rows["timer"] == 2))
        ages[first] = phase - expires[first] / 1000.0
    np.maximum(ages, 0.0, out=ages, where=~np.isnan(ages))
    return ages


def lower_bounds(table: SocketTable) -> np.ndarray:
    """tcp_info last_ack_recv (s) as a lower bound, NaN where not usable."""
    out = np.full(len(table), np.nan)
    if table.info is None:
        return out
    by_state = np.zeros(256, bool)  # a lookup by state number: np.isin sorts
    by_state[list(LOWER_BOUND_STATES)] = True
    ok = table.info["present"] & by_state[table.rows["state"]]
    out[ok] = table.info["last_ack_recv"][ok] / 1000.0
    return out


def since_close_mask(table: SocketTable) -> np.ndarray:
    """Orphaned FIN_WAIT2 rows (inode 0): their timer age counts from close().

    >>> from tcplinger.model.table import empty
    >>> rows = empty(3)
    >>> rows["state"] = [5, 5, 6]; rows["inode"] = [0, 7, 0]
    >>> since_close_mask(SocketTable(rows)).tolist()
    [True, False, False]
    """
    rows = table.rows
    return (rows["state"] == int(TcpState.FIN_WAIT2)) & (rows["inode"] == 0)


def age_arrays(table: SocketTable, kernel: KernelContext | None):
    """(exact seconds, lower-bound seconds) per row; NaN where unknown.

    An orphan's timer age is a lower bound (:func:`since_close_mask`), so
    it is in the second array; label it with :func:`bound_sources`.

    >>> from tcplinger.model.table import empty
    >>> rows = empty(2)
    >>> rows["state"] = [6, 5]; rows["timer"] = 3; rows["timewait"] = True
    >>> rows["expires_ms"] = [59000, 54000]
    >>> exact, bound = age_arrays(SocketTable(rows), KernelContext(sysctls={"tcp_fin_timeout": 60}))
    >>> exact.tolist(), bound.tolist()
    ([1.0, nan], [nan, 6.0])
    """
    exact = timer_ages(table, kernel)
    bound = lower_bounds(table)
    orphan = since_close_mask(table) & ~np.isnan(exact)
    bound[orphan] = np.fmax(bound[orphan], exact[orphan])
    exact[orphan] = np.nan
    return exact, bound


def bound_sources(table: SocketTable) -> list[AgeSource]:
    """The source of each row's lower bound in :func:`age_arrays`."""
    return [AgeSource.SINCE_CLOSE if m else AgeSource.LAST_RECV
            for m in since_close_mask(table).tolist()]


def ages(table: SocketTable, kernel: KernelContext | None) -> list[Age]:
    """One :class:`Age` per row, from what a single snapshot can tell."""
    exact, bound = age_arrays(table, kernel)
    sources = bound_sources(table)
    out = []
    for e, b, s in zip(exact.tolist(), bound.tolist(), sources):
        if e == e:  # not NaN
            out.append(Age(e, False, AgeSource.TIMER))
        elif b == b:
            out.append(Age(b, True, s))
        else:
            out.append(UNKNOWN_AGE)
    return out
