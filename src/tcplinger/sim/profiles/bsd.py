"""FreeBSD, and an old BSD-derived stack without a FIN_WAIT_2 timer.

FreeBSD (sys/netinet/tcp_input.c, tcp_timer.c, tcp_usrreq.c; tcp(4)):

* A socket that can no longer receive (its application closed it) gets
  the 2MSL timer when it enters FIN_WAIT_2 (``tcp_do_segment``, case
  TCPS_FIN_WAIT_1; ``tcp_usrclosed`` when close() finds it already in
  FIN_WAIT_2): ``finwait2_timeout`` with ``fast_finwait2_recycle``, else
  the maximum idle time ``keepcnt * keepintvl`` (600 s).
* When that timer fires (``tcp_timer_2msl``): with fast recycle the
  connection is closed whatever arrived meanwhile; otherwise it is closed
  only if nothing was received for more than ``keepcnt * keepintvl``, and
  re-armed for ``keepintvl`` if something was. Every segment received
  counts, even an out-of-window keepalive forged by a firewall
  (``t_rcvtime`` is set before segment validation in ``tcp_do_segment``):
  that is how ipfw's keepalives kept seed 000's FIN_WAIT_2 alive.
* A FIN_WAIT_2 whose application only called shutdown() has no timer.
* Keepalives (``tcp_timer_keep``) run for every connection while
  ``net.inet.tcp.always_keepalive`` is 1 (the default), in states up to
  CLOSING, and drop the connection once idle for
  ``keepidle + keepcnt * keepintvl``.
* TIME_WAIT lasts 2 * ``net.inet.tcp.msl``.

``bsd-legacy`` is the same stack without the FIN_WAIT_2 timer and without
always_keepalive: the "until reboot" of seeds 001 and 002 (Apache's
fin_wait_2.html lists systems without a FIN_WAIT_2 timeout).
"""

from __future__ import annotations

from ..num import floor, maximum, truth
from ...model.params import Param
from . import Profile
from .classic import FIN_WAIT2, ClassicEndpoint

_TCP4 = "tcp(4) and sys/netinet/tcp_timer.c"


def _params(always_keepalive: int, fw2_timer: int) -> tuple[Param, ...]:
    return (
        Param("finwait2_timeout", 60.0, "seconds",
              "net.inet.tcp.finwait2_timeout: FIN_WAIT_2 lifetime with fast_finwait2_recycle",
              _TCP4 + " (tcp_timer_2msl)", minimum=0),
        Param("fast_finwait2_recycle", 0, "bool",
              "net.inet.tcp.fast_finwait2_recycle: close an orphaned FIN_WAIT_2 after "
              "finwait2_timeout even if segments arrive", _TCP4),
        Param("fin_wait_2_timer", fw2_timer, "bool",
              "whether the stack has a FIN_WAIT_2 timer at all (0: bsd-legacy)",
              "Apache 1.3 docs, misc/fin_wait_2.html"),
        Param("always_keepalive", always_keepalive, "bool",
              "net.inet.tcp.always_keepalive: keepalives on every connection", _TCP4),
        Param("keep_idle", 7200.0, "seconds", "net.inet.tcp.keepidle", _TCP4, minimum=1),
        Param("keep_intvl", 75.0, "seconds", "net.inet.tcp.keepintvl", _TCP4, minimum=1),
        Param("keep_count", 8, "count", "net.inet.tcp.keepcnt (TP_MAXIDLE = keepcnt * keepintvl)",
              _TCP4, minimum=1),
        Param("msl", 30.0, "seconds", "net.inet.tcp.msl: TIME_WAIT lasts 2 MSL", _TCP4,
              minimum=0.001),
        Param("rto_min", 0.03, "seconds", "net.inet.tcp.rexmit_min", _TCP4, minimum=0.001),
        Param("rto_slop", 0.2, "seconds", "net.inet.tcp.rexmit_slop, added to the RTO",
              _TCP4, minimum=0),
        Param("rto_max", 64.0, "seconds", "TCPTV_REXMTMAX (sys/netinet/tcp_timer.h)", _TCP4,
              minimum=0.1),
        Param("rto_syn", 1.0, "seconds", "net.inet.tcp.rexmit_initial", _TCP4, minimum=0.01),
        Param("max_retries", 12, "count",
              "retransmissions before tcp_drop() (TCP_MAXRXTSHIFT, net.inet.tcp.retries)",
              _TCP4, minimum=1),
    )


SOCKET = (
    Param("so_keepalive", 0, "bool", "SO_KEEPALIVE (keepalives without always_keepalive)",
          "setsockopt(2)"),
)


class BsdEndpoint(ClassicEndpoint):
    profile = "freebsd"

    def keepalive_enabled(self) -> bool:
        return truth((self.p.always_keepalive != 0) | (self.sock.so_keepalive != 0))

    def keep_idle(self):
        return self.p.keep_idle

    def time_wait_s(self):
        return 2 * self.p.msl

    def maxidle(self):
        return self.p.keep_count * self.p.keep_intvl  # TP_MAXIDLE

    def arm_fin_wait_2(self):
        if truth(self.p.fin_wait_2_timer == 0):
            return
        fast = truth(self.p.fast_finwait2_recycle != 0)
        first = self.p.finwait2_timeout if fast else self.maxidle()
        # the kernel re-checks every keepintvl after the first firing; only
        # the first re-check with idle > maxidle matters (see _next_check)
        self.fw2_grid = self.engine.now + first
        self.fw2_fast = fast
        self.timer("2msl", first, self.on_2msl)

    def _next_check(self):
        """The first firing of the 2MSL timer (at fw2_grid + k * keepintvl)
        at which the connection will have been idle more than maxidle,
        if nothing else arrives: tcp_timer_2msl() re-arms at every earlier
        one without effect, so they need not be simulated."""
        intvl = self.p.keep_intvl
        k = floor((self.maxidle() + self.last_rcv - self.fw2_grid) / intvl) + 1
        return self.fw2_grid + maximum(k, 0) * intvl

    def _reschedule_2msl(self):
        ev = self.timers.get("2msl")
        if ev is None or not ev.active or self.fw2_fast:
            return
        when = maximum(self._next_check(), self.engine.now)
        ev.cancel()
        self.timers["2msl"] = self.engine.at(when, self.on_2msl)

    def on_segment(self, seg):
        super().on_segment(seg)
        if self.state == FIN_WAIT2:
            self._reschedule_2msl()

    def on_out_of_window(self, seg):
        # t_rcvtime is refreshed by any segment that reaches the
        # connection, before validation (tcp_do_segment: "XXX: This should
        # be done after segment validation")
        self.last_rcv = self.engine.now
        self.send_ack(cause=seg)
        if self.state == FIN_WAIT2:
            self._reschedule_2msl()

    def on_fin_acked(self, seg):
        if self.orphan:  # SBS_CANTRCVMORE
            self.arm_fin_wait_2()

    def on_close(self):
        if self.state == FIN_WAIT2 and not self.mini:
            self.set_state(FIN_WAIT2)  # an orphan now
            self.arm_fin_wait_2()  # tcp_usrclosed()
            return
        super().on_close()

    def on_2msl(self):
        if self.state != FIN_WAIT2:
            return
        if self.fw2_fast and self.orphan:
            self.forget("fin_wait2_timeout")
            return
        if truth(self.engine.now - self.last_rcv <= self.maxidle()):
            # re-armed for keepintvl; jump to the re-check that can matter
            nxt = maximum(self._next_check(), self.engine.now + self.p.keep_intvl)
            self.timers["2msl"] = self.engine.at(nxt, self.on_2msl)
        else:
            self.forget("fin_wait2_idle")


class LegacyBsdEndpoint(BsdEndpoint):
    profile = "bsd-legacy"


PROFILES = (
    Profile("freebsd", "FreeBSD (sys/netinet, 10 to 15)", _params(1, 1), SOCKET, BsdEndpoint,
            ("tcp(4)", "sys/netinet/tcp_input.c", "sys/netinet/tcp_timer.c",
             "sys/netinet/tcp_usrreq.c")),
    Profile("bsd-legacy", "BSD-derived stack without a FIN_WAIT_2 timeout", _params(0, 0),
            SOCKET, LegacyBsdEndpoint, ("Apache 1.3 docs, misc/fin_wait_2.html",)),
)
