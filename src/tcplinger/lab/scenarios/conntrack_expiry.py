"""conntrack-expiry: the router tracks flows (nftables ``ct state`` rules)
and forgets a half-closed connection before its endpoints do.

The client half-closes; conntrack moves the flow to CLOSE_WAIT with
nf_conntrack_tcp_timeout_close_wait (60 s by default, short here); the
server application keeps its CLOSE_WAIT longer than that, then closes. Its
FIN now matches no entry and cannot start one (a FIN from no state is
invalid: tcp_new() in net/netfilter/nf_conntrack_proto_tcp.c), so the
``ct state invalid drop`` rule drops it and every retransmission: the
server sits in LAST_ACK until tcp_orphan_retries gives up, and a client
that kept its socket stays in FIN_WAIT2 for good.

A second, idle connection stays open through the router for the whole run:
tcplinger's conntrack-mismatch rule looks only at namespaces whose
conntrack table is in use, as a real firewall's is.
"""

from __future__ import annotations

from ..checks import Diagnosed, Fact, Held, Sent
from ...model.params import Param
from ..scenario import Scenario
from ._common import CLOSE_WAIT, fin_timeout, retry_bounds

NAME = "conntrack-expiry"

RULES = """table inet tl_lab {
    counter invalid { }
    chain forward {
        type filter hook forward priority 0; policy drop;
        ct state invalid counter name "invalid" drop
        ct state established,related accept
        tcp flags & (fin | syn | rst | ack) == syn ct state new accept
    }
}
"""


def script(run) -> None:
    p = run.p
    run.nft("router", RULES)
    run.facts["_dropper"] = "conntrack"
    run.helper("router", ["stdbuf", "-oL", "conntrack", "-E", "-o", "timestamp", "-p", "tcp"],
               run.ct_lines, parse_json=False)
    run.wait(0.3)
    c = run.connect()
    run.connect()  # the bystander: stays ESTABLISHED, keeps the table in use
    run.facts["_ct_flow"] = [list(c.client_key[0]), list(c.client_key[1])]
    run.wait(0.3)
    if p["client"] == "half":
        run.do("client", "shutdown", c.client, key=c.client_key, how="wr")
    else:
        run.do("client", "close", c.client, key=c.client_key)
    run.wait_state("server", c.server_key, [CLOSE_WAIT], 2)
    t_cw = run.now()
    run.wait(p["nf_conntrack_tcp_timeout_close_wait"] + 0.6, "lab.wait.ct_expiry")
    run.diagnose("ct_expired")
    run.wait(max(0.0, t_cw + p["hold"] - run.now()), "lab.wait.hold", side="server")
    run.do("server", "close", c.server, key=c.server_key)
    life = retry_bounds(p["tcp_orphan_retries"] or 8)[1]
    run.wait(1.0, "lab.wait.retransmit", side="server")
    run.diagnose("fin_dropped")
    run.wait_gone("server", c.server_key, timeout=life * 1.3 + 3)
    run.facts["invalid_drops"] = run.nft_counter("router", "tl_lab", "invalid")


def horizon(p: dict) -> float:
    return p["hold"] + retry_bounds(p["tcp_orphan_retries"] or 8)[1] * 1.3 + 10


def checks(p: dict, tol) -> list:
    lo, hi, least, _ = retry_bounds(p["tcp_orphan_retries"] or 8)
    ct = p["nf_conntrack_tcp_timeout_close_wait"]
    out = [Fact("ct_close_wait_s", "between", between=(ct - 0.1, ct + 1.2)),
           Sent("server", "F", least=least, dropped=True),
           Sent("server", "F", least=0, most=0, dropped=False),
           Fact("invalid_drops", ">=", least),
           Held("server", "LAST_ACK", lo - tol.poll, hi + tol.hi(0)),
           Diagnosed("conntrack-mismatch", "server", at="ct_expired"),
           Diagnosed("last-ack-stuck", "server", at="fin_dropped")]
    if p["client"] == "half":
        out.append(Held("client", "FIN_WAIT2", 2.0, still_held=True))
    else:
        out.append(Held("client", "FIN_WAIT2", *tol.about(max(p["tcp_fin_timeout"], 0.7))))
    return out


def derive(observed, p: dict) -> dict:
    mb = observed.facts.get("_middlebox")
    out = {}
    if mb is not None:
        spans = [s for s in mb.spans if s.label == "CLOSE_WAIT"]
        if spans and spans[0].end_s is not None:
            out["ct_close_wait_s"] = round(spans[0].end_s - spans[0].start_s, 3)
    return out


SCENARIO = Scenario(
    name=NAME, seeds=("004",),
    params=(Param("nf_conntrack_tcp_timeout_close_wait", 2, "int", minimum=1, maximum=1 << 30,
                  unit="s", sysctl="net.netfilter.nf_conntrack_tcp_timeout_close_wait",
                  roles=("router",)),
            Param("nf_conntrack_tcp_timeout_fin_wait", 2, "int", minimum=1, maximum=1 << 30,
                  unit="s", sysctl="net.netfilter.nf_conntrack_tcp_timeout_fin_wait",
                  roles=("router",)),
            Param("hold", 4.0, "float", minimum=0, maximum=3600, unit="s"),
            Param("client", "half", "choice", choices=("half", "orphan")),
            Param("tcp_orphan_retries", 2, "int", minimum=0, maximum=255, unit="count",
                  sysctl="net.ipv4.tcp_orphan_retries", roles=("server",)),
            fin_timeout("client", 3)),
    script=script, checks=checks, horizon=horizon, derive=derive,
    moments=("ct_expired", "fin_dropped", "end"))
