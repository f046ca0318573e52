"""Which series grow, and what they run into (pure): the analysis behind
``tcplinger history`` and ``top``'s growth panel.

Limits, per kind of series:

* a lingering state held by one owner (``8 42/java``: CLOSE_WAIT of pid 42)
  runs into the process's fd limit (RLIMIT_NOFILE soft limit): every such
  socket holds a descriptor; "current" is the process's open fds.
* TIME_WAIT of a namespace runs into ``tcp_max_tw_buckets`` (beyond it the
  kernel destroys new TIME_WAIT sockets at once: TCPTimeWaitOverflow).
* all connections of a namespace are bounded by the ephemeral port range
  for outbound connections to one destination (an upper bound of what a
  single destination can use; ``ip_local_port_range``).

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


def namespace_limits(by_netns_state: dict, kernel: dict, *, window: float | None = None,
                     **fit_args) -> list[GrowthFinding]:
    """TIME_WAIT against tcp_max_tw_buckets and connections against the
    port range, per namespace. ``by_netns_state``: {(netns, state): (t, v)};
    ``kernel``: {(netns, name): value} (Store.kernel_latest())."""
    out = []
    namespaces = {ns for ns, _ in by_netns_state}
    for ns in sorted(namespaces):
        tw = by_netns_state.get((ns, TIME_WAIT))
        if tw is not None:
            t, v = _window(np.asarray(tw[0]), np.asarray(tw[1], float), window)
            g = fit(t, v, **fit_args)
            limit = kernel.get((ns, "tcp_max_tw_buckets"))
            if g.growing:
                out.append(GrowthFinding(f"{ns} TIME_WAIT", TIME_WAIT, None, ns, g, float(v[-1]),
                                         "tcp_max_tw_buckets", limit,
                                         time_to_limit(g, v[-1], limit)))
        conns = [(t, v) for (n, s), (t, v) in by_netns_state.items() if n == ns and s != LISTEN]
        if conns:
            t = np.asarray(conns[0][0])
            total = np.sum([np.asarray(v, float) for _, v in conns], axis=0)
            t, total = _window(t, total, window)
            g = fit(t, total, **fit_args)
            limit = kernel.get((ns, "ephemeral_ports"))
            if g.growing and limit:
                out.append(GrowthFinding(f"{ns} connections", None, None, ns, g, float(total[-1]),
                                         "ephemeral ports", limit,
                                         time_to_limit(g, total[-1], limit)))
    return out
