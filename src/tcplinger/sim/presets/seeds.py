"""The presets of the seed documents (shared/seeds) and the middleboxes.

Each seed's claim, and what the simulator says about it:

* 000 (FreeBSD + ipfw, FIN_WAIT_2 "until reboot"): with the ipfw of 2003
  (every packet refreshes a state) and dyn_keepalive on, the forged
  keepalives refresh both the state and the server's idle time: the
  FIN_WAIT_2 never ends. With dyn_keepalive off the state expires after
  dyn_ack_lifetime and FreeBSD's own timer ends the FIN_WAIT_2 once idle
  for keepcnt * keepintvl (600 s) -- at the first 75 s re-check past it.
  Since FreeBSD 10 (``refresh = "both"``) the silent client stops the
  refreshes and it ends as well, a few minutes later.
* 001/002 (buggy clients, FIN_WAIT_2 timeouts per OS): per stack.
* 003 (Linux: tcp_fin_timeout applies to orphans only): right; the
  "deviation" the author saw is the kernel timer wheel (and above 60 s the
  lifetime is 2 * (T - 60), not T).
* 004 (CLOSE_WAIT lasts at most keepalive_time + intvl * probes): only
  with SO_KEEPALIVE on the socket and a peer that is gone (RST at the
  first probe) or silent; otherwise CLOSE_WAIT is unbounded.
"""

from __future__ import annotations

import math

from .parts import (KEEPALIVE, LOOPBACK_RTT, SERVER_OS, Preset, close_wait_doc, horizon_above,
                    knob)

WAN_RTT = 0.05

_IPFW_KNOBS = (
    knob("dyn_keepalive", 1, "bool", "net.inet.ip.fw.dyn_keepalive", "ipfw(8)"),
    knob("dyn_ack_lifetime", 300.0, "seconds", "net.inet.ip.fw.dyn_ack_lifetime", "ipfw(8)",
         minimum=1),
    knob("dyn_syn_lifetime", 20.0, "seconds", "net.inet.ip.fw.dyn_syn_lifetime", "ipfw(8)",
         minimum=1),
    knob("dyn_fin_lifetime", 1.0, "seconds", "net.inet.ip.fw.dyn_fin_lifetime", "ipfw(8)",
         minimum=0),
    knob("dyn_rst_lifetime", 1.0, "seconds", "net.inet.ip.fw.dyn_rst_lifetime", "ipfw(8)",
         minimum=0),
    knob("refresh", "any", "choice",
         "any: the ipfw2 of the seed (2003, FreeBSD <= 9); both: FreeBSD 10 and later", "",
         choices=("any", "both")),
    knob("client", "vanish", "choice",
         "the client after the server's FIN: vanish (a dial-up user hanging up, or a host whose "
         "firewall drops everything unsolicited), buggy (never closes, answers)", "",
         choices=("vanish", "buggy")),
)


def _client_doc(kind: str, profile: str = "linux") -> tuple[dict, list]:
    """The client of seeds 000-002: it never sends its FIN; "vanish":
    nothing reaches it (or leaves it) after it acknowledged the server's
    FIN."""
    client = {"profile": profile, "behaviour": "never-fin"}
    if kind == "vanish":
        client["host"] = {"vanish_at": 2.0}
    return client, []


def _seed_000(v) -> dict:
    client, drops = _client_doc(v["client"])
    return {"name": "seed-000-freebsd-ipfw", "rtt": WAN_RTT, "horizon": 86400.0,
            "client": client,
            "server": {"profile": "freebsd", "app": {"close_at": 1.0}},
            "middlebox": [{"profile": "ipfw", "dyn_keepalive": v["dyn_keepalive"],
                           "dyn_ack_lifetime": v["dyn_ack_lifetime"],
                           "dyn_syn_lifetime": v["dyn_syn_lifetime"],
                           "dyn_fin_lifetime": v["dyn_fin_lifetime"],
                           "dyn_rst_lifetime": v["dyn_rst_lifetime"],
                           "refresh": v["refresh"]}],
            "drop": drops}


def _seed_001(v) -> dict:
    client, drops = _client_doc(v["client"])
    return {"name": "seed-001-fin-wait-2-per-os", "rtt": WAN_RTT, "horizon": 3600.0,
            "client": client, "server": {"profile": v["server_os"], "app": {"close_at": 1.0}},
            "drop": drops}


def _seed_002(v) -> dict:
    client = {"profile": "windows", "behaviour": "never-fin",
              "app": {"close_at": v["client_exit_at"]},
              "host": {"vanish_at": v["client_vanish_at"]}}
    return {"name": "seed-002-buggy-client", "rtt": WAN_RTT, "horizon": 3600.0,
            "client": client, "server": {"profile": v["server_os"], "app": {"close_at": 1.0}}}


def _seed_003(v) -> dict:
    app = {"close_at": 1.0} if v["mode"] == "close" else {"shutdown_at": 1.0}
    return {"name": "seed-003-orphan-vs-shutdown", "rtt": LOOPBACK_RTT, "horizon": 600.0,
            "client": {"profile": "linux", "tcp_fin_timeout": v["tcp_fin_timeout"], "app": app,
                       "behaviour": "graceful" if v["mode"] == "close" else "shutdown-only"},
            "server": {"profile": "linux", "behaviour": "never-close"}}


def _conntrack_late_fin(v) -> dict:
    return {"name": "conntrack-late-fin", "rtt": WAN_RTT, "horizon": 900.0,
            "client": {"profile": "linux", "app": {"close_at": 1.0}},
            "server": {"profile": "linux", "behaviour": "never-close",
                       "app": {"close_at": v["server_close_at"]}},
            "middlebox": [{"profile": "conntrack",
                           "nf_conntrack_tcp_timeout_close_wait": v["close_wait_timeout"],
                           "invalid": v["invalid"]}]}


def _cloud_idle(v) -> dict:
    mb = {"profile": v["provider"]}
    if v["provider"] == "azure-lb":
        mb["rst_on_expiry"] = v["tcp_reset"]
    return {"name": "cloud-idle-timeout", "rtt": WAN_RTT,
            "horizon": horizon_above(v["send_at"], 3600.0),
            "client": {"profile": "linux", "app": {"send_at": v["send_at"], "send_bytes": 100}},
            "server": {"profile": "linux"},
            "middlebox": [mb]}


PRESETS: tuple[Preset, ...] = (
    Preset("seed-000-freebsd-ipfw", _IPFW_KNOBS, _seed_000, seed="000",
           tags=("freebsd", "ipfw")),
    Preset("seed-001-fin-wait-2-per-os",
           (SERVER_OS, knob("client", "buggy", "choice",
                            "buggy: never closes but answers; vanish: disappears", "",
                            choices=("buggy", "vanish"))),
           _seed_001, seed="001", tags=("per-os",)),
    Preset("seed-002-buggy-client",
           (SERVER_OS,
            knob("client_exit_at", math.inf, "seconds",
                 "when the user exits the client (inf: never)", "", minimum=0,
                 never=True),
            knob("client_vanish_at", math.inf, "seconds",
                 "when a dial-up client hangs up (inf: never)", "", minimum=0,
                 never=True)),
           _seed_002, seed="002", tags=("per-os",)),
    Preset("seed-003-orphan-vs-shutdown",
           (knob("mode", "close", "choice", "close: close(); shutdown: shutdown(SHUT_WR) "
                 "and keep the fd", "", choices=("close", "shutdown")),
            knob("tcp_fin_timeout", 60.0, "seconds", "net.ipv4.tcp_fin_timeout",
                 "ip-sysctl.rst", minimum=0)),
           _seed_003, seed="003", tags=("linux",)),
    Preset("seed-004-close-wait", KEEPALIVE,
           lambda v: {**close_wait_doc("seed-004-close-wait", v)}, seed="004",
           tags=("linux",)),
    Preset("conntrack-late-fin",
           (knob("close_wait_timeout", 60.0, "seconds",
                 "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
                 "nf_conntrack-sysctl.rst", minimum=0),
            knob("server_close_at", 200.0, "seconds",
                 "when the server finally closes", "", minimum=1),
            knob("invalid", "drop", "choice", "the ruleset's verdict on INVALID", "",
                 choices=("drop", "pass"))),
           _conntrack_late_fin, tags=("conntrack",)),
    Preset("cloud-idle-timeout",
           (knob("provider", "aws-nlb", "choice", "the middlebox",
                 "", choices=("aws-nlb", "aws-nat", "gcp-nat", "azure-lb", "pf",
                 "stateful-fw")),
            knob("send_at", 600.0, "seconds", "when the client writes again", "",
                 minimum=1),
            knob("tcp_reset", 0, "bool", "Azure: TCP reset on idle", "")),
           _cloud_idle, tags=("cloud",)),
)
