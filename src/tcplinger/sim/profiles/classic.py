"""Timers most non-Linux stacks share, parameterised per OS.

* Retransmission: RTO from the RTT, doubling up to a cap, giving up after
  ``max_retries`` retransmissions (BSD's ``TCP_MAXRXTSHIFT``, Windows'
  ``TcpMaxDataRetransmissions``) or once ``abort_after`` seconds passed
  without an ACK (Solaris and HP-UX's ``tcp_ip_abort_interval``).
  Giving up sends a RST (BSD ``tcp_drop()``).
* Keepalive: after ``keep_idle`` seconds without receiving anything, a
  probe every ``keep_intvl``; the connection is dropped (RST) when idle
  reaches ``keep_idle + keep_count * keep_intvl`` (BSD ``tcp_timer_keep``:
  the limit is on idle time, so any segment received resets it).
* TIME_WAIT: a fixed time, restarted by a retransmitted FIN.

Subclasses decide FIN_WAIT_2 (the part where stacks really differ), which
states keepalives run in, and the parameter values.
"""

from __future__ import annotations

from ..endpoint import (CLOSE_WAIT, CLOSING, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, LAST_ACK,
                        SYN_RECV, SYN_SENT, TIME_WAIT, Endpoint)
from ..num import maximum, minimum, truth
from ..segment import ACK, FIN, RST


class ClassicEndpoint(Endpoint):
    #: states in which keepalive probes are sent (BSD: up to CLOSING)
    KEEPALIVE_STATES = (ESTABLISHED, CLOSE_WAIT, FIN_WAIT1, CLOSING)

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.shift = 0
        self.rto = self.syn_rto()
        self.first_unacked_at = 0.0

    # ---- values a profile provides (parameters or constants) ----

    def rto_initial(self):
        """First RTO after the handshake."""
        return maximum(self.p.rto_min, self.path.rtt_s + self.p.rto_slop)

    def rto_max(self):
        return self.p.rto_max

    def syn_rto(self):
        return self.p.rto_syn

    def max_retries(self):
        """Retransmissions before giving up (None: only abort_after)."""
        return self.p.max_retries

    def abort_after(self):
        """Seconds without progress before giving up (None: unused)."""
        return None

    def keepalive_enabled(self) -> bool:
        return truth(self.sock.so_keepalive != 0)

    def keep_idle(self):
        return self.p.keep_idle

    def keep_intvl(self):
        return self.p.keep_intvl

    def keep_count(self):
        return self.p.keep_count

    def time_wait_s(self):
        return self.p.time_wait

    # ---- retransmission ----

    def on_syn_sent(self):
        self.shift = 0
        self.rto = self.syn_rto()
        self.first_unacked_at = self.engine.now
        self.timer("rtx", self.rto, self.on_rto)

    def on_established(self):
        self.cancel("rtx")
        self.shift = 0
        self.rto = self.rto_initial()
        self.last_rcv = self.engine.now
        if self.keepalive_enabled():
            self.timer("keep", self.keep_idle(), self.on_keep)

    def on_data_sent(self):
        ev = self.timers.get("rtx")
        if ev is None or not ev.active:
            self.shift = 0
            self.first_unacked_at = self.engine.now
            self.timer("rtx", self.rto, self.on_rto)

    def on_ack_advanced(self):
        self.shift = 0
        self.rto = self.rto_initial() if self.state not in (SYN_SENT, SYN_RECV) else self.rto
        self.first_unacked_at = self.engine.now
        if self.unacked():
            self.timer("rtx", self.rto, self.on_rto)
        else:
            self.cancel("rtx")

    def on_rto(self):
        if not self.unacked():
            return
        self.shift += 1
        limit = self.max_retries()
        over = limit is not None and truth(self.shift > limit)
        abort = self.abort_after()
        if abort is not None and truth(self.engine.now - self.first_unacked_at >= abort):
            over = True
        if over:
            self.note("sim.note.gave_up", state=self.state.name)
            if self.state not in (SYN_SENT,):
                self.send_rst(tag="retransmission-abort")
            self.forget("gave_up")
            return
        self.retransmit_head("retransmission")
        self.timer("rtx", minimum(self.rto * (2 ** self.shift), self.rto_max()), self.on_rto)

    # ---- receiving ----

    def on_segment(self, seg):
        self.last_rcv = self.engine.now

    # ---- keepalive ----

    def on_keep(self):
        if self.state is None or self.state not in self.KEEPALIVE_STATES \
                or not self.keepalive_enabled():
            return
        idle = self.engine.now - self.last_rcv
        if truth(idle < self.keep_idle()):
            self.timer("keep", self.keep_idle() - idle, self.on_keep)
            return
        if truth(idle >= self.keep_idle() + self.keep_count() * self.keep_intvl()):
            self.note("sim.note.keepalive_drop")
            self.send_rst(tag="keepalive-abort")
            self.forget("keepalive")
            return
        self.emit(ACK, seq=self.snd_una - 1, tag="keepalive")
        self.timer("keep", self.keep_intvl(), self.on_keep)

    # ---- TIME_WAIT ----

    def enter_time_wait(self):
        self.cancel_all()
        self.set_state(TIME_WAIT)
        self.timer("2msl", self.time_wait_s(), self.forget, "time_wait")

    def receive(self, seg):
        if self.state == TIME_WAIT:
            self.time_wait_receive(seg)
            return
        super().receive(seg)

    def time_wait_receive(self, seg):
        """RST ends it; a retransmitted FIN is acknowledged and restarts
        the timer; data or out-of-window segments get an ACK."""
        if seg.flags & RST:
            self.forget("reset")
            return
        if seg.flags & FIN:
            self.send_ack(cause=seg)
            self.timer("2msl", self.time_wait_s(), self.forget, "time_wait")
            return
        if seg.length or seg.seq != self.rcv_nxt:
            self.send_ack(cause=seg)

    # ---- helpers for FIN_WAIT_2 policies ----

    def fw2_expire(self, why: str = "fin_wait2_timeout", reset: bool = False):
        if self.state != FIN_WAIT2:
            return
        if reset:
            self.send_rst(tag="fin-wait-2-timeout")
        self.forget(why)


__all__ = ["ClassicEndpoint", "CLOSE_WAIT", "CLOSING", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2",
           "LAST_ACK", "SYN_RECV", "SYN_SENT", "TIME_WAIT"]
