"""keepalive-timeout-fin-wait-2: a server's idle keep-alive timeout closes
connections to clients that never send their FIN (seed 002, Apache's
"Connections in the FIN_WAIT_2 state": buggy clients and persistent
connections).

The pattern, measured with Apache 2.4 (event MPM, KeepAliveTimeout 2) and
20 clients that read their response and never close (docs/real-software.md):
Apache sent its FINs 2.19 s after the responses, held the sockets in
FIN_WAIT2 for its lingering close, closed them at 4.25 s; from then on
they are orphaned FIN_WAIT2 on the listening port, and the clients hold
CLOSE_WAIT. nginx (keepalive_timeout 2) with ``requests.Session`` clients
that are never closed left the same pattern on its port.

Whether the server closed on an idle timeout at all is read from the
clients where they are visible: a CLOSE_WAIT socket's tcp_info
last_data_recv is the time since the response's last data, last_ack_recv
the time since the server's FIN (nothing arrives after it: the orphan
sends nothing), so their difference is how long the connection sat idle
before the server closed it. Measured (ss -tni, Linux 6.18): Node.js with
keepAliveTimeout 3000 ms 4.0 s; gunicorn's sync worker, which closes each
connection after its response, 0 ms; Apache KeepAliveTimeout 2, 2.2 s.
Below IMMEDIATE_S the server closes after responding (HTTP/1.0, no
keep-alive, Connection: close): no keep-alive timeout to lower. Clients
with SO_KEEPALIVE are left out: the orphan answers their probes, which
moves last_ack_recv.

One finding per listening port: the server (the listener's owner), the
clients where visible (their CLOSE_WAIT in a namespace being looked at),
the bound on this kernel (the orphan lifetime after close(): tcp_fin_timeout,
two phases above 60 s), and the fixes in order: the clients, the server's
keep-alive timeout, tcp_fin_timeout. Only orphans at least ``min_age``
after close() count towards a warning: younger ones are at most INFO.
"""

from __future__ import annotations

import numpy as np

from ...model.states import TcpState
from ...model.table import distinct, median, member
from .. import culprits, process_text
from .. import sysctl_proposals as propose
from ..evidence import age_stats, age_text, duration, endpoint_text, top_remote
from ..finding import Confidence, Fix, FixKind, Severity
from ..lifetimes import DEFAULT_FIN_TIMEOUT, fin_wait2_lifetime
from ..metadata import BY_ID
from ..rule_finding import RuleFinding
from ..sysctl_bounds import BOUNDS
from ._common import PEER_LOOKUPS, end_owner, level, other_ends, sysctl_fix

META = BY_ID["keepalive-timeout-fin-wait-2"]

#: Idle time before the server's FIN below which the server closed right
#: after its response (measured 0 ms for gunicorn, HTTP/1.0); keep-alive
#: timeouts are seconds (Apache 5 s, nginx 75 s, Node.js 5 s by default).
IMMEDIATE_S = 0.5


def idle_before_close(ctx, world, rows) -> np.ndarray:
    """For each visible client of ``rows`` (their other ends in CLOSE_WAIT,
    with tcp_info and no SO_KEEPALIVE), seconds between its last data and
    the server's FIN: tcp_info last_data_recv - last_ack_recv."""
    sel = np.asarray(rows, dtype=np.int64)[:PEER_LOOKUPS]
    ctx_idx, peer_rows = world.peers(ctx, sel)
    out = []
    for k in distinct(ctx_idx[ctx_idx >= 0]).tolist():
        other = world.contexts[k]
        info = other.table.info
        if info is None:
            continue
        j = peer_rows[ctx_idx == k]
        j = j[(other.state[j] == int(TcpState.CLOSE_WAIT)) & info["present"][j]
              & (other.rows["timer"][j] != 2)]  # 2: keepalive timer (SO_KEEPALIVE)
        gap = info["last_data_recv"][j].astype(np.int64) - info["last_ack_recv"][j]
        out.append(np.maximum(gap, 0) / 1000.0)
    return np.concatenate(out) if out else np.zeros(0)


def server_orphans(ctx) -> np.ndarray:
    """Orphaned FIN_WAIT2 rows on a listening port (this rule's, not
    orphan-fin-wait-2's)."""
    if not ctx.listen_ports:
        return np.zeros(0, np.int64)
    listening = np.fromiter(ctx.listen_ports, dtype=np.uint16, count=len(ctx.listen_ports))
    # the orphans first, then their ports: not a port test of every row
    orphans = np.flatnonzero(ctx.in_state(TcpState.FIN_WAIT2) & (ctx.inode == 0))
    return orphans[member(ctx.rows["sport"][orphans], listening)]


def evaluate(ctx, th, world, limit):
    idx = server_orphans(ctx)
    if len(idx) == 0:
        return []
    return [KeepaliveTimeout(ctx, th, world, limit, group.rows, group=group).finding()
            for group in culprits.groups(ctx, idx)]


class KeepaliveTimeout(RuleFinding):
    """One listening port's orphaned FIN_WAIT2 (a culprits.Group)."""

    meta = META

    def __init__(self, ctx, th, world, limit, rows, *, group):
        super().__init__(ctx, th, world, limit, rows)
        self.group = group

    def measure(self) -> None:
        ctx, rows, group = self.ctx, self.rows, self.group
        self.n = int(len(rows))
        self.fin = ctx.sysctl("tcp_fin_timeout", DEFAULT_FIN_TIMEOUT)
        self.life = fin_wait2_lifetime(self.fin)
        self.stats = age_stats(ctx, rows)
        ages = ctx.age[rows]
        self.min_age = self.th["min_age"] or 0.0
        self.old = int(np.count_nonzero(~np.isnan(ages) & (ages >= self.min_age)))
        # the server still holding some, half-closed (its lingering close)
        self.held = int(np.count_nonzero(ctx.in_state(TcpState.FIN_WAIT2) & (ctx.inode != 0)
                                         & (ctx.rows["sport"] == group.port)))
        here = other_ends(ctx, self.world, rows)
        self.clients = [h for h in here if h["state"] == "CLOSE_WAIT"]
        self.client_total = sum(h["count"] for h in self.clients)
        self.peers = top_remote(ctx, rows)
        self.server = group.culprits
        gaps = idle_before_close(ctx, self.world, rows)
        self.idle = ({"median_s": round(float(median(gaps)), 3),
                      "min_s": round(float(gaps.min()), 3), "max_s": round(float(gaps.max()), 3),
                      "clients": int(len(gaps))} if len(gaps) else None)
        # the clients show that the FIN followed the response at once
        self.immediate = self.idle is not None and self.idle["median_s"] < IMMEDIATE_S

    def severity(self) -> Severity:
        if not self.old:  # closed just now: the clients may still close
            return Severity.INFO
        return level(self.old, self.th["warning_count"], self.th["critical_count"])

    def evidence(self) -> dict:
        return {
            "port": self.group.port,
            "orphan_fin_wait2": self.n,
            "held_by_server": self.held,
            "older_than_min_age": self.old,
            "min_age_s": self.min_age,
            "age_since_close": self.stats,
            "server": [c.to_json() for c in self.server],
            "clients": self.clients,
            "clients_close_wait": self.client_total,
            "peers": self.peers,
            "tcp_fin_timeout": self.fin,
            "lifetime_after_close_s": self.life,
            "idle_before_close": self.idle,
            "closed_after_response": self.immediate,
        }

    def title(self):
        return self.T("title_after_response" if self.immediate else "title", n=self.n, where=self.group.where,
                      server=process_text.who_text(self.server, 1))

    def facts(self) -> list:
        T, where = self.T, self.group.where
        facts = [T("fact.count", n=self.n, where=where, age=age_text(self.stats), old=self.old,
                   min_age=duration(self.min_age))]
        if self.server:
            facts.append(T("fact.server", who=process_text.who_text(self.server), where=where))
        if self.held:
            facts.append(T("fact.held", n=self.held))
        if self.clients:
            facts.append(T("fact.clients", n=self.client_total,
                           who=tuple(end_owner(h) for h in self.clients[:3])))
        else:
            facts.append(T("fact.clients_remote", peers=endpoint_text(self.peers)))
        if self.idle is not None:
            facts.append(T("fact.idle_immediate" if self.immediate else "fact.idle",
                           idle=duration(self.idle["median_s"]), n=self.idle["clients"],
                           low=duration(self.idle["min_s"]), high=duration(self.idle["max_s"])))
        return facts

    def cause(self) -> list:
        if self.immediate:
            return [self.T("cause.after_response"), self.T("cause.not_server")]
        return [self.T("cause"), self.T("cause.not_server")]

    def lifetime(self) -> list:
        if self.fin <= 60:
            return [self.T("life.short", fin=self.fin)]
        return [self.T("life.long", fin=self.fin, life=duration(self.life))]

    def fixes(self) -> list:
        T, fin = self.T, self.fin
        fixes = [Fix(FixKind.APP, T("fix.clients"))]
        if not self.immediate:  # no keep-alive timeout closed these
            fixes.append(Fix(FixKind.APP, T("fix.server_timeout")))
        value = propose.fin_timeout(self.ctx.sysctl("tcp_fin_timeout"))
        if value is not None:
            fixes.append(sysctl_fix(T("fix.fin_timeout", fin=fin, value=value,
                                      low=BOUNDS["tcp_fin_timeout"].low,
                                      new_life=duration(fin_wait2_lifetime(value))),
                                    "tcp_fin_timeout", value, fin))
        return fixes

    def confidence(self):
        if self.old == 0:
            return Confidence.LOW, self.T("conf.young", min_age=duration(self.min_age))
        if self.clients:
            return Confidence.HIGH, self.T("conf.clients")
        return Confidence.MEDIUM, self.T("conf.server_only")

    def owners(self) -> tuple:
        return self.server
