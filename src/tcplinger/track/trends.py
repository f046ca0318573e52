"""Which series grow, and what they run into (pure): the analysis behind
``tcplinger history`` and ``top``'s growth panel.

Limits, per kind of series:

* a lingering state held by one owner (``8 42/java``: CLOSE_WAIT of pid 42)
  runs into the process's fd limit (RLIMIT_NOFILE soft limit): every such
  socket holds a descriptor; "current" is the process's open fds.
* TIME_WAIT of a namespace runs into ``tcp_max_tw_buckets`` (beyond it the
  kernel destroys new TIME_WAIT sockets at once: TCPTimeWaitOverflow).
* the local ports of the ephemeral range held towards the busiest remote
  port of a namespace (track/series.busiest_remote_port, written by watch
  at each full dump) run into ``ip_local_port_range``: connect() runs out
  per destination, and a remote port's count is an upper bound of each of
  its destinations'. A server's accepted sockets and loopback's server ends
  are not counted (they hold the listening port, not an ephemeral one).

>>> import numpy as np
>>> t = np.arange(0, 3 * 3600 + 1, 60.0)
>>> series = {"8 1234/java": (t, 100 + 12 * t / 60)}
>>> f = growing(series, owners={"1234/java": (1234, "java", 65536, 2300)})[0]
>>> f.state, f.owner, round(f.growth.per_minute), f.limit_name, f.limit, round(f.ttl / 3600)
(8, '1234/java', 12, 'fd limit', 65536, 88)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.states import TcpState
from .growth import Growth, fit, time_to_limit
from .series import BUSIEST_PORT

TIME_WAIT = int(TcpState.TIME_WAIT)
LISTEN = int(TcpState.LISTEN)


@dataclass(frozen=True)
class GrowthFinding:
    key: str  # the series key
    state: int | None
    owner: str | None
    netns: int | None
    growth: Growth
    current: float
    limit_name: str | None
    limit: float | None
    ttl: float | None  # seconds to the limit


def _window(times, values, window: float | None):
    if window is None or len(times) == 0:
        return times, values
    keep = times >= times[-1] - window
    return times[keep], values[keep]


def growing(by_state_owner: dict, *, owners: dict | None = None, window: float | None = None,
            **fit_args) -> list[GrowthFinding]:
    """Growth of each ``"state owner"`` series (Store.series(by="state_owner")),
    with the owner's fd limit where known; fastest first."""
    owners = owners or {}
    out = []
    for key, (t, v) in by_state_owner.items():
        state_text, _, owner = str(key).partition(" ")
        t, v = _window(np.asarray(t), np.asarray(v, float), window)
        g = fit(t, v, **fit_args)
        if not g.growing:
            continue
        limit = current = None
        name = None
        info = owners.get(owner)
        if info is not None and info[2]:
            name, limit = "fd limit", info[2]
            current = info[3] if info[3] is not None else v[-1]
        out.append(GrowthFinding(key, int(state_text), owner or None, None, g,
                                 float(current if current is not None else v[-1]), name, limit,
                                 time_to_limit(g, current if current is not None else v[-1],
                                               limit)))
    return sorted(out, key=lambda f: -f.growth.slope)


def namespace_limits(by_netns_state: dict, kernel: dict, busiest: dict | None = None, *,
                     window: float | None = None, **fit_args) -> list[GrowthFinding]:
    """TIME_WAIT against tcp_max_tw_buckets and the busiest remote port's
    ephemeral ports against the port range, per namespace.
    ``by_netns_state``: {(netns, state): (t, v)}; ``kernel``: {(netns, name):
    value} (Store.kernel_latest()); ``busiest``: Store.counter_series(start,
    [BUSIEST_PORT]), {netns: (t, {BUSIEST_PORT: v})}, NaN where no full dump
    had counted it yet (a database of a watch before it: no projection)."""
    out = []
    for ns in sorted({ns for ns, _ in by_netns_state}):
        tw = by_netns_state.get((ns, TIME_WAIT))
        if tw is not None:
            t, v = _window(np.asarray(tw[0]), np.asarray(tw[1], float), window)
            g = fit(t, v, **fit_args)
            limit = kernel.get((ns, "tcp_max_tw_buckets"))
            if g.growing:
                out.append(GrowthFinding(f"{ns} TIME_WAIT", TIME_WAIT, None, ns, g, float(v[-1]),
                                         "tcp_max_tw_buckets", limit,
                                         time_to_limit(g, v[-1], limit)))
        found = (busiest or {}).get(ns)
        limit = kernel.get((ns, "ephemeral_ports"))
        if found is None or not limit or BUSIEST_PORT not in found[1]:
            continue
        t, v = np.asarray(found[0]), np.asarray(found[1][BUSIEST_PORT], float)
        known = ~np.isnan(v)
        t, v = _window(t[known], v[known], window)
        if not len(v):
            continue
        g = fit(t, v, **fit_args)
        if g.growing:
            out.append(GrowthFinding(f"{ns} {BUSIEST_PORT}", None, None, ns, g, float(v[-1]),
                                     "ephemeral ports", limit, time_to_limit(g, v[-1], limit)))
    return out
