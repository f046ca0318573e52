"""Solaris / illumos (usr/src/uts/common/inet/tcp; Oracle Solaris Tunable
Parameters Reference Manual).

* Entering FIN_WAIT_2 arms a timer of ``tcp_fin_wait_2_flush_interval``
  (675 s, the value SunOS 4.x used). When it fires, a detached (closed)
  connection is flushed; one whose application still holds the socket
  gets the timer again (illumos tcp_timer(), case TCPS_FIN_WAIT_2).
* TIME_WAIT lasts ``tcp_time_wait_interval`` (60 s).
* Keepalive only with SO_KEEPALIVE: probing starts after
  ``tcp_keepalive_interval`` (2 h) idle, and the connection is aborted
  once probes have gone unanswered for ``tcp_keepalive_abort_interval``
  (8 min). Probes are modelled every ``keep_probe_interval`` (an
  approximation of the backoff).
* Retransmission gives up after ``tcp_ip_abort_interval`` (8 min).
"""

from __future__ import annotations

from ..num import ceil, where
from ...model.params import Param
from . import Profile
from .classic import FIN_WAIT2, ClassicEndpoint

_MAN = "Oracle Solaris Tunable Parameters Reference Manual, TCP tunables"
_SRC = "illumos usr/src/uts/common/inet/tcp/tcp_timers.c, tcp_input.c"

PARAMS = (
    Param("tcp_fin_wait_2_flush_interval", 675.0, "seconds",
          "FIN_WAIT_2 timer; flushes only detached connections", _MAN + "; " + _SRC, minimum=1),
    Param("tcp_time_wait_interval", 60.0, "seconds", "TIME_WAIT duration", _MAN, minimum=1,
          maximum=600),
    Param("tcp_keepalive_interval", 7200.0, "seconds", "idle time before keepalive probes",
          _MAN, minimum=10),
    Param("tcp_keepalive_abort_interval", 480.0, "seconds",
          "abort after probes unanswered this long", _MAN, minimum=1),
    Param("keep_probe_interval", 60.0, "seconds",
          "interval between probes (approximation of the backoff)", "model choice", minimum=1),
    Param("tcp_ip_abort_interval", 480.0, "seconds",
          "give up retransmitting after this long", _MAN, minimum=1),
    Param("rto_min", 0.4, "seconds", "tcp_rexmit_interval_min", _MAN, minimum=0.001),
    Param("rto_slop", 0.0, "seconds", "added to the RTT for the RTO", "model choice", minimum=0),
    Param("rto_max", 60.0, "seconds", "tcp_rexmit_interval_max", _MAN, minimum=0.1),
    Param("rto_syn", 1.0, "seconds", "tcp_rexmit_interval_initial", _MAN, minimum=0.01),
)
SOCKET = (
    Param("so_keepalive", 0, "bool", "SO_KEEPALIVE", "setsockopt(3SOCKET)"),
    Param("linger2", 0.0, "seconds",
          "TCP_LINGER2 (illumos): this socket's FIN_WAIT_2 flush interval (0: the tunable)",
          _SRC, minimum=0),
)


class SolarisEndpoint(ClassicEndpoint):
    profile = "solaris"

    def max_retries(self):
        return None

    def abort_after(self):
        return self.p.tcp_ip_abort_interval

    def keep_idle(self):
        return self.p.tcp_keepalive_interval

    def keep_intvl(self):
        return self.p.keep_probe_interval

    def keep_count(self):
        return ceil(self.p.tcp_keepalive_abort_interval / self.p.keep_probe_interval)

    def time_wait_s(self):
        return self.p.tcp_time_wait_interval

    def flush_interval(self):
        l2 = self.sock.linger2
        return where(l2 > 0, l2, self.p.tcp_fin_wait_2_flush_interval)

    def on_fin_acked(self, seg):
        self.timer("fw2", self.flush_interval(), self.on_fw2_timer)

    def on_fw2_timer(self):
        if self.state != FIN_WAIT2:
            return
        if self.orphan:
            self.forget("fin_wait2_timeout")
        else:
            self.timer("fw2", self.flush_interval(), self.on_fw2_timer)

    def on_close(self):
        if self.state == FIN_WAIT2:
            self.set_state(FIN_WAIT2)  # detached now; flushed at the next firing
            return
        super().on_close()


PROFILES = (
    Profile("solaris", "Solaris / illumos", PARAMS, SOCKET, SolarisEndpoint, (_MAN, _SRC)),
)
