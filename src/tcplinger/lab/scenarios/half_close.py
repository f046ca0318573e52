"""half-close-fin-wait-2 (seed 003): the client shutdown(SHUT_WR)s and
keeps its descriptor; later its process exits.

While a process holds it, FIN_WAIT2 has no timer at all: tcp_fin_timeout
applies to orphans only (tcp_rcv_state_process(): the FIN_WAIT2 timer is
armed only for a SOCK_DEAD socket). When the process exits, tcp_close()
orphans it and the timeout starts from that moment.
"""

from __future__ import annotations

import time

from ..checks import Diagnosed, Fact, Held, Never
from ...model.params import Param
from ..scenario import Scenario
from ._common import FIN_WAIT2, fin_timeout, first, time_in

NAME = "half-close-fin-wait-2"


def script(run) -> None:
    p = run.p
    c = run.connect()
    run.wait(0.3)
    t_shut = run.do("client", "shutdown", c.client, key=c.client_key, how="wr")["t"]
    run.wait(p["hold"] / 2, "lab.wait.hold", side="client")
    run.diagnose("half_closed")
    run.wait(t_shut + p["hold"] - time.monotonic(), "lab.wait.hold", side="client")
    t_exit = run.exit("client")
    if t_exit is not None:
        run.facts["process_held_s"] = round(t_exit - t_shut, 3)
    run.wait_gone("client", c.client_key, timeout=max(p["tcp_fin_timeout"], 1) * 1.2 + 4)
    run.diagnose("after_exit")


def horizon(p: dict) -> float:
    return p["hold"] + max(p["tcp_fin_timeout"], 1) * 1.2 + 8


def checks(p: dict, tol) -> list:
    life = max(p["tcp_fin_timeout"], 0.7)
    return [Fact("process_held_s", ">=", p["hold"]),
            Fact("owned_vs_process_s", "between", between=(-0.1, 0.15)),
            Fact("orphan_fin_wait2_s", "between", between=tol.about(life)),
            Never("client", "TIME_WAIT"),
            Held("server", "CLOSE_WAIT", 0.5, still_held=True),
            Diagnosed("half-closed-fin-wait-2", "client", at="half_closed"),
            Diagnosed("orphan-fin-wait-2", "client", at="half_closed", present=False)]


def derive(observed, p: dict) -> dict:
    c = first(observed, "client")
    if c is None:
        return {}
    h = observed.horizon_s
    owned = time_in(c, FIN_WAIT2, h, orphan=False)
    out = {"owned_fin_wait2_s": owned,
           "orphan_fin_wait2_s": time_in(c, FIN_WAIT2, h, orphan=True)}
    if "process_held_s" in observed.facts:
        # FIN_WAIT2 began when the FIN was acked (one RTT after shutdown())
        # and, owned, lasted as long as the process held it (its exit, after
        # it answered the lab, takes a few ms to tens of ms under load).
        out["owned_vs_process_s"] = round(owned - observed.facts["process_held_s"], 3)
    return out


SCENARIO = Scenario(
    name=NAME, seeds=("003",),
    params=(fin_timeout("client", 3),
            Param("hold", 6.0, "float", minimum=0.5, maximum=3600, unit="s")),
    script=script, checks=checks, horizon=horizon, derive=derive,
    moments=("half_closed", "after_exit", "end"))
