"""fin-dropped: the router drops one side's FIN segments (nftables), so
that side retransmits its FIN until a retry limit gives up.

Which limit (tcp_write_timeout(), net/ipv4/tcp_timer.c): an orphan (the
application close()d) stops after tcp_orphan_retries (0 means 8 while the
RTO is below TCP_RTO_MAX, tcp_orphan_retries()); a socket still held by
its process (shutdown(SHUT_WR)) after tcp_retries2. Both are counted as
time: tcp_model_timeout() = (2^(n+1) - 1) x TCP_RTO_MIN (200 ms) for
n <= 9, measured from the first transmission. The socket is then closed
without a RST (tcp_write_err()).

``state=fin_wait_1``: the client closes first and its FIN is dropped.
``state=last_ack``: the client closes first (its FIN passes), the server
closes later and *its* FIN is dropped; the client's orphaned FIN_WAIT2
meanwhile ends after its own tcp_fin_timeout.
"""

from __future__ import annotations

from ..checks import Diagnosed, Held, Never, Sent
from ...model.params import Param
from ..scenario import Scenario
from ._common import fin_timeout, retry_bounds

NAME = "fin-dropped"

DROP_FIN = """table inet tl_lab {{
    chain forward {{
        type filter hook forward priority 0; policy accept;
        ip saddr {src} tcp flags & fin == fin counter drop
    }}
}}
"""


def _closer(p):
    return "client" if p["state"] == "fin_wait_1" else "server"


def retries(p: dict) -> int:
    if p["owner"] == "owned":
        return p["tcp_retries2"]
    return p["tcp_orphan_retries"] or 8  # 0 means 8 (tcp_orphan_retries())


def limit(p: dict) -> float:
    """Seconds from the first FIN to the socket being dropped, at the latest."""
    return retry_bounds(retries(p))[1]


def script(run) -> None:
    p = run.p
    closer = _closer(p)
    src = run.addr.client if closer == "client" else run.addr.server
    c = run.connect()
    names = {"client": c.client, "server": c.server}
    keys = {"client": c.client_key, "server": c.server_key}
    run.nft("router", DROP_FIN.format(src=src))
    run.facts["_dropper"] = "nftables"
    run.wait(0.3)
    if closer == "server":  # the client's FIN goes through first
        run.do("client", "close", c.client, key=c.client_key)
        run.wait_state("server", keys["server"], [8], 2)  # CLOSE_WAIT
        run.wait(0.3)
    if p["owner"] == "owned":
        run.do(closer, "shutdown", names[closer], key=keys[closer], how="wr")
    else:
        run.do(closer, "close", names[closer], key=keys[closer])
    life = limit(p)
    run.wait(min(life * 0.5, 1.0), "lab.wait.retransmit", side=closer)
    run.diagnose("stuck")
    run.wait_for(lambda: (v := run.polled(closer, keys[closer])) is None or v.state == 7,
                 life * 1.6 + 4, "lab.wait.gone", side=closer)
    run.diagnose("after")


def horizon(p: dict) -> float:
    return limit(p) * 1.6 + 10


def checks(p: dict, tol) -> list:
    closer = _closer(p)
    state = "FIN_WAIT1" if p["state"] == "fin_wait_1" else "LAST_ACK"
    lo, hi, least, most = retry_bounds(retries(p))
    out = [Held(closer, state, lo - tol.poll, hi + tol.hi(0)),
           Sent(closer, "F", least=least, most=most, dropped=True),
           Sent(closer, "F", least=0, most=0, dropped=False),
           Sent(closer, "R", least=0, most=0),
           Never(closer, "TIME_WAIT"),
           Diagnosed("fin-wait-1-stuck" if state == "FIN_WAIT1" else "last-ack-stuck",
                     closer, at="stuck")]
    if closer == "server":
        fin = max(p["tcp_fin_timeout"], 0.7)
        out.append(Held("client", "FIN_WAIT2", *tol.about(fin)))
    return out


SCENARIO = Scenario(
    name=NAME, seeds=("003",),
    params=(Param("state", "fin_wait_1", "choice", choices=("fin_wait_1", "last_ack")),
            Param("owner", "orphan", "choice", choices=("orphan", "owned")),
            Param("tcp_orphan_retries", 2, "int", minimum=0, maximum=255, unit="count",
                  sysctl="net.ipv4.tcp_orphan_retries", roles=("client", "server")),
            Param("tcp_retries2", 2, "int", minimum=0, maximum=255, unit="count",
                  sysctl="net.ipv4.tcp_retries2", roles=("client", "server")),
            fin_timeout("client", 2)),
    script=script, checks=checks, horizon=horizon,
    moments=("stuck", "after", "end"))
