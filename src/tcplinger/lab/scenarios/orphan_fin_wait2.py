"""orphan-fin-wait-2 (seed 003): the client close()s, the server never
does. The client's FIN_WAIT2 is an orphan: tcp_fin_timeout (or the
socket's TCP_LINGER2) bounds it, and it ends without TIME_WAIT.

Kernel paths: tcp_close() (net/ipv4/tcp.c) hands an orphan in FIN_WAIT2
to a timewait-type socket for tcp_fin_time() = max(linger2 or
tcp_fin_timeout, 3.5 RTO) when that is at most 60 s (TCP_TIMEWAIT_LEN);
longer, the full socket waits the excess on its keepalive timer first
(tcp_keepalive_timer(), net/ipv4/tcp_timer.c). TCP_LINGER2 < 0 aborts
instead of waiting (tcp_rcv_state_process(), FIN_WAIT1 case); values
above 120 s are capped (TCP_FIN_TIMEOUT_MAX).
"""

from __future__ import annotations

from ..checks import Diagnosed, Fact, Held, Never, Reaches, Sent
from ..params import Param
from ..scenario import Scenario
from ._common import (CLOSE_WAIT, FIN_WAIT2, LINGER2_MAX_S, fin_timeout, first, time_in)

NAME = "orphan-fin-wait-2"


def lifetime(p: dict) -> float:
    """The FIN_WAIT2 lifetime the kernel should give (before timer slack);
    0 means 3.5 RTO (~0.7 s here); negative: abort."""
    if p["linger2"] < 0:
        return -1.0
    if p["linger2"] > 0:
        return float(min(p["linger2"], LINGER2_MAX_S))
    return float(max(p["tcp_fin_timeout"], 0))


def script(run) -> None:
    p = run.p
    c = run.connect(client_opts={"linger2": p["linger2"]} if p["linger2"] else None)
    run.wait(0.3)
    run.do("client", "close", c.client, key=c.client_key)
    life = lifetime(p)
    if life >= 0:
        run.wait(min(1.0, max(life, 0.5) / 2), "lab.wait.state", side="client",
                 state="FIN_WAIT2")
        run.diagnose("fin_wait2")
    run.wait_gone("client", c.client_key, timeout=max(life, 1) * 1.2 + 4)
    run.diagnose("after")


def horizon(p: dict) -> float:
    return max(lifetime(p), 1) * 1.2 + 8


def checks(p: dict, tol) -> list:
    life = lifetime(p)
    out = [Held("server", "CLOSE_WAIT", 0.5, still_held=True),
           Never("client", "TIME_WAIT"),
           Diagnosed("close-wait-leak", "server")]
    if life < 0:
        out += [Sent("client", "R"), Never("client", "FIN_WAIT2")]
        return out
    if life < 1:  # 3.5 RTO: at least 3.5 x TCP_RTO_MIN
        out.append(Held("client", "FIN_WAIT2", 0.7 - tol.interval, 2.0))
    else:
        out.append(Held("client", "FIN_WAIT2", *tol.about(life)))
    if life > 60:
        out.append(Fact("minisock_s", "between", between=tol.about(60)))
    out += [Fact("full_fin_wait2_s", "between",
                 between=(0, max(0.05, life - 60 + tol.hi(life - 60) - (life - 60)))
                 if life > 60 else (0, 0.05)),
            Diagnosed("orphan-fin-wait-2", "client", at="fin_wait2")]
    return out


def derive(observed, p: dict) -> dict:
    c = first(observed, "client")
    if c is None:
        return {}
    return {"fin_wait2_s": time_in(c, FIN_WAIT2, observed.horizon_s),
            "minisock_s": time_in(c, FIN_WAIT2, observed.horizon_s, minisock=True),
            "full_fin_wait2_s": time_in(c, FIN_WAIT2, observed.horizon_s, minisock=False)}


SCENARIO = Scenario(
    name=NAME, seeds=("003",),
    params=(fin_timeout("client", 5),
            Param("linger2", 0, "int", -1, 600, unit="s")),
    script=script, checks=checks, horizon=horizon, derive=derive,
    moments=("fin_wait2", "after", "end"))
