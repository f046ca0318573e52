"""port-exhaustion: one client, one server port, a narrow
ip_local_port_range. Each connection is closed by the client first, so its
port sits in TIME_WAIT for 60 s; once every port of the range does,
connect() fails with EADDRNOTAVAIL (__inet_hash_connect(),
net/ipv4/inet_hashtables.c). With tcp_tw_reuse=1 (and timestamps on) a
connect may take over a TIME_WAIT 4-tuple older than tcp_tw_reuse_delay
(tcp_twsk_unique(), net/ipv4/tcp_ipv4.c); the default 2 allows that for
loopback only, so it behaves like 0 on the lab's veths.
"""

from __future__ import annotations

from ..checks import Diagnosed, Fact
from ...model.params import Param
from ..scenario import Scenario
from ._common import TIME_WAIT

NAME = "port-exhaustion"


def nports(p: dict) -> int:
    lo, hi = (int(x) for x in str(p["ip_local_port_range"]).split())
    return hi - lo + 1


def script(run) -> None:
    p = run.p
    run.listen()
    run.peer("server").call("serve", listener="l", mode="close_on_eof")
    reply = run.peer("client").call("burst", addr=run.addr.server, port=run.addr.server_port,
                                    count=p["connections"], wait_eof=True, keep_going=True,
                                    gap=p["gap"], timeout=5,
                                    wait=p["connections"] * (p["gap"] + 6) + 10)
    run.facts["connected"] = len(reply["ports"])
    run.facts["eaddrnotavail"] = sum(1 for e in reply["errors"] if e["error"] == "EADDRNOTAVAIL")
    run.facts["other_errors"] = sum(1 for e in reply["errors"] if e["error"] != "EADDRNOTAVAIL")
    for e in reply["errors"][:1]:
        run.note("client", "lab.note.connect_failed", t=e["t"], error=e["error"])
    run.diagnose("exhausted")
    run.wait(0.5)


def horizon(p: dict) -> float:
    return p["connections"] * (p["gap"] + 0.2) + 8


def checks(p: dict, tol) -> list:
    n, ports = p["connections"], nports(p)
    out = [Fact("other_errors", "==", 0),
           Diagnosed("ephemeral-port-exhaustion", "client", at="exhausted")]
    if p["tcp_tw_reuse"] == 1 and p["gap"] * ports >= 1.0:
        out += [Fact("connected", "==", n), Fact("eaddrnotavail", "==", 0),
                Fact("reused_tuples", ">=", max(0, n - ports))]
    else:
        out += [Fact("connected", "==", min(n, ports)),
                Fact("eaddrnotavail", "==", max(0, n - ports)),
                Fact("reused_tuples", "==", 0)]
    return out


def derive(observed, p: dict) -> dict:
    seen: dict = {}
    for s in observed.sockets:
        if s.side == "client":
            seen[(s.local, s.remote)] = seen.get((s.local, s.remote), 0) + 1
    shortest_tw = [sp.end_s - sp.start_s for s in observed.sockets if s.side == "client"
                   for sp in s.spans if sp.state == TIME_WAIT and sp.end_s is not None]
    return {"reused_tuples": sum(v - 1 for v in seen.values()),
            "time_wait_cut_short": sum(1 for d in shortest_tw if d < 59)}


SCENARIO = Scenario(
    name=NAME, seeds=("004",),
    params=(Param("ip_local_port_range", "40000 40003", "range", minimum=1024, maximum=65535,
                  sysctl="net.ipv4.ip_local_port_range", roles=("client",)),
            Param("tcp_tw_reuse", 0, "int", minimum=0, maximum=2,
                  sysctl="net.ipv4.tcp_tw_reuse", roles=("client",)),
            Param("connections", 6, "int", minimum=1, maximum=5000, unit="count"),
            Param("gap", 0.5, "float", minimum=0, maximum=60, unit="s")),
    script=script, checks=checks, horizon=horizon, derive=derive,
    moments=("exhausted", "end"))
