"""firewall-keepalive (seed 000): FreeBSD ipfw's dynamic rules with
``dyn_keepalive`` between a server that closes idle connections and a
client that never closes.

The router runs lab/bridge.py: the ipfw keep-state logic of lab/ipfw.py on
every frame between its two veths (the kernel's forwarding is off), with
``dyn_*_lifetime`` shortened so that a run takes seconds. The server
closes an idle connection (an orphan in FIN_WAIT2, tcp_fin_timeout); the
client's application never closes (CLOSE_WAIT). The seed's loop needs the
server's TCP to restart its FIN_WAIT_2 timer whenever a keepalive arrives;
FreeBSD does (tcp_timer_2msl() re-arms while the connection received
something recently, sys/netinet/tcp_timer.c). Linux does not: an orphaned
FIN_WAIT2 is a timewait-type socket whose timer only tcp_fin_timeout sets
(tcp_timewait_state_process() answers an old segment with an ACK and
leaves the timer alone). What the keepalives do on Linux is the opposite:
once the server's FIN_WAIT2 is gone, the server answers the next forged
keepalive with a RST, which the firewall passes on to the client and
which ends the client's CLOSE_WAIT.
"""

from __future__ import annotations

import json
import sys
import time

from ..checks import Diagnosed, Held, Sent
from ...model.params import Param
from ..scenario import Scenario
from ._common import fin_timeout

NAME = "firewall-keepalive"

#: With forwarding off the router's kernel would answer every packet not
#: for it with ICMP host unreachable (ip_error()): drop IPv4 before
#: routing. AF_PACKET taps come before netfilter, so the bridge still sees it.
QUIET_ROUTER = """table ip tl_lab_quiet {
    chain pre {
        type filter hook prerouting priority -300; policy drop;
    }
}
"""

IPFW = ("dyn_ack_lifetime", "dyn_syn_lifetime", "dyn_fin_lifetime", "dyn_rst_lifetime",
        "dyn_keepalive", "dyn_keepalive_interval", "dyn_keepalive_period")


#: The longest the bridge may take to say it is ready (a hung start, not a
#: slow one: it normally answers in well under a second).
BRIDGE_START_MAX_S = 120.0


def _ipfw_params(p: dict) -> dict:
    return {k[4:]: int(p[k]) for k in IPFW}


def start_bridge(run) -> None:
    t = run.topo
    args = [sys.executable, "-m", "tcplinger.lab.bridge",
            "--client-if", t.link("a"), "--server-if", t.link("b"),
            "--client-if-mac", t.mac("router", "a"), "--server-if-mac", t.mac("router", "b"),
            "--client-mac", t.mac("client", "c"), "--server-mac", t.mac("server", "s"),
            "--client-addr", run.addr.client, "--server-addr", run.addr.server,
            "--params", json.dumps(_ipfw_params(run.p)), "--parent", str(__import__("os").getpid())]
    run.nft("router", QUIET_ROUTER)
    started = time.monotonic()
    proc = run.helper("router", args, run.bridge_events)
    # Its readiness is an event: wait for it or for the bridge's death, not
    # for a fixed time (a Python process entered into a namespace took over
    # 10 s to start at load 27). The scenario's timers start after it, so
    # the run's horizon gets the time the start took.
    horizon = run.horizon
    run.horizon = horizon + BRIDGE_START_MAX_S
    ready = run.wait_for(lambda: any(e.get("event") == "ready" for e in run.bridge_events)
                         or proc.poll() is not None, BRIDGE_START_MAX_S, "lab.wait.bridge")
    run.horizon = horizon + (time.monotonic() - started)
    if not ready or not any(e.get("event") == "ready" for e in run.bridge_events):
        raise RuntimeError("the ipfw bridge did not start in the router namespace")


def script(run) -> None:
    p = run.p
    start_bridge(run)
    c = run.connect(request="GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
    run.wait(p["keepalive_timeout"], "lab.wait.idle", side="server")
    run.do("server", "close", c.server, key=c.server_key, note="lab.note.idle_close")
    run.wait(1.0)
    run.diagnose("idle_closed")
    if p["dyn_keepalive"]:
        run.wait_gone("client", c.client_key, timeout=run.left())
        run.wait(1.5)
    else:
        run.wait(run.left() - 0.5, "lab.wait.state", side="client", state="CLOSE_WAIT")


def horizon(p: dict) -> float:
    return (p["keepalive_timeout"] + max(p["tcp_fin_timeout"], 1)
            + p["dyn_ack_lifetime"] + p["dyn_keepalive_period"] + 6)


def checks(p: dict, tol) -> list:
    fin = max(p["tcp_fin_timeout"], 0.7)
    out = [Held("server", "FIN_WAIT2", *tol.about(fin)),  # keepalives do not stretch it
           Diagnosed("close-wait-leak", "client", at="idle_closed")]
    if p["dyn_keepalive"]:
        # The client's CLOSE_WAIT ends with the RST the server's kernel sends
        # to a keepalive after its FIN_WAIT2 is gone: at the first keepalive
        # round after that, which comes at most dyn_ack_lifetime (when the
        # last refresh was) minus the keepalive window plus a period later.
        late = p["dyn_ack_lifetime"] - p["dyn_keepalive_interval"] + p["dyn_keepalive_period"]
        out += [Held("client", "CLOSE_WAIT", fin, fin + max(late, p["dyn_keepalive_period"])
                     + 2.5),
                Sent("ipfw", ".", tag="forged-keepalive"),
                Sent("server", "R"),
                Sent("client", "R", least=0, most=0)]
    else:
        out += [Held("client", "CLOSE_WAIT", fin, still_held=True),
                Sent("ipfw", ".", tag="forged-keepalive", least=0, most=0)]
    return out


SCENARIO = Scenario(
    name=NAME, seeds=("000",),
    params=(Param("dyn_keepalive", 1, "bool"),
            Param("dyn_ack_lifetime", 12, "int", minimum=1, maximum=86400, unit="s"),
            Param("dyn_syn_lifetime", 20, "int", minimum=1, maximum=86400, unit="s"),
            Param("dyn_fin_lifetime", 1, "int", minimum=0, maximum=86400, unit="s"),
            Param("dyn_rst_lifetime", 1, "int", minimum=0, maximum=86400, unit="s"),
            Param("dyn_keepalive_interval", 8, "int", minimum=1, maximum=86400, unit="s"),
            Param("dyn_keepalive_period", 2, "int", minimum=1, maximum=86400, unit="s"),
            Param("keepalive_timeout", 1.0, "float", minimum=0, maximum=3600, unit="s"),
            fin_timeout("server", 5)),
    script=script, checks=checks, horizon=horizon, router="ipfw",
    moments=("idle_closed", "end"))
