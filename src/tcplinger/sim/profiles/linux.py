"""Linux (6.x) teardown, as the kernel does it and as measured on 6.18.

Sources are the functions named below (net/ipv4/tcp.c ``__tcp_close``,
``tcp_fin_time`` in include/net/tcp.h, net/ipv4/tcp_input.c
``tcp_rcv_state_process``, net/ipv4/tcp_timer.c ``tcp_keepalive_timer``,
``tcp_write_timeout``, ``retransmits_timed_out``, ``tcp_model_timeout``,
net/ipv4/tcp_minisocks.c ``tcp_time_wait``, ``tcp_timewait_state_process``,
net/ipv4/tcp_output.c ``tcp_schedule_loss_probe``) and the measurements
in docs/kernel-behaviour.md ("Simulator calibration"). Behaviour worth
knowing, all measured:

* An orphaned FIN_WAIT2 (close() was called) lives ``T`` = TCP_LINGER2 if
  set (capped at 120 s) else ``tcp_fin_timeout``, never less than 3.5 RTO.
  With ``T <= 60`` it is a timewait-type minisocket for ``T``. With
  ``T > 60`` it stays a full socket for ``T - 60`` (keepalive timer),
  then becomes a minisocket for another ``T - 60``: it lives
  ``2 * (T - 60)``, so ``T = 61`` gives 2 s and ``T = 90`` gives 60 s.
* A FIN_WAIT2 whose application only called shutdown() never times out.
* Creating a minisocket (TIME_WAIT or orphaned FIN_WAIT2) fails once
  ``tcp_max_tw_buckets`` of them exist: the socket is destroyed at once,
  without RST.
* A FIN that is never acknowledged: one tail-loss probe, then RTO
  retransmissions with doubling backoff; the socket gives up at the first
  RTO firing at which the time since the first RTO retransmission reaches
  ``(2^(N+1) - 1) * 200 ms`` (N = ``tcp_orphan_retries``, 0 meaning 8,
  for orphans; ``tcp_retries2`` otherwise). It then vanishes without RST.
* Kernel timers run on the timer wheel: a timer of d jiffies fires up to
  one wheel granularity late (8^level jiffies; 2.048 s for timers between
  16 s and 129 s at HZ=250). The model adds the mean lateness.
"""

from __future__ import annotations

import numpy as np

from ..endpoint import FIN_WAIT2, SYN_RECV, SYN_SENT, TIME_WAIT, Endpoint
from ..segment_arrival import WINDOW
from ..num import ceil, is_batch, maximum, minimum, truth, where
from ...model.params import Param
from ..segment import ACK, FIN, RST, SYN
from . import Profile
from .linux_timers import (TCP_FIN_TIMEOUT_MAX, TCP_RTO_MAX, TCP_RTO_MIN, TCP_TIMEOUT_INIT,
                           TCP_TIMEWAIT_LEN, model_timeout, wheel_lateness)

SRC = "Documentation/networking/ip-sysctl.rst; "

PARAMS = (
    Param("tcp_fin_timeout", 60.0, "seconds",
          "how long an orphaned FIN_WAIT2 waits for the peer's FIN (T; see 2*(T-60) above 60 s)",
          SRC + "tcp_fin_time() in include/net/tcp.h; measured", minimum=0),
    Param("tcp_keepalive_time", 7200.0, "seconds", "idle time before the first keepalive probe",
          SRC + "tcp_keepalive_timer() in net/ipv4/tcp_timer.c", minimum=1),
    Param("tcp_keepalive_intvl", 75.0, "seconds", "interval between keepalive probes",
          SRC + "tcp_keepalive_timer()", minimum=1),
    Param("tcp_keepalive_probes", 9, "count", "unanswered probes before the RST",
          SRC + "tcp_keepalive_timer()", minimum=1, maximum=127),
    Param("tcp_orphan_retries", 0, "count",
          "retransmissions of an orphan's FIN before giving up (0 means 8)",
          SRC + "tcp_orphan_retries() in net/ipv4/tcp_timer.c; measured", minimum=0,
          maximum=255),
    Param("tcp_retries2", 15, "count", "retransmissions before an owned socket gives up",
          SRC + "tcp_write_timeout(), tcp_model_timeout(); measured", minimum=0, maximum=255),
    Param("tcp_syn_retries", 6, "count", "SYN retransmissions before connect() fails",
          SRC + "tcp_write_timeout()", minimum=1, maximum=127),
    Param("tcp_max_tw_buckets", 131072, "count",
          "most timewait-type sockets (TIME_WAIT and orphaned FIN_WAIT2) at once",
          SRC + "inet_twsk_alloc() in net/ipv4/inet_timewait_sock.c; default is from memory "
          "(131072 on the measured host); measured", minimum=0),
    Param("tw_in_use", 0, "count",
          "timewait-type sockets already present in the namespace (for the bucket limit)",
          "simulator input (sockstat 'tw')", minimum=0),
    Param("tcp_rto_min", TCP_RTO_MIN, "seconds", "minimum RTO (route option rto_min)",
          "TCP_RTO_MIN in include/net/tcp.h; __tcp_set_rto()", minimum=0.001),
    Param("tlp", 1, "bool", "tail loss probe before the first RTO (tcp_early_retrans=3, SACK)",
          SRC + "tcp_schedule_loss_probe() in net/ipv4/tcp_output.c; measured"),
    Param("tcp_invalid_ratelimit", 0.5, "seconds",
          "minimum gap between ACKs to out-of-window segments at a minisocket",
          SRC + "tcp_timewait_check_oow_rate_limit()", minimum=0),
    Param("tcp_rfc1337", 0, "bool", "ignore RST in TIME_WAIT (RFC 1337)",
          SRC + "tcp_timewait_state_process()"),
    Param("hz", 250, "count", "CONFIG_HZ of the kernel: timer granularity",
          "/proc/config.gz CONFIG_HZ (250 on the measured kernel); kernel/time/timer.c",
          minimum=100, maximum=1000),
    Param("timer_wheel", 1, "bool",
          "model the timer wheel's lateness (mean of up to one level granularity)",
          "calc_index() in kernel/time/timer.c; measured slack in docs/kernel-behaviour.md"),
)

SOCKET = (
    Param("so_keepalive", 0, "bool", "SO_KEEPALIVE on this socket (socket(7))",
          "socket(7); tcp_keepalive_timer() only probes with SOCK_KEEPOPEN"),
    Param("keepidle", 0.0, "seconds", "TCP_KEEPIDLE (0: tcp_keepalive_time)", "tcp(7)",
          minimum=0, maximum=32767),
    Param("keepintvl", 0.0, "seconds", "TCP_KEEPINTVL (0: tcp_keepalive_intvl)", "tcp(7)",
          minimum=0, maximum=32767),
    Param("keepcnt", 0, "count", "TCP_KEEPCNT (0: tcp_keepalive_probes)", "tcp(7)", minimum=0,
          maximum=127),
    Param("linger2", 0.0, "seconds",
          "TCP_LINGER2: orphaned FIN_WAIT2 lifetime (0: tcp_fin_timeout; negative: RST at close; "
          "capped at 120 s)", "tcp(7); do_tcp_setsockopt() in net/ipv4/tcp.c; measured"),
)

def _in_window(seq, end_seq, s_win, e_win) -> bool:
    """tcp_in_window() of net/ipv4/tcp_minisocks.c."""
    if seq == s_win:
        return True
    if end_seq > s_win and seq < e_win:
        return True
    return seq == e_win and seq == end_seq


class LinuxEndpoint(Endpoint):
    profile = "linux"

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        p = self.p
        self.hz = p.hz
        srtt = self.path.rtt_s
        # __tcp_set_rto(): srtt + rttvar, rttvar floored at rto_min; jiffies
        self.rto_base_j = ceil((srtt + p.tcp_rto_min) * self.hz - 1e-9)
        self.rto_j = self.rto_base_j
        self.srtt = srtt
        self.retransmits = 0
        self.retrans_stamp = None
        self.tlp_out = False
        self.probes_out = 0
        self.last_oow_ack = None

    # ---- time ----

    def kernel_delay(self, delay):
        d_j = ceil(delay * self.hz - 1e-9)
        if truth(self.p.timer_wheel != 0):
            d_j = d_j + wheel_lateness(d_j)
        return d_j / self.hz

    def rto_s(self):
        return self.rto_j / self.hz

    # ---- socket option helpers ----

    def keepidle(self):
        k = self.sock.keepidle
        return where(k > 0, k, self.p.tcp_keepalive_time)

    def keepintvl(self):
        k = self.sock.keepintvl
        return where(k > 0, k, self.p.tcp_keepalive_intvl)

    def keepcnt(self):
        k = self.sock.keepcnt
        return where(k > 0, k, self.p.tcp_keepalive_probes)

    def fin_time(self):
        """tcp_fin_time(): linger2 or tcp_fin_timeout, at least 3.5 RTO."""
        l2 = self.sock.linger2
        t = where(l2 > 0, minimum(l2, TCP_FIN_TIMEOUT_MAX), self.p.tcp_fin_timeout)
        rto = self.rto_j
        floor_j = rto * 4 - np.floor(rto / 2) if is_batch(rto) else rto * 4 - (rto // 2)
        return maximum(t, floor_j / self.hz)

    # ---- retransmission ----

    def on_syn_sent(self):
        self.retransmits = 0
        self.timer("rtx", TCP_TIMEOUT_INIT, self.on_syn_timeout, TCP_TIMEOUT_INIT)

    def on_syn_timeout(self, rto):
        if self.state not in (SYN_SENT, SYN_RECV):
            return
        if self.retransmits >= (self.p.tcp_syn_retries if self.state == SYN_SENT else 5):
            self.note("sim.note.gave_up", state=self.state.name)
            self.forget("gave_up")
            return
        self.retransmit_head("retransmission")
        self.retransmits += 1
        self.timer("rtx", rto * 2, self.on_syn_timeout, rto * 2)

    def on_established(self):
        self.retransmits = 0
        self.cancel("rtx")
        if truth(self.sock.so_keepalive != 0):
            self.timer("keepalive", self.keepidle(), self.on_keepalive)

    def on_data_sent(self):
        ev = self.timers.get("rtx")
        if ev is None or not ev.active:
            self.arm_rtx()

    def arm_rtx(self):
        if truth(self.p.tlp != 0) and not self.tlp_out and self.retransmits == 0:
            # tcp_schedule_loss_probe(): 2*srtt + rto_min with one packet
            # out, but never later than the RTO
            pto_j = ceil(2 * self.srtt * self.hz - 1e-9) + ceil(self.p.tcp_rto_min * self.hz - 1e-9)
            self.timer("rtx", minimum(pto_j, self.rto_j) / self.hz, self.on_loss_probe)
        else:
            self.timer("rtx", self.rto_s(), self.on_rto)

    def on_loss_probe(self):
        if not self.unacked():
            return
        self.tlp_out = True
        self.retransmit_head("loss-probe")
        # tcp_rearm_rto(): the RTO counts from this (re)transmission
        self.timer("rtx", self.rto_s(), self.on_rto)

    def retry_limit(self):
        if self.orphan:
            alive = self.rto_j < TCP_RTO_MAX * self.hz
            n = self.p.tcp_orphan_retries
            return where((n == 0) & alive, 8, n)  # tcp_orphan_retries()
        return self.p.tcp_retries2

    def on_rto(self):
        if not self.unacked():
            return
        if self.retransmits > 0:
            elapsed = self.engine.now - self.retrans_stamp
            if truth(elapsed >= model_timeout(self.retry_limit())):
                # tcp_write_err(): tcp_done() without a RST
                self.note("sim.note.gave_up", state=self.state.name)
                self.forget("gave_up")
                return
        self.retransmit_head("retransmission")
        if self.retransmits == 0:
            self.retrans_stamp = self.engine.now
        self.retransmits += 1
        self.rto_j = minimum(self.rto_j * 2, TCP_RTO_MAX * self.hz)
        self.timer("rtx", self.rto_s(), self.on_rto)

    def on_ack_advanced(self):
        self.retransmits = 0
        self.rto_j = self.rto_base_j
        self.tlp_out = False
        if self.unacked():
            self.timer("rtx", self.rto_s(), self.on_rto)
        else:
            self.cancel("rtx")

    # ---- receiving ----

    def on_segment(self, seg):
        self.last_rcv = self.engine.now
        self.probes_out = 0  # tcp_ack()

    def on_fin_acked(self, seg):
        """tcp_rcv_state_process(), case TCP_FIN_WAIT1."""
        if not self.orphan:
            return  # owned: no timer at all (measured: never times out)
        if truth(self.sock.linger2 < 0):
            self.note("sim.note.linger2_abort")
            self.send_rst(cause=seg)
            self.forget("linger2")
            return
        if seg.length and seg.seq + seg.length > self.rcv_nxt:
            self.on_data_after_close(seg)
            return
        tmo = self.fin_time()
        if truth(tmo > TCP_TIMEWAIT_LEN):
            self.timer("keepalive", tmo - TCP_TIMEWAIT_LEN, self.on_keepalive)
        elif seg.flags & FIN:
            self.timer("keepalive", tmo, self.on_keepalive)
        else:
            self.to_minisock(FIN_WAIT2, tmo)

    def on_close(self):
        """__tcp_close()."""
        st = self.state
        if self.mini:
            return  # the minisocket is not the application's any more
        if st == FIN_WAIT2:
            if truth(self.sock.linger2 < 0):
                self.note("sim.note.linger2_abort")
                self.send_rst()
                self.forget("linger2")
                return
            self.set_state(FIN_WAIT2)  # now an orphan
            tmo = self.fin_time()
            if truth(tmo > TCP_TIMEWAIT_LEN):
                self.timer("keepalive", tmo - TCP_TIMEWAIT_LEN, self.on_keepalive)
            else:
                self.to_minisock(FIN_WAIT2, tmo)
            return
        super().on_close()

    def enter_time_wait(self):
        self.to_minisock(TIME_WAIT, TCP_TIMEWAIT_LEN)

    def to_minisock(self, substate, timeo):
        """tcp_time_wait(): hand the connection to a timewait-type socket."""
        if truth(self.p.tw_in_use >= self.p.tcp_max_tw_buckets):
            self.note("sim.note.tw_overflow", state=substate.name)
            self.forget("tw_overflow")
            return
        if substate == TIME_WAIT:
            timeo = TCP_TIMEWAIT_LEN
        else:
            rto = self.rto_j
            rto35 = (rto * 4 - (np.floor(rto / 2) if is_batch(rto) else rto // 2)) / self.hz
            timeo = maximum(timeo, rto35)
        self.cancel_all()
        self.orphan = True
        self.set_state(substate, mini=True)
        self.timer("tw", timeo, self.tw_expire)

    def tw_expire(self):
        self.forget("time_wait" if self.state == TIME_WAIT else "fin_wait2_timeout")

    def oow_ack(self, seg):
        """An ACK for an out-of-window segment, at most one per
        tcp_invalid_ratelimit (tcp_timewait_check_oow_rate_limit())."""
        now = self.engine.now
        if self.last_oow_ack is None or truth(now - self.last_oow_ack >= self.p.tcp_invalid_ratelimit):
            self.last_oow_ack = now
            self.send_ack(cause=seg)

    def minisock_receive(self, seg):
        """tcp_timewait_state_process()."""
        f = seg.flags
        if self.state == FIN_WAIT2:
            if not _in_window(seg.seq, seg.end_seq, self.rcv_nxt, self.rcv_nxt + WINDOW):
                self.oow_ack(seg)
                return
            if f & RST:
                self.forget("reset")
                return
            if f & SYN and seg.seq >= self.rcv_nxt:
                self.send_rst(cause=seg)
                self.forget("reset")
                return
            if not f & ACK or seg.end_seq <= self.rcv_nxt or seg.end_seq == seg.seq:
                return  # duplicate ACK
            if not f & FIN or seg.end_seq != self.rcv_nxt + 1:
                self.send_rst(cause=seg)  # new data after a half-duplex close
                self.forget("data_after_close")
                return
            self.rcv_nxt += 1
            self.send_ack(cause=seg)
            self.set_state(TIME_WAIT, mini=True)
            self.timer("tw", TCP_TIMEWAIT_LEN, self.tw_expire)
            return
        # TIME_WAIT
        if seg.seq == self.rcv_nxt and (seg.end_seq == seg.seq or f & RST):
            if f & RST:
                if truth(self.p.tcp_rfc1337 == 0):
                    self.forget("reset")
            else:
                self.timer("tw", TCP_TIMEWAIT_LEN, self.tw_expire)  # restart 2MSL
            return
        if not f & RST:
            if f & ACK:
                self.timer("tw", TCP_TIMEWAIT_LEN, self.tw_expire)
            self.oow_ack(seg)

    # ---- keepalive ----

    def on_keepalive(self):
        """tcp_keepalive_timer()."""
        if self.state is None or self.mini:
            return
        if self.state == FIN_WAIT2 and self.orphan:
            if truth(self.sock.linger2 >= 0):
                tmo = self.fin_time() - TCP_TIMEWAIT_LEN
                if truth(tmo > 0):
                    self.to_minisock(FIN_WAIT2, tmo)
                    return
            self.send_rst()
            self.forget("fin_wait2_timeout")
            return
        if truth(self.sock.so_keepalive == 0) or self.state in (SYN_SENT, SYN_RECV):
            return
        idle = self.keepidle()
        if self.unacked():
            self.timer("keepalive", idle, self.on_keepalive)
            return
        elapsed = self.engine.now - self.last_rcv
        if truth(elapsed >= idle):
            if truth(self.probes_out >= self.keepcnt()):
                self.note("sim.note.keepalive_abort", probes=self.probes_out)
                self.send_rst(tag="keepalive-abort")
                self.forget("keepalive")
                return
            self.emit(ACK, seq=self.snd_una - 1, tag="keepalive")
            self.probes_out += 1
            self.timer("keepalive", self.keepintvl(), self.on_keepalive)
        else:
            self.timer("keepalive", idle - elapsed, self.on_keepalive)


PROFILES = (
    Profile("linux", "Linux 6.x (measured on 6.18)", PARAMS, SOCKET, LinuxEndpoint,
            ("net/ipv4/tcp.c", "net/ipv4/tcp_input.c", "net/ipv4/tcp_timer.c",
             "net/ipv4/tcp_minisocks.c", "Documentation/networking/ip-sysctl.rst",
             "docs/kernel-behaviour.md")),
)
