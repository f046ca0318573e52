"""Named scenarios with a few *knobs* each.

A preset builds a scenario document from its knob values (each knob is a
documented :class:`~tcplinger.sim.params.Param`); ``--set NAME=VALUE``
sets a knob, ``--set a.b.c=VALUE`` any key of the document afterwards.
Descriptions shown to users are catalog messages ``sim.preset.<name>``.

Parties are ``client`` and ``server``; a middlebox is named after its
profile. Times: the connection is set up at 0 and torn down at 1 s.

>>> doc = build("linux-orphan-fin-wait-2", {"tcp_fin_timeout": 90})
>>> doc["client"]["tcp_fin_timeout"], doc["client"]["app"]["close_at"]
(90.0, 1.0)
>>> sorted(get("linux-close-wait").knob_names())
['keepcnt', 'keepidle', 'keepintvl', 'peer', 'so_keepalive']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..model.params import Param, ParamError

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


def _k(name, default, kind, doc, source="", **kw) -> Param:
    return Param(name, default, kind, doc, source, **kw)


# ---- knobs shared by several presets ----

FIN_TIMEOUT = _k("tcp_fin_timeout", 60.0, "seconds", "net.ipv4.tcp_fin_timeout of the closer",
                 "ip-sysctl.rst", minimum=0)
LINGER2 = _k("linger2", 0.0, "seconds", "TCP_LINGER2 on the closer's socket (0: unset; "
             "negative: RST at close)", "tcp(7)")
KEEPALIVE = (
    _k("so_keepalive", 0, "bool", "SO_KEEPALIVE on the server's socket", "socket(7)"),
    _k("keepidle", 7200.0, "seconds", "TCP_KEEPIDLE of the server's socket", "tcp(7)",
       minimum=1),
    _k("keepintvl", 75.0, "seconds", "TCP_KEEPINTVL", "tcp(7)", minimum=1),
    _k("keepcnt", 9, "count", "TCP_KEEPCNT", "tcp(7)", minimum=1, maximum=127),
    _k("peer", "alive", "choice", "the client after its FIN: alive (keeps its socket), gone "
       "(socket closed: its host answers RST), silent (unreachable: probes are lost)", "",
       choices=("alive", "gone", "silent")),
)
SERVER_OS = _k("server_os", "linux", "choice", "the server's TCP stack", "",
               choices=OS_PROFILES)


def horizon_above(seconds, at_least: float) -> float:
    """A horizon that shows ``seconds`` (a number, or a sweep's array) with
    room to spare: double it, at least ``at_least``."""
    return max(at_least, 2.0 * float(np.max(seconds)) + 60.0)


def _linux_orphan_fin_wait_2(v) -> dict:
    return {"name": "linux-orphan-fin-wait-2", "rtt": LOOPBACK_RTT, "horizon": 600.0,
            "client": {"profile": "linux", "tcp_fin_timeout": v["tcp_fin_timeout"],
                       "socket": {"linger2": v["linger2"]}, "app": {"close_at": 1.0}},
            "server": {"profile": "linux", "behaviour": "never-close"}}


def _linux_half_close(v) -> dict:
    return {"name": "linux-half-close", "rtt": LOOPBACK_RTT, "horizon": 600.0,
            "client": {"profile": "linux", "tcp_fin_timeout": v["tcp_fin_timeout"],
                       "behaviour": "shutdown-only",
                       "app": {"shutdown_at": 1.0, "close_at": v["close_at"]}},
            "server": {"profile": "linux", "behaviour": "never-close"}}


def _close_wait_doc(name, v, profile="linux") -> dict:
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


def _linux_fin_dropped(v) -> dict:
    app = {"close_at": 1.0} if v["orphan"] else {"shutdown_at": 1.0}
    return {"name": "linux-fin-dropped", "rtt": LOOPBACK_RTT, "horizon": 3600.0,
            "client": {"profile": "linux", "tcp_orphan_retries": v["tcp_orphan_retries"],
                       "tcp_retries2": v["tcp_retries2"], "app": app,
                       "behaviour": "graceful" if v["orphan"] else "shutdown-only"},
            "server": {"profile": "linux", "behaviour": "never-close"},
            "drop": [{"sender": "client", "flags": "F"}]}


def _linux_time_wait(v) -> dict:
    return {"name": "linux-time-wait", "rtt": LOOPBACK_RTT, "horizon": 600.0,
            "client": {"profile": "linux", "tcp_max_tw_buckets": v["tcp_max_tw_buckets"],
                       "tw_in_use": v["tw_in_use"], "app": {"close_at": 1.0}},
            "server": {"profile": "linux", "app": {"on_eof": "close"}}}


_PRESETS: list[Preset] = [
    Preset("linux-orphan-fin-wait-2", (FIN_TIMEOUT, LINGER2), _linux_orphan_fin_wait_2,
           tags=("linux", "calibrated")),
    Preset("linux-half-close",
           (FIN_TIMEOUT, _k("close_at", math.inf, "seconds",
                            "when the client finally closes its fd (inf: never)", "",
                            minimum=1, never=True)),
           _linux_half_close, tags=("linux", "calibrated")),
    Preset("linux-close-wait", KEEPALIVE, lambda v: _close_wait_doc("linux-close-wait", v),
           tags=("linux", "calibrated")),
    Preset("linux-fin-dropped",
           (_k("tcp_orphan_retries", 0, "count", "net.ipv4.tcp_orphan_retries (0 means 8)",
               "ip-sysctl.rst", minimum=0, maximum=255),
            _k("tcp_retries2", 15, "count", "net.ipv4.tcp_retries2", "ip-sysctl.rst",
               minimum=0, maximum=255),
            _k("orphan", 1, "bool", "1: the client close()s; 0: shutdown() and keeps the fd",
               "")),
           _linux_fin_dropped, tags=("linux", "calibrated")),
    Preset("linux-time-wait",
           (_k("tcp_max_tw_buckets", 131072, "count", "net.ipv4.tcp_max_tw_buckets",
               "ip-sysctl.rst", minimum=0),
            _k("tw_in_use", 0, "count", "timewait-type sockets already in the namespace", "",
               minimum=0)),
           _linux_time_wait, tags=("linux", "calibrated")),
]

_BY_NAME: dict[str, Preset] = {}


def register(preset: Preset) -> None:
    _PRESETS.append(preset)
    _BY_NAME.clear()


def all_presets() -> list[Preset]:
    from . import seed_presets  # noqa: F401  (registers the seed and middlebox presets)
    return list(_PRESETS)


def get(name: str) -> Preset:
    if not _BY_NAME:
        _BY_NAME.update({p.name: p for p in all_presets()})
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(name) from None


def knob_values(preset: Preset, given: dict) -> dict:
    """Every knob's value: given (coerced and checked) or its default."""
    out = {}
    for k in preset.knobs:
        out[k.name] = k.parse(given[k.name]) if k.name in given else k.default
    unknown = set(given) - set(out)
    if unknown:
        raise ParamError(f"preset {preset.name}: unknown knob(s) {', '.join(sorted(unknown))} "
                         f"(knobs: {', '.join(preset.knob_names()) or 'none'})")
    return out


def build(name: str, given: dict | None = None) -> dict:
    preset = get(name)
    return preset.build(knob_values(preset, given or {}))
