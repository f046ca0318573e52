"""time-wait-overflow: many short connections, each closed first by the
client, with tcp_max_tw_buckets lowered in the client's namespace.

tcp_time_wait() (net/ipv4/tcp_minisocks.c) gets no timewait socket from
inet_twsk_alloc() once the namespace holds tcp_max_tw_buckets of them: the
connection is then closed at once, skipping TIME_WAIT, and TcpExt
TCPTimeWaitOverflow counts it ("TCP: time wait bucket table overflow").
"""

from __future__ import annotations

from ..checks import Diagnosed, Fact, Reaches
from ...model.params import Param
from ..scenario import Scenario
from ...model.states import TcpState
from ._common import TIME_WAIT

#: A client socket between its close and TIME_WAIT (or the overflow's end).
CLOSING_STATES = {int(TcpState.FIN_WAIT1), int(TcpState.FIN_WAIT2), int(TcpState.CLOSING)}

NAME = "time-wait-overflow"


def script(run) -> None:
    p = run.p
    run.listen()
    run.peer("server").call("serve", listener="l", mode="close_on_eof")
    before = run.tcpext("client")
    reply = run.peer("client").call("burst", addr=run.addr.server, port=run.addr.server_port,
                                    count=p["connections"], wait_eof=True, timeout=5,
                                    wait=p["connections"] * 6 + 10)
    run.note("client", "lab.note.burst", t=reply["t"], n=len(reply["ports"]))
    # every close done (each connection in TIME_WAIT, or gone through the
    # overflow) before the counters are read: on a loaded machine the last
    # FIN can come later than a fixed pause (a run counted 7 of 8 overflows)
    run.wait_for(lambda: not set(run.polled_states("client")) & CLOSING_STATES, 10.0,
                 "lab.wait.settle")
    run.wait(0.2, "lab.wait.settle")  # one more poll of the settled state
    after = run.tcpext("client")
    run.facts["tw_overflow"] = after.get("TCPTimeWaitOverflow", 0) - \
        before.get("TCPTimeWaitOverflow", 0)
    run.facts["tw_created"] = after.get("TW", 0) - before.get("TW", 0)
    run.facts["connections"] = len(reply["ports"])
    run.diagnose("after_burst")


def horizon(p: dict) -> float:
    return 10.0 + p["connections"] * 0.05


def checks(p: dict, tol) -> list:
    n, cap = p["connections"], p["tcp_max_tw_buckets"]
    held = min(n, cap)
    return [Fact("connections", "==", n),
            Reaches("client", "TIME_WAIT", held, exactly=True),
            Fact("tw_overflow", "==", max(0, n - held)),
            Fact("max_concurrent_time_wait", "<=", cap),
            Diagnosed("time-wait-pressure", "client", at="after_burst")]


def derive(observed, p: dict) -> dict:
    events = []
    for s in observed.sockets:
        if s.side != "client":
            continue
        for span in s.spans:
            if span.state == TIME_WAIT:
                events.append((span.start_s, 1))
                events.append((span.end_s if span.end_s is not None else float("inf"), -1))
    peak = cur = 0
    for _, d in sorted(events):
        cur += d
        peak = max(peak, cur)
    return {"max_concurrent_time_wait": peak}


SCENARIO = Scenario(
    name=NAME, seeds=("004",),
    params=(Param("connections", 12, "int", minimum=1, maximum=5000, unit="count"),
            Param("tcp_max_tw_buckets", 4, "int", minimum=0, maximum=1 << 30, unit="count",
                  sysctl="net.ipv4.tcp_max_tw_buckets", roles=("client",))),
    script=script, checks=checks, horizon=horizon, derive=derive,
    moments=("after_burst", "end"))
