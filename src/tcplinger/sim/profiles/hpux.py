"""HP-UX 11i (ndd TCP tunables; "HP-UX TCP/IP Performance White Paper",
March 2008; "Installing and Administering LAN/9000 Software").

* ``tcp_fin_wait_2_timeout`` (default 0: no timer): when set, a connection
  is killed, with a reset, after that long in FIN_WAIT_2.
* A detached (closed) connection starts keepalive probes after
  ``tcp_keepalive_detached_interval`` (2 min): "so long as the remote (or
  something taking responsibility for the remote -- for instance a
  firewall) responds to the keepalive probes, the connection will remain";
  otherwise it is deleted. The model probes every ``keep_probe_interval``
  and deletes it (reset) when nothing was received for
  ``tcp_keepalive_detached_interval + tcp_ip_abort_interval`` -- the
  abort delay is an approximation (the white paper does not give it).
* TIME_WAIT: ``tcp_time_wait_interval`` (60 s).
* Keepalives with SO_KEEPALIVE: ``tcp_keepalive_interval`` (2 h) idle,
  then abort after ``tcp_ip_abort_interval`` (10 min) without answer.
"""

from __future__ import annotations

from ..num import truth
from ...model.params import Param
from . import Profile
from .classic import CLOSE_WAIT, CLOSING, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, ClassicEndpoint

_WP = "HP-UX TCP/IP Performance White Paper (March 2008), ndd TCP parameters"

PARAMS = (
    Param("tcp_fin_wait_2_timeout", 0.0, "seconds",
          "kill FIN_WAIT_2 (with a reset) after this long; 0: no such timer", _WP, minimum=0),
    Param("tcp_keepalive_detached_interval", 120.0, "seconds",
          "idle time before a closed connection is probed", _WP, minimum=10),
    Param("tcp_ip_abort_interval", 600.0, "seconds",
          "give up (retransmissions, unanswered probes) after this long", _WP, minimum=1),
    Param("tcp_keepalive_interval", 7200.0, "seconds", "idle time before SO_KEEPALIVE probes",
          _WP, minimum=10),
    Param("keep_probe_interval", 75.0, "seconds", "interval between probes", "model choice",
          minimum=1),
    Param("tcp_time_wait_interval", 60.0, "seconds", "TIME_WAIT duration", _WP, minimum=1),
    Param("rto_min", 0.5, "seconds", "tcp_rexmit_interval_min", _WP, minimum=0.001),
    Param("rto_slop", 0.0, "seconds", "added to the RTT for the RTO", "model choice", minimum=0),
    Param("rto_max", 60.0, "seconds", "tcp_rexmit_interval_max", _WP, minimum=0.1),
    Param("rto_syn", 1.5, "seconds", "tcp_rexmit_interval_initial", _WP, minimum=0.01),
)
SOCKET = (
    Param("so_keepalive", 0, "bool", "SO_KEEPALIVE", "setsockopt(2)"),
)


class HpuxEndpoint(ClassicEndpoint):
    profile = "hpux"
    KEEPALIVE_STATES = (ESTABLISHED, CLOSE_WAIT, FIN_WAIT1, CLOSING, FIN_WAIT2)

    def max_retries(self):
        return None

    def abort_after(self):
        return self.p.tcp_ip_abort_interval

    def keepalive_enabled(self) -> bool:
        return self.orphan or truth(self.sock.so_keepalive != 0)

    def keep_idle(self):
        return self.p.tcp_keepalive_detached_interval if self.orphan \
            else self.p.tcp_keepalive_interval

    def keep_intvl(self):
        return self.p.keep_probe_interval

    def keep_count(self):
        return self.p.tcp_ip_abort_interval / self.p.keep_probe_interval

    def time_wait_s(self):
        return self.p.tcp_time_wait_interval

    def on_fin_acked(self, seg):
        if truth(self.p.tcp_fin_wait_2_timeout > 0):
            self.timer("fw2", self.p.tcp_fin_wait_2_timeout, self.fw2_expire,
                       "fin_wait2_timeout", True)
        if self.orphan:
            self.timer("keep", self.keep_idle(), self.on_keep)

    def on_close(self):
        super().on_close()
        if self.state is not None and self.orphan:
            # detached: probing starts tcp_keepalive_detached_interval later
            self.timer("keep", self.keep_idle(), self.on_keep)


PROFILES = (
    Profile("hpux", "HP-UX 11i", PARAMS, SOCKET, HpuxEndpoint, (_WP,)),
)
