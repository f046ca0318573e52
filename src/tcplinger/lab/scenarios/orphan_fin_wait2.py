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

from ..checks import Diagnosed, Fact, Held, Never, Sent
from ...model.params import Param
from ..scenario import Scenario
from ._common import (FIN_WAIT2, LINGER2_MAX_S, fin_timeout, first, time_in)

NAME = "orphan-fin-wait-2"


def configured(p: dict) -> float:
    """tcp_fin_time()'s value before the 3.5 RTO floor: TCP_LINGER2 when
    set (capped at 120 s), else tcp_fin_timeout; negative: abort."""
    if p["linger2"] < 0:
        return -1.0
    if p["linger2"] > 0:
        return float(min(p["linger2"], LINGER2_MAX_S))
    return float(max(p["tcp_fin_timeout"], 0))


def phases(p: dict) -> tuple[float, float]:
    """(seconds as a full socket, seconds as a minisock), measured shape.

    Up to 60 s the orphan is handed to a minisock at once. Above, tcp_close()
    arms the keepalive timer for fin_time - 60 s and, when it fires,
    tcp_keepalive_timer() hands the socket to a minisock for *another*
    fin_time - 60 s (not 60 s): the orphan lives 2 x (fin_time - 60) s in
    all, e.g. 10 s for tcp_fin_timeout=65 and 60 s for 90 (measured,
    docs/kernel-behaviour.md).

    >>> phases({"linger2": 0, "tcp_fin_timeout": 5}), phases({"linger2": 0, "tcp_fin_timeout": 65})
    ((0.0, 5.0), (5.0, 5.0))
    """
    c = max(configured(p), 3.5 * 0.2)
    if c <= 60:
        return 0.0, c
    return c - 60, c - 60


def lifetime(p: dict) -> float:
    """Total FIN_WAIT2 seconds the kernel should give; -1: abort."""
    if configured(p) < 0:
        return -1.0
    full, mini = phases(p)
    return full + mini


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
    if life < 0:
        # TCP_LINGER2 < 0: when the FIN is acked the orphan enters FIN_WAIT2
        # and is done at once; tcp_rcv_state_process() returns 1, so the
        # caller answers that ACK with a reset, which ends the server's
        # CLOSE_WAIT too.
        return [Sent("client", "R", most=1), Held("client", "FIN_WAIT2", 0.0, 0.01),
                Held("server", "CLOSE_WAIT", 0.0, 0.1), Never("client", "TIME_WAIT")]
    out = [Held("server", "CLOSE_WAIT", 0.5, still_held=True),
           Never("client", "TIME_WAIT"),
           Diagnosed("close-wait-leak", "server")]
    full, mini = phases(p)
    if configured(p) < 1:  # 3.5 RTO: at least 3.5 x TCP_RTO_MIN
        out.append(Held("client", "FIN_WAIT2", 0.7 - tol.poll, 2.0))
    else:
        lo = tol.lo(life)
        hi = full + mini + tol.hi(mini) - mini + (tol.hi(full) - full if full else 0)
        out.append(Held("client", "FIN_WAIT2", lo, hi))
    if full:
        out += [Fact("full_fin_wait2_s", "between", between=tol.about(full)),
                Fact("minisock_s", "between", between=tol.about(mini))]
    else:
        out.append(Fact("full_fin_wait2_s", "<=", 0.05))
    out.append(Diagnosed("orphan-fin-wait-2", "client", at="fin_wait2"))
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
            Param("linger2", 0, "int", minimum=-1, maximum=600, unit="s")),
    script=script, checks=checks, horizon=horizon, derive=derive,
    moments=("fin_wait2", "after", "end"))
