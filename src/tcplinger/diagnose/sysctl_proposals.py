"""The sysctl values tcplinger proposes: one function per setting, from the
current value (and the evidence that matters) to the proposed one, or None
when there is nothing to propose.

The rules call these to build their fixes (``Fix.sysctl``); ``tune`` plans
those fixes as they are, so ``report`` and ``tune`` propose the same values
for the same findings. Every value returned keeps :mod:`.sysctl_bounds`
(tests/unit/test_rule_sysctl_fixes.py checks them over many settings), and
once a proposed value is set the same function proposes nothing more for
it, except for the limits that are only ever raised (tcp_max_tw_buckets,
tcp_max_orphans, nf_conntrack_max), which a table still full may raise again.

>>> fin_timeout(60), fin_timeout(120), fin_timeout(30), fin_timeout(5)
(30, 30, None, None)
>>> orphan_retries(0), orphan_retries(15), orphan_retries(6), orphan_retries(3)
(6, 6, None, None)
>>> port_range((32768, 60999)), port_range((1024, 60999)), port_range((10000, 65535))
((10000, 65535), (1024, 65535), None)
"""

from __future__ import annotations

from .lifetimes import effective_orphan_retries, model_timeout
from .sysctl_bounds import BOUNDS, max_orphans_ceiling

#: The values tcplinger proposes (each within its bound).
FIN_TIMEOUT = 30
ORPHAN_RETRIES = 6
TW_REUSE = 1
PORT_RANGE = (10000, 65535)
CT_CLOSE_WAIT = 3600
CT_ESTABLISHED = 86400
#: tcp_keepalive_time goes this far below a middlebox's idle timeout, so
#: the first probe leaves before the middlebox forgets the flow.
KEEPALIVE_MARGIN = 0.8
TW_BUCKETS_STEP = 1024


def fin_timeout(current: int | None) -> int | None:
    """30 s whenever the setting is above it.

    Above 60 s the setting means 2T - 120 s in two phases
    (lifetimes.fin_wait2_phases): 30 s is then also the honest value, one
    phase of exactly what it says (for T between 61 and 74 an orphan lived
    less than 30 s, and the floor is 30).
    """
    if current is None or current <= FIN_TIMEOUT:
        return None
    return FIN_TIMEOUT


def orphan_retries(current: int | None) -> int | None:
    """6 when orphans effectively get more retries (0 means 8).

    Not below 6: 25.4 s of retransmission (5 is the floor, 12.6 s).
    """
    if current is None or effective_orphan_retries(current) <= ORPHAN_RETRIES:
        return None
    return ORPHAN_RETRIES


def orphan_budget_s(retries: int | None) -> float:
    """Seconds of retransmission an orphan gets for a tcp_orphan_retries
    setting (tcp_model_timeout() with TCP_RTO_MIN; 0 means 8).

    >>> orphan_budget_s(5), orphan_budget_s(0), orphan_budget_s(15)
    (12.6, 102.2, 924.6)
    """
    return round(model_timeout(effective_orphan_retries(retries)), 1)


def tw_reuse(current: int | None) -> int | None:
    """1 unless it is 1 (only safe with tcp_timestamps = 1: see
    :data:`TW_REUSE_REQUIRES`)."""
    if current is None or current == TW_REUSE:
        return None
    return TW_REUSE


#: tcp_tw_reuse relies on TCP timestamps (PAWS, RFC 7323) to tell a new
#: connection's segments from the old one's.
TW_REUSE_REQUIRES = (("tcp_timestamps", 1),)


def port_range(current: tuple[int, ...] | None) -> tuple[int, int] | None:
    """Widened to include 10000-65535; a low end already below 10000 is
    kept (never narrowed, never lowered further)."""
    if not current or len(current) != 2:
        return None
    lo, hi = int(current[0]), int(current[1])
    new = (min(lo, PORT_RANGE[0]), max(hi, PORT_RANGE[1]))
    return None if new == (lo, hi) else new


def keepalive_time_for(idle_timeout: float) -> int:
    """The tcp_keepalive_time that probes before a middlebox forgets a flow
    idle for ``idle_timeout`` seconds (it may be below the floor: then no
    host-wide value is proposed, TCP_KEEPIDLE per socket is the remedy).

    >>> keepalive_time_for(240), keepalive_time_for(350)
    (192, 280)
    """
    return int(idle_timeout * KEEPALIVE_MARGIN)


def keepalive_time(idle_timeout: float | None, current: int | None) -> int | None:
    """:func:`keepalive_time_for` the timeout, when that is lower than now
    and not below the 120 s floor.

    >>> keepalive_time(240, 7200), keepalive_time(120, 7200), keepalive_time(240, 100)
    (192, None, None)
    """
    if not idle_timeout or current is None:
        return None
    want = keepalive_time_for(idle_timeout)
    if want < BOUNDS["tcp_keepalive_time"].low or current <= want:
        return None
    return want


def tw_buckets(current: int | None, timewait_sockets: int,
               close_rate: float | None = None) -> int | None:
    """With a measured active-close rate (diagnose.rates): rate × 60 s with
    headroom; without one, twice the limit or twice the timewait-type
    sockets, whichever is more. Rounded up to 1024, at most 2^21; None
    when that raises nothing.

    >>> tw_buckets(8, 6), tw_buckets(1000, 900), tw_buckets(1 << 21, 10), tw_buckets(None, 5)
    (1024, 2048, None, None)
    >>> tw_buckets(512, 512, close_rate=7600.0)  # nginx under ab, measured
    684032
    """
    if not current:
        return None
    if close_rate is not None:
        from .rates import buckets_for
        want = max(buckets_for(close_rate), 2 * current)
    else:
        want = max(2 * current, 2 * timewait_sockets)
    value = min(-(-want // TW_BUCKETS_STEP) * TW_BUCKETS_STEP, BOUNDS["tcp_max_tw_buckets"].high)
    return value if value > current else None


def max_orphans(current: int | None, tcp_mem: tuple[int, ...] | None) -> int | None:
    """Doubled, at most what tcp_mem can hold; None without tcp_mem (the
    ceiling is unknown) or when that raises nothing.

    >>> max_orphans(100_000, (1, 2, 10_000_000)), max_orphans(100_000, (1, 2, 300_000))
    (200000, None)
    """
    cap = max_orphans_ceiling(tcp_mem)
    if not current or cap is None:
        return None
    value = min(2 * current, cap)
    return value if value > current else None


def ct_close_wait(current: int | None, established: int | None) -> int | None:
    """3600 s (at most the established timeout), when that is longer.

    >>> ct_close_wait(60, 432000), ct_close_wait(60, 1800), ct_close_wait(3600, 432000)
    (3600, 1800, None)
    """
    if current is None:
        return None
    value = CT_CLOSE_WAIT if not established else min(CT_CLOSE_WAIT, int(established))
    return value if value > current else None


def ct_established(current: int | None) -> int | None:
    """One day, when it is longer (the default is five).

    >>> ct_established(432000), ct_established(7440)
    (86400, None)
    """
    if current is None or current <= CT_ESTABLISHED:
        return None
    return CT_ESTABLISHED


def ct_max(current: int | None) -> int | None:
    """Doubled."""
    return 2 * int(current) if current else None
