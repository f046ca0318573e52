"""Linux's timer arithmetic: the constants of include/net/tcp.h, the timer
wheel's lateness (kernel/time/timer.c) and tcp_model_timeout()
(net/ipv4/tcp_timer.c), for one scenario or a sweep's arrays."""

from __future__ import annotations

import numpy as np

from ..num import is_batch

TCP_TIMEWAIT_LEN = 60.0  # include/net/tcp.h
TCP_FIN_TIMEOUT_MAX = 120.0  # include/net/tcp.h, cap of TCP_LINGER2
TCP_RTO_MAX = 120.0  # include/net/tcp.h
TCP_RTO_MIN = 0.2  # include/net/tcp.h (tcp_model_timeout's rto_base)
TCP_TIMEOUT_INIT = 1.0  # initial RTO of SYN and SYN-ACK

#: LVL_START(n) of kernel/time/timer.c: a timer of delta jiffies goes to
#: the first level whose start exceeds delta; level n has granularity 8^n.
_LVL_STARTS = tuple(63 << (3 * (n - 1)) for n in range(1, 9))
_LVL_ARRAY = np.array(_LVL_STARTS, dtype=float)
_GRAN = np.array([8.0 ** i for i in range(9)])


def wheel_lateness(d_j):
    """Mean lateness, in jiffies, of a timer armed ``d_j`` jiffies ahead.

    calc_index() rounds the expiry up to the next multiple of the level's
    granularity G, strictly after it: the timer is late by 1..G jiffies,
    (G + 1) / 2 on average.

    >>> wheel_lateness(51), wheel_lateness(500), wheel_lateness(15000)
    (1.0, 4.5, 256.5)
    """
    if is_batch(d_j):
        level = np.searchsorted(_LVL_ARRAY, d_j, side="right")
        return (_GRAN[level] + 1.0) / 2.0
    for i, s in enumerate(_LVL_STARTS):
        if d_j < s:
            return (8.0 ** i + 1.0) / 2.0
    return (8.0 ** 8 + 1.0) / 2.0


def model_timeout(boundary):
    """tcp_model_timeout(): seconds that ``boundary`` retransmissions take
    with exponential backoff from TCP_RTO_MIN, linear after RTO_MAX.

    >>> model_timeout(1), round(model_timeout(8), 1), round(model_timeout(15), 1)
    (0.6000000000000001, 102.2, 924.6)
    """
    thresh = 9  # ilog2(TCP_RTO_MAX / TCP_RTO_MIN)
    if is_batch(boundary):
        b = boundary.astype(np.int64)
        small = (np.left_shift(2, np.minimum(b, thresh)) - 1) * TCP_RTO_MIN
        big = ((2 << thresh) - 1) * TCP_RTO_MIN + (b - thresh) * TCP_RTO_MAX
        return np.where(b <= thresh, small, big)
    if boundary <= thresh:
        return ((2 << int(boundary)) - 1) * TCP_RTO_MIN
    return ((2 << thresh) - 1) * TCP_RTO_MIN + (boundary - thresh) * TCP_RTO_MAX
