"""The Linux presets, calibrated against lab runs on this kernel
(tests/privileged/test_sim_calibration.py)."""

from __future__ import annotations

import math

from .parts import (FIN_TIMEOUT, KEEPALIVE, LINGER2, LOOPBACK_RTT, Preset, close_wait_doc,
                    knob)


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


PRESETS: tuple[Preset, ...] = (
    Preset("linux-orphan-fin-wait-2", (FIN_TIMEOUT, LINGER2), _linux_orphan_fin_wait_2,
           tags=("linux", "calibrated")),
    Preset("linux-half-close",
           (FIN_TIMEOUT, knob("close_at", math.inf, "seconds",
                              "when the client finally closes its fd (inf: never)", "",
                              minimum=1, never=True)),
           _linux_half_close, tags=("linux", "calibrated")),
    Preset("linux-close-wait", KEEPALIVE, lambda v: close_wait_doc("linux-close-wait", v),
           tags=("linux", "calibrated")),
    Preset("linux-fin-dropped",
           (knob("tcp_orphan_retries", 0, "count", "net.ipv4.tcp_orphan_retries (0 means 8)",
                 "ip-sysctl.rst", minimum=0, maximum=255),
            knob("tcp_retries2", 15, "count", "net.ipv4.tcp_retries2", "ip-sysctl.rst",
                 minimum=0, maximum=255),
            knob("orphan", 1, "bool", "1: the client close()s; 0: shutdown() and keeps the fd",
                 "")),
           _linux_fin_dropped, tags=("linux", "calibrated")),
    Preset("linux-time-wait",
           (knob("tcp_max_tw_buckets", 131072, "count", "net.ipv4.tcp_max_tw_buckets",
                 "ip-sysctl.rst", minimum=0),
            knob("tw_in_use", 0, "count", "timewait-type sockets already in the namespace", "",
                 minimum=0)),
           _linux_time_wait, tags=("linux", "calibrated")),
)
