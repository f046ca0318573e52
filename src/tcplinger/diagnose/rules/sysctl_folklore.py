"""sysctl-folklore: settings that do not do what people set them for.

Each item is one info finding (``evidence.item`` names it):

* ``fin_timeout_vs_time_wait``: tcp_fin_timeout lowered while TIME_WAIT is
  what there is a lot of. It bounds orphaned FIN_WAIT2 only; TIME_WAIT is
  60 s whatever it says (measured: 60 s with tcp_fin_timeout = 5).
* ``fin_timeout_above_60``: tcp_fin_timeout above 60 s gives an orphan
  2T - 120 s, not T (measured: 70 -> 20 s, 90 -> 60 s).
* ``keepalive_vs_close_wait``: tcp_keepalive_time lowered while CLOSE_WAIT
  sockets without SO_KEEPALIVE exist: it never touches them.
* ``tw_reuse_incoming``: tcp_tw_reuse = 1 while the TIME_WAIT is on the
  server side: tcp_tw_reuse only lets connect() reuse a port
  (tcp_twsk_unique(), net/ipv4/tcp_ipv4.c); it does nothing for accepted
  connections.
* ``removed_key``: a sysctl file sets tcp_tw_recycle (removed in 4.12) or
  tcp_tw_timeout (never in mainline): ``sysctl --system`` reports an error
  and nothing changes. ``legacy_key``: tcp_low_latency / tcp_fack, which
  exist and do nothing.
"""

from __future__ import annotations

import numpy as np

from ...model.states import TcpState
from ...model.table import member
from .. import sysctl_proposals as propose
from ..evidence import duration
from ..finding import Confidence, Fix, FixKind, Severity
from ..lifetimes import DEFAULT_KEEPALIVE_TIME, fin_wait2_lifetime
from ..metadata import BY_ID
from ..sysctl_files import LEGACY, REMOVED
from ..rule_finding import RuleFinding
from ._common import T, at_least, sysctl_fix

META = BY_ID["sysctl-folklore"]
K = "rule.sysctl-folklore."


class FolkloreItem(RuleFinding):
    """One setting that does not do what it is believed to do: its texts
    are given whole (no rows to measure, no sockets to show)."""

    meta = META

    def __init__(self, ctx, item: str, count: int, title, facts, cause, fixes, evidence=None):
        super().__init__(ctx, {}, None, 0, np.zeros(0, np.int64))
        self.item, self.n, self.parts = item, count, (title, facts, cause, fixes)
        self.extra = evidence or {}

    def severity(self):
        return Severity.INFO

    def evidence(self) -> dict:
        return {"item": self.item, **self.extra}

    def title(self):
        return self.parts[0]

    def facts(self) -> list:
        return self.parts[1]

    def cause(self) -> list:
        return self.parts[2]

    def fixes(self) -> list:
        return self.parts[3]

    def confidence(self):
        return Confidence.HIGH, self.T("conf")

    def count(self) -> int:
        return self.n

    def sample(self):
        return None


def _item(ctx, item: str, count: int, title, facts, cause, fixes, evidence=None):
    return FolkloreItem(ctx, item, count, title, facts, cause, fixes, evidence).finding()


def evaluate(ctx, th, world, limit):
    out = []
    tw_min = th["time_wait_count"]
    fin = ctx.sysctl("tcp_fin_timeout")
    tw_idx = ctx.indices(ctx.in_state(TcpState.TIME_WAIT))
    n_tw = int(len(tw_idx))
    if fin is not None and fin < 60 and at_least(n_tw, tw_min):
        out.append(_item(ctx, "fin_timeout_vs_time_wait", n_tw,
                         T(K + "fin_tw.title", fin=fin, n=n_tw),
                         [T(K + "fin_tw.fact", fin=fin, n=n_tw)],
                         [T(K + "fin_tw.cause")],
                         [Fix(FixKind.APP, T("rule.time-wait-pressure.fix.reuse"))],
                         {"tcp_fin_timeout": fin, "time_wait": n_tw}))
    if fin is not None and fin > 60:
        # The same value orphan-fin-wait-2 proposes: one value per setting.
        value = propose.fin_timeout(fin)
        fw2 = int(np.count_nonzero(ctx.in_state(TcpState.FIN_WAIT2) & (ctx.inode == 0)))
        life = fin_wait2_lifetime(fin)
        out.append(_item(ctx, "fin_timeout_above_60", fw2,
                         T(K + "fin_long.title", fin=fin, life=duration(life)),
                         [T(K + "fin_long.fact", fin=fin, full=duration(fin - 60),
                            life=duration(life))],
                         [T(K + "fin_long.cause")],
                         [sysctl_fix(T(K + "fin_long.fix", fin=fin, value=value,
                                       life=duration(life),
                                       new_life=duration(fin_wait2_lifetime(value))),
                                     "tcp_fin_timeout", value, fin)],
                         {"tcp_fin_timeout": fin, "lifetime_s": life}))
    kt = ctx.sysctl("tcp_keepalive_time")
    cw = ctx.indices(ctx.in_state(TcpState.CLOSE_WAIT))
    if kt is not None and kt < DEFAULT_KEEPALIVE_TIME and len(cw):
        without = int(np.count_nonzero(ctx.rows["timer"][cw] != 2))
        if without:
            out.append(_item(ctx, "keepalive_vs_close_wait", without,
                             T(K + "ka.title", kt=duration(kt), n=without),
                             [T(K + "ka.fact", kt=duration(kt), n=without, total=int(len(cw)))],
                             [T(K + "ka.cause")],
                             [Fix(FixKind.APP, T("rule.close-wait-leak.fix.close_on_eof"))],
                             {"tcp_keepalive_time": kt, "close_wait_without_keepalive": without}))
    if ctx.sysctl("tcp_tw_reuse") == 1 and at_least(n_tw, tw_min):
        server = int(np.count_nonzero(member(
            ctx.rows["sport"][tw_idx], np.fromiter(ctx.listen_ports, dtype=np.uint16)
            if ctx.listen_ports else np.zeros(0, np.uint16))))
        if server * 2 > n_tw:
            out.append(_item(ctx, "tw_reuse_incoming", server,
                             T(K + "reuse.title", n=server),
                             [T(K + "reuse.fact", n=server, total=n_tw)],
                             [T(K + "reuse.cause")],
                             [Fix(FixKind.APP, T("rule.time-wait-pressure.fix.client_closes"))],
                             {"tcp_tw_reuse": 1, "server_side_time_wait": server}))
    return out


def evaluate_host(world, th, limit):
    """Settings in sysctl files: once per diagnosis, not per namespace."""
    if not world.contexts:
        return []
    home = world.contexts[0]
    out = []
    for s in world.sysctl_files:
        if s.key in REMOVED and not s.exists:
            since = REMOVED[s.key]
            out.append(_item(home, "removed_key", 0,
                             T(K + "removed.title", name=s.key),
                             [T(K + "removed.fact", name=s.key, value=s.value, path=s.path,
                                line=s.line)],
                             [T(K + ("removed.cause_since" if since else "removed.cause_vendor"),
                                name=s.key, since=since or "-")],
                             [Fix(FixKind.OPS, T(K + "removed.fix", path=s.path, line=s.line))],
                             {"key": s.key, "value": s.value, "path": s.path, "line": s.line,
                              "removed_in": since}))
        elif s.key in LEGACY:
            out.append(_item(home, "legacy_key", 0,
                             T(K + "legacy.title", name=s.key),
                             [T(K + "removed.fact", name=s.key, value=s.value, path=s.path,
                                line=s.line)],
                             [T(K + "legacy.cause", name=s.key)],
                             [Fix(FixKind.OPS, T(K + "removed.fix", path=s.path, line=s.line))],
                             {"key": s.key, "value": s.value, "path": s.path, "line": s.line}))
    return out
