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
from ..evidence import duration, endpoint_text, port_text, top_local_ports, top_remote
from ..finding import Confidence, Fix, FixKind
from .. import sysctl_proposals as propose
from ..lifetimes import DEFAULT_FIN_TIMEOUT, fin_wait2_lifetime, fin_wait2_phases
from ..metadata import BY_ID
from ..sysctl_bounds import BOUNDS
from ._common import T, finding, level, other_end_facts, other_ends, sysctl_fix

META = BY_ID["orphan-fin-wait-2"]
K = "rule.orphan-fin-wait-2."
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
    if len(idx) == 0:
        return []
    n = int(len(idx))
    fin = ctx.sysctl("tcp_fin_timeout", DEFAULT_FIN_TIMEOUT)
    full_s, mini_s = fin_wait2_phases(fin)
    life = fin_wait2_lifetime(fin)
    left, too_long, early_full = time_left(ctx, idx, fin)
    known = ~np.isnan(left)
    minis = int(np.count_nonzero(ctx.rows["timewait"][idx]))
    ages = ctx.age[idx]
    over_age = int(np.count_nonzero(~np.isnan(ages) & (ages > life + SLACK_S)
                                    & ~ctx.age_is_lower_bound[idx]))
    rate = n / life if life > 0 else None
    peers = top_remote(ctx, idx)
    ports = top_local_ports(ctx, idx)
    here = other_ends(ctx, world, idx)
    tw_total = int(np.count_nonzero(ctx.rows["timewait"]))
    buckets = ctx.sysctl("tcp_max_tw_buckets")

    evidence = {
        "orphan_fin_wait2": n,
        "minisockets": minis,
        "full_sockets": n - minis,
        "tcp_fin_timeout": fin,
        "phases_s": {"full": full_s, "minisocket": mini_s},
        "lifetime_s": life,
        "time_left_s": ({"min": round(float(np.nanmin(left)), 3),
                         "median": round(float(np.nanmedian(left)), 3),
                         "max": round(float(np.nanmax(left)), 3)} if known.any() else None),
        "implied_close_rate_per_s": round(rate, 3) if rate is not None else None,
        "timer_longer_than_fin_timeout": int(np.count_nonzero(too_long)),
        "full_orphans_below_60s": int(np.count_nonzero(early_full)),
        "older_than_lifetime": over_age,
        "timewait_type_sockets": tw_total,
        "tcp_max_tw_buckets": buckets,
        "peers": peers,
        "local_ports": ports,
        "other_end": here,
    }
    title = T(K + "title", n=n, life=duration(life))
    facts = [T(K + "fact.count", n=n, minis=minis, full=n - minis)]
    if known.any():
        facts.append(T(K + "fact.left", lo=duration(float(np.nanmin(left))),
                       med=duration(float(np.nanmedian(left))),
                       hi=duration(float(np.nanmax(left)))))
    if rate is not None:
        facts.append(T(K + "fact.rate", n=n, life=duration(life), rate=f"{rate:.3g}"))
    facts.append(T(K + "fact.peers", peers=endpoint_text(peers), ports=port_text(ports)))
    if buckets:
        facts.append(T(K + "fact.buckets", tw=tw_total, buckets=buckets))
    facts += other_end_facts(here)
    anomalies = []
    if too_long.any():
        anomalies.append(T(K + "anomaly.timer", n=int(np.count_nonzero(too_long)), fin=fin))
    if early_full.any():
        anomalies.append(T(K + "anomaly.full", n=int(np.count_nonzero(early_full)), fin=fin))
    if over_age:
        anomalies.append(T(K + "anomaly.age", n=over_age, life=duration(life)))
    facts += anomalies

    cause = [T(K + "cause")]
    if any(h["state"] == "CLOSE_WAIT" for h in here):
        h = next(h for h in here if h["state"] == "CLOSE_WAIT")
        cause.append(T(K + "cause.peer_here", netns=h["netns"],
                       who=f"{h['comm']} (pid {h['pid']})" if h["pid"] else "?"))

    if fin <= 60:
        lifetime = [T(K + "life.short", fin=fin)]
    else:
        lifetime = [T(K + "life.long", fin=fin, full=duration(full_s), mini=duration(mini_s),
                      life=duration(life))]
    lifetime.append(T(K + "life.ends"))

    fixes = [Fix(FixKind.OPS, T(K + "fix.peers"))]
    # Not below the floor (sysctl_bounds): a late FIN must still find its socket.
    value = propose.fin_timeout(ctx.sysctl("tcp_fin_timeout"))
    if value is not None:
        fixes.append(sysctl_fix(
            T(K + "fix.fin_timeout", n=n, fin=fin, value=value, life=duration(life),
              new_life=duration(fin_wait2_lifetime(value)), low=BOUNDS["tcp_fin_timeout"].low),
            "tcp_fin_timeout", value, fin))
    fixes += [Fix(FixKind.SOCKET, T(K + "fix.linger2")),
              Fix(FixKind.APP, T(K + "fix.server_close"))]

    if anomalies:
        conf, reason = Confidence.MEDIUM, T(K + "conf.anomaly")
    elif here:
        conf, reason = Confidence.HIGH, T(K + "conf.peer_here")
    else:
        conf, reason = Confidence.HIGH, T(K + "conf.timers")
    severity = level(n, th["warning_count"], th["critical_count"])
    return [finding(META, ctx, severity=severity, count=n, title=title, evidence=evidence,
                    facts=facts, cause=cause, lifetime=lifetime, fixes=fixes, confidence=conf,
                    confidence_reason=reason, sample=ctx.sample(idx, limit))]
