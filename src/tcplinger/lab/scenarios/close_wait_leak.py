"""close-wait-leak (seed 004): the server never close()s after EOF.

What can end its CLOSE_WAIT is keepalive, and only if SO_KEEPALIVE is on
(off by default, socket(7)): the timer (tcp_keepalive_timer(),
net/ipv4/tcp_timer.c) probes after TCP_KEEPIDLE / tcp_keepalive_time of
idleness and gives up after TCP_KEEPCNT unanswered probes TCP_KEEPINTVL
apart. So, measured here: with the peer *alive* (it half-closed and keeps
its socket) probes are answered and CLOSE_WAIT never ends; with the peer
*gone* (its orphaned FIN_WAIT2 expired) the first probe gets a RST and
CLOSE_WAIT ends at idle time; only a *silent* peer (packets dropped, here
by nftables on the router) gives the seed's idle + intvl x probes.
"""

from __future__ import annotations

from ..checks import Diagnosed, Held, Sent
from ...model.params import Param
from ..scenario import Scenario
from ._common import CLOSE_WAIT, fin_timeout, first, time_in

NAME = "close-wait-leak"

SILENCE = """table inet tl_lab {
    chain forward {
        type filter hook forward priority 0; policy accept;
        counter drop
    }
}
"""


def _opts(p):
    if not p["keepalive"]:
        return None
    out = {"keepalive": 1}
    for name in ("keepidle", "keepintvl", "keepcnt"):
        if p[name]:
            out[name] = p[name]
    return out


def expected(p: dict) -> tuple[str, float | None]:
    """("held", None) or ("ends", seconds after CLOSE_WAIT began)."""
    if not p["keepalive"] or p["peer"] == "alive":
        return "held", None
    idle, intvl, cnt = p["keepidle"], p["keepintvl"], p["keepcnt"]
    if p["peer"] == "gone":
        return "ends", float(idle)
    return "ends", float(idle + intvl * cnt)


def script(run) -> None:
    p = run.p
    c = run.connect(server_opts=_opts(p))
    run.peer("server").call("watch", name=c.server, mode="drain")  # reads EOF, never closes
    run.wait(0.3)
    if p["peer"] == "alive":
        run.do("client", "shutdown", c.client, key=c.client_key, how="wr")
    else:
        run.do("client", "close", c.client, key=c.client_key)
    run.wait_state("server", c.server_key, [CLOSE_WAIT], 2)
    if p["peer"] == "silent":
        run.wait(0.2)
        run.nft("router", SILENCE)
        run.facts["_dropper"] = "nftables"
    run.wait(min(1.0, p["keepidle"] / 2 if p["keepalive"] else 1.0), "lab.wait.state",
             side="server", state="CLOSE_WAIT")
    run.diagnose("leak")
    kind, life = expected(p)
    if kind == "ends":
        run.wait_gone("server", c.server_key, timeout=life * 1.3 + 4)
    else:
        run.wait(run.left() - 1.0, "lab.wait.state", side="server", state="CLOSE_WAIT")


def horizon(p: dict) -> float:
    kind, life = expected(p)
    if kind == "ends":
        return life * 1.3 + 8
    return max(p["keepidle"] + p["keepintvl"] * p["keepcnt"], 2) + 6 if p["keepalive"] else 8


def checks(p: dict, tol) -> list:
    kind, life = expected(p)
    out = [Diagnosed("close-wait-leak", "server", at="leak")]
    if kind == "held":
        out.append(Held("server", "CLOSE_WAIT", 2.0, still_held=True))
        if p["keepalive"]:  # alive: probed and answered
            out.append(Sent("server", ".", tag="keepalive"))
        else:
            out.append(Sent("server", ".", tag="keepalive", least=0, most=0))
        return out
    out.append(Held("server", "CLOSE_WAIT", tol.lo(life), tol.hi(life) + p["keepintvl"] * 0.1))
    if p["peer"] == "gone":
        out += [Sent("server", ".", tag="keepalive"), Sent("client", "R")]
    else:
        out += [Sent("server", ".", tag="keepalive", least=p["keepcnt"], dropped=True),
                Sent("client", "R", least=0, most=0)]
    return out


def derive(observed, p: dict) -> dict:
    s = first(observed, "server")
    return {} if s is None else {"close_wait_s": time_in(s, CLOSE_WAIT, observed.horizon_s)}


SCENARIO = Scenario(
    name=NAME, seeds=("004",),
    params=(Param("keepalive", 1, "bool"),
            Param("keepidle", 2, "int", minimum=1, maximum=32767, unit="s"),
            Param("keepintvl", 1, "int", minimum=1, maximum=32767, unit="s"),
            Param("keepcnt", 3, "int", minimum=1, maximum=127, unit="count"),
            Param("peer", "gone", "choice", choices=("alive", "gone", "silent")),
            fin_timeout("client", 1)),
    script=script, checks=checks, horizon=horizon, derive=derive,
    moments=("leak", "end"))
