"""orphan-fin-wait-2: closed by their process, waiting for the peer's FIN.

Bounded by the fin time T (TCP_LINGER2, else tcp_fin_timeout): see
diagnose.lifetimes for the two phases above 60 s. Time left comes from
each socket's timer: a minisocket's timewait timer is what is left; a full
orphan's keepalive timer is what is left of its first phase, and the
minisocket phase follows.

Measured on Linux 6.18: T = 5 -> gone after 5 s; T = 70 -> keepalive timer
10 s, then a minisocket for 10 s (20 s in all); T = 90 -> 30 s + 30 s;
TCP_LINGER2 = 3 on one socket -> a 3 s minisocket with T = 60;
TCP_LINGER2 = 100 -> a 40 s keepalive timer; TCP_LINGER2 = -1 -> reset at
close(), no FIN_WAIT2 at all. With tcp_max_tw_buckets reached, close()
destroyed the orphan at once without a RST (TCPTimeWaitOverflow +1).
"""

from __future__ import annotations

import numpy as np

from ...model.states import TcpState
from ...model.table import median
from ..evidence import duration, top_local_ports, top_remote
from ..finding import Confidence, Fix, FixKind
from .. import sysctl_proposals as propose
from ..lifetimes import DEFAULT_FIN_TIMEOUT, fin_wait2_lifetime, fin_wait2_phases
from ..metadata import BY_ID
from ..rule_finding import RuleFinding
from ..sysctl_bounds import BOUNDS
from .. import culprits
from ._common import (T as text, end_owner, level, other_end_facts, other_ends, sysctl_fix,
                      young)
from .keepalive_timeout_fin_wait2 import server_orphans

META = BY_ID["orphan-fin-wait-2"]
SLACK_S = 1.0  # timer rounding and the time between dump and now


def time_left(ctx, rows: np.ndarray, fin: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seconds left per row (NaN unknown), and masks of rows whose timer is
    longer than the namespace's fin time allows (per-socket TCP_LINGER2, or
    the sysctl lowered after they closed), and of full orphans that should
    already be minisockets."""
    full_s, mini_s = fin_wait2_phases(fin)
    r = ctx.rows[rows]
    left_timer = r["expires_ms"] / 1000.0
    mini = r["timewait"] & (r["timer"] == 3)
    full_ka = ~r["timewait"] & (r["timer"] == 2)
    left = np.full(len(rows), np.nan)
    left[mini] = left_timer[mini]
    left[full_ka] = left_timer[full_ka] + mini_s
    too_long = (mini & (left_timer > mini_s + SLACK_S)) | \
               (full_ka & (left_timer > full_s + SLACK_S))
    early_full = full_ka & (full_s == 0)
    return left, too_long, early_full


def evaluate(ctx, th, world, limit):
    idx = ctx.indices(ctx.in_state(TcpState.FIN_WAIT2) & (ctx.inode == 0))
    # orphans on a listening port are keepalive-timeout-fin-wait-2's (seed 002)
    idx = np.setdiff1d(idx, server_orphans(ctx), assume_unique=True)
    if len(idx) == 0:
        return []
    return OrphanFinWait2(ctx, th, world, limit, idx).findings()


class OrphanFinWait2(RuleFinding):
    """A namespace's orphaned FIN_WAIT2 sockets, against their fin time."""

    meta = META

    def measure(self) -> None:
        ctx, idx = self.ctx, self.rows
        self.n = int(len(idx))
        self.fin = ctx.sysctl("tcp_fin_timeout", DEFAULT_FIN_TIMEOUT)
        self.full_s, self.mini_s = fin_wait2_phases(self.fin)
        self.life = fin_wait2_lifetime(self.fin)
        self.left, self.too_long, self.early_full = time_left(ctx, idx, self.fin)
        self.known = ~np.isnan(self.left)
        self.minis = int(np.count_nonzero(ctx.rows["timewait"][idx]))
        ages = ctx.age[idx]
        self.over_age = int(np.count_nonzero(~np.isnan(ages) & (ages > self.life + SLACK_S)
                                             & ~ctx.age_is_lower_bound[idx]))
        # only orphans min_age after close() count (their age is a lower
        # bound: since close()); none: closed just now, the peer may still close
        self.lasting, self.transient = young(ctx, idx, self.th["min_age"])
        self.groups = culprits.groups(ctx, idx)
        self.peers = top_remote(ctx, idx)
        self.ports = top_local_ports(ctx, idx)
        self.here = other_ends(ctx, self.world, idx)
        self.tw_total = int(np.count_nonzero(ctx.rows["timewait"]))
        self.buckets = ctx.sysctl("tcp_max_tw_buckets")

    def severity(self):
        return level(self.lasting, self.th["warning_count"], self.th["critical_count"])

    def evidence(self) -> dict:
        left, known = self.left, self.known
        return {
            "orphan_fin_wait2": self.n,
            "minisockets": self.minis,
            "full_sockets": self.n - self.minis,
            "tcp_fin_timeout": self.fin,
            "phases_s": {"full": self.full_s, "minisocket": self.mini_s},
            "lifetime_s": self.life,
            "time_left_s": ({"min": round(float(np.nanmin(left)), 3),
                             "median": round(float(median(left[known])), 3),
                             "max": round(float(np.nanmax(left)), 3)} if known.any() else None),
            "older_than_min_age": self.lasting,
            "min_age_s": self.th["min_age"],
            "groups": [g.to_json() for g in self.groups[:10]],
            "connects_sample": culprits.connects_json(self.ctx),
            "timer_longer_than_fin_timeout": int(np.count_nonzero(self.too_long)),
            "full_orphans_below_60s": int(np.count_nonzero(self.early_full)),
            "older_than_lifetime": self.over_age,
            "timewait_type_sockets": self.tw_total,
            "tcp_max_tw_buckets": self.buckets,
            "peers": self.peers,
            "local_ports": self.ports,
            "other_end": self.here,
        }

    def title(self):
        return self.T("title", n=self.n, life=duration(self.life))

    def anomalies(self) -> list:
        """What the timers or ages show that the fin time cannot explain."""
        T, fin, out = self.T, self.fin, []
        if self.too_long.any():
            out.append(T("anomaly.timer", n=int(np.count_nonzero(self.too_long)), fin=fin))
        if self.early_full.any():
            out.append(T("anomaly.full", n=int(np.count_nonzero(self.early_full)), fin=fin))
        if self.over_age:
            out.append(T("anomaly.age", n=self.over_age, life=duration(self.life)))
        return out

    def facts(self) -> list:
        T, n, left = self.T, self.n, self.left
        facts = [T("fact.count", n=n, minis=self.minis, full=n - self.minis)]
        if self.known.any():
            facts.append(T("fact.left", lo=duration(float(np.nanmin(left))),
                           med=duration(float(median(left[self.known]))),
                           hi=duration(float(np.nanmax(left)))))
        if self.transient:
            facts.append(text("rule.common.young", min_age=duration(self.th["min_age"]), n=n))
        facts += culprits.group_facts(self.ctx, self.groups)
        if self.buckets:
            facts.append(T("fact.buckets", tw=self.tw_total, buckets=self.buckets))
        return facts + other_end_facts(self.here) + self.anomalies()

    def cause(self) -> list:
        cause = [self.T("cause")]
        if any(h["state"] == "CLOSE_WAIT" for h in self.here):
            h = next(h for h in self.here if h["state"] == "CLOSE_WAIT")
            cause.append(self.T("cause.peer_here", netns=h["netns"], who=end_owner(h)))
        return cause

    def lifetime(self) -> list:
        if self.fin <= 60:
            lifetime = [self.T("life.short", fin=self.fin)]
        else:
            lifetime = [self.T("life.long", fin=self.fin, full=duration(self.full_s),
                               mini=duration(self.mini_s), life=duration(self.life))]
        return lifetime + [self.T("life.ends")]

    def fixes(self) -> list:
        T, fin = self.T, self.fin
        fixes = culprits.group_fixes(self.ctx, self.groups) + [Fix(FixKind.OPS, T("fix.peers"))]
        # Not below the floor (sysctl_bounds): a late FIN must still find its socket.
        value = propose.fin_timeout(self.ctx.sysctl("tcp_fin_timeout"))
        if value is not None:
            fixes.append(sysctl_fix(
                T("fix.fin_timeout", n=self.n, fin=fin, value=value, life=duration(self.life),
                  new_life=duration(fin_wait2_lifetime(value)),
                  low=BOUNDS["tcp_fin_timeout"].low),
                "tcp_fin_timeout", value, fin))
        return fixes + [Fix(FixKind.SOCKET, T("fix.linger2")),
                        Fix(FixKind.APP, T("fix.server_close"))]

    def confidence(self):
        if self.transient:
            return Confidence.LOW, text("rule.common.conf.young",
                                        min_age=duration(self.th["min_age"]))
        if self.anomalies():
            return Confidence.MEDIUM, self.T("conf.anomaly")
        if self.here:
            return Confidence.HIGH, self.T("conf.peer_here")
        return Confidence.HIGH, self.T("conf.timers")
