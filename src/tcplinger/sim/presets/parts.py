"""What presets are made of: the :class:`Preset` record, documented knobs
(:class:`~tcplinger.model.params.Param`) shared by several presets, and
scenario parts they build from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...model.params import Param

LOOPBACK_RTT = 0.0001  # what the calibration measured on (docs/kernel-behaviour.md)
OS_PROFILES = ("linux", "freebsd", "windows", "solaris", "hpux", "bsd-legacy")


@dataclass(frozen=True)
class Preset:
    name: str
    knobs: tuple[Param, ...]
    build: Callable[[dict], dict]
    seed: str = ""  # the seed document it reproduces ("000"...)
    tags: tuple[str, ...] = ()

    def knob_names(self) -> list[str]:
        return [k.name for k in self.knobs]

    def knob(self, name: str) -> Param | None:
        return next((k for k in self.knobs if k.name == name), None)


def knob(name, default, kind, doc, source="", **kw) -> Param:
    """A documented knob (kind, doc and source in the order the tables read)."""
    return Param(name, default, kind, doc, source, **kw)


# ---- knobs shared by several presets ----

FIN_TIMEOUT = knob("tcp_fin_timeout", 60.0, "seconds", "net.ipv4.tcp_fin_timeout of the closer",
                   "ip-sysctl.rst", minimum=0)
LINGER2 = knob("linger2", 0.0, "seconds", "TCP_LINGER2 on the closer's socket (0: unset; "
               "negative: RST at close)", "tcp(7)")
KEEPALIVE = (
    knob("so_keepalive", 0, "bool", "SO_KEEPALIVE on the server's socket", "socket(7)"),
    knob("keepidle", 7200.0, "seconds", "TCP_KEEPIDLE of the server's socket", "tcp(7)",
         minimum=1),
    knob("keepintvl", 75.0, "seconds", "TCP_KEEPINTVL", "tcp(7)", minimum=1),
    knob("keepcnt", 9, "count", "TCP_KEEPCNT", "tcp(7)", minimum=1, maximum=127),
    knob("peer", "alive", "choice", "the client after its FIN: alive (keeps its socket), gone "
         "(socket closed: its host answers RST), silent (unreachable: probes are lost)", "",
         choices=("alive", "gone", "silent")),
)
SERVER_OS = knob("server_os", "linux", "choice", "the server's TCP stack", "",
                 choices=OS_PROFILES)


def horizon_above(seconds, at_least: float) -> float:
    """A horizon that shows ``seconds`` (a number, or a sweep's array) with
    room to spare: double it, at least ``at_least``."""
    return max(at_least, 2.0 * float(np.max(seconds)) + 60.0)


def close_wait_doc(name, v, profile="linux") -> dict:
    """CLOSE_WAIT on the server: the client shuts down (alive), closes
    (gone) or becomes unreachable (silent)."""
    client = {"profile": profile, "app": {"shutdown_at": 1.0}, "behaviour": "shutdown-only"}
    drops = []
    if v["peer"] == "gone":
        # as the lab does it: FIN, then close() with TCP_LINGER2 = 1 s, so
        # that the orphan vanishes and the client's host answers RST
        client = {"profile": profile, "app": {"close_at": 1.0}, "socket": {"linger2": 1.0}}
    elif v["peer"] == "silent":
        drops = [{"sender": "server", "from_s": 1.5}]
    bound = v["keepidle"] + v["keepintvl"] * v["keepcnt"]
    return {"name": name, "rtt": LOOPBACK_RTT, "horizon": horizon_above(bound, 600.0),
            "client": client,
            "server": {"profile": profile, "behaviour": "never-close",
                       "socket": {"so_keepalive": v["so_keepalive"], "keepidle": v["keepidle"],
                                  "keepintvl": v["keepintvl"], "keepcnt": v["keepcnt"]}},
            "drop": drops}
