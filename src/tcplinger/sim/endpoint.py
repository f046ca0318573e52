"""A TCP endpoint: one socket of the simulated connection, its host and
its application.

:class:`Endpoint` implements what all stacks share (RFC 793/9293 segment
processing: acceptability, RST, ACK of our FIN, in-order data and FIN,
the handshake) and leaves the teardown timers -- the part where stacks
differ -- to hooks that each OS profile overrides (sim/profiles/).

The application is scripted (:class:`App`): close() or shutdown() at a
time, what to do when read() returns 0 (end of file), data to send. The
host can become unreachable (``vanish_at``: nothing gets in or out, the
stack keeps running) or lose the connection (``forget_at``: a reboot; it
then answers RST like any host without the socket).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model.states import TcpState
from .num import truth
from .segment import ACK, FIN, RST, SYN, Segment

ESTABLISHED = TcpState.ESTABLISHED
SYN_SENT = TcpState.SYN_SENT
SYN_RECV = TcpState.SYN_RECV
FIN_WAIT1 = TcpState.FIN_WAIT1
FIN_WAIT2 = TcpState.FIN_WAIT2
TIME_WAIT = TcpState.TIME_WAIT
CLOSE_WAIT = TcpState.CLOSE_WAIT
LAST_ACK = TcpState.LAST_ACK
CLOSING = TcpState.CLOSING

#: Receive window the simulated sockets advertise (bytes).
WINDOW = 65535


@dataclass(frozen=True)
class App:
    """What the application on one side does. Times are seconds from the
    start of the simulation; None means never."""

    close_at: float | None = None  # close() (or the process exits)
    shutdown_at: float | None = None  # shutdown(SHUT_WR), the fd stays open
    #: when read() returns 0 (the peer's FIN): "close", "shutdown" or "ignore"
    on_eof: str = "ignore"
    on_eof_delay: float = 0.0
    #: SO_LINGER with l_linger = 0: close() sends RST instead of FIN
    abort_on_close: bool = False
    #: (time, bytes) writes
    sends: tuple[tuple[float, int], ...] = ()
    reads: bool = True  # the application reads what arrives


@dataclass(frozen=True)
class Host:
    vanish_at: float | None = None  # unreachable from then on, silently
    forget_at: float | None = None  # loses the connection (reboot), answers RST


class Endpoint:
    """Generic TCP. Profiles override the ``on_*`` hooks and timers."""

    profile = "generic"

    def __init__(self, name: str, peer: str, engine, path, params, sock, app: App, host: Host,
                 record: bool = True):
        self.name = name
        self.peer = peer
        self.engine = engine
        self.path = path
        self.p = params  # profile parameters (host level: sysctls, registry)
        self.sock = sock  # socket options of this connection's socket
        self.app = app
        self.host = host
        self.record = record
        # connection state; None: this host has no state for the connection
        self.state: TcpState | None = None
        self.mini = False  # a timewait-type minisocket (Linux)
        self.orphan = False  # the application has closed the socket
        self.owned = True
        self.unreachable = False
        self.spans: list[list] = []  # [state, start, end, orphan, mini]
        self.notes: list[tuple] = []
        # sequence space (ISN 0)
        self.snd_una = 0
        self.snd_nxt = 0
        self.rcv_nxt = 0
        self.fin_seq: int | None = None  # sequence number of our FIN
        self.shut_wr = False
        self.eof = False  # the peer's FIN was received
        self.unread = 0
        self.queued = 0  # bytes written but not yet sent
        self.last_rcv = 0.0  # time of the last segment received
        self.timers: dict = {}

    # ---- bookkeeping ----

    def note(self, key: str, **fields) -> None:
        if self.record:
            self.notes.append((self.engine.now, self.name, key, tuple(fields.items())))

    def set_state(self, state: TcpState | None, mini: bool | None = None) -> None:
        if mini is not None:
            self.mini = mini
        if state is None:
            self.mini = False
        now = self.engine.now
        if self.spans and self.spans[-1][2] is None:
            last = self.spans[-1]
            if state is not None and last[0] == state and last[3] == self.orphan \
                    and last[4] == self.mini:
                self.state = state
                return
            if last[1] is now:
                # opened during this very event: replace it rather than
                # leave a zero-length span (identity, not equality: it
                # works the same for batches of times)
                self.spans.pop()
            else:
                last[2] = now
        self.state = state
        if state is not None:
            self.spans.append([state, now, None, self.orphan, self.mini])

    def forget(self, why: str) -> None:
        """The connection no longer exists on this host."""
        if self.state is None:
            return
        self.note("sim.note.forget_" + why, state=self.state.name)
        self.cancel_all()
        self.set_state(None)

    def timer(self, name: str, delay, fn, *args) -> None:
        """(Re)arm the named timer ``delay`` seconds from now."""
        old = self.timers.get(name)
        if old is not None:
            old.cancel()
        self.timers[name] = self.engine.after(self.kernel_delay(delay), fn, *args)

    def cancel(self, name: str) -> None:
        old = self.timers.pop(name, None)
        if old is not None:
            old.cancel()

    def cancel_all(self) -> None:
        for ev in self.timers.values():
            ev.cancel()
        self.timers.clear()

    def kernel_delay(self, delay):
        """When a timer armed for ``delay`` really fires (profiles model
        their kernel's timer granularity)."""
        return delay

    # ---- sending ----

    def emit(self, flags: int, seq: int | None = None, length: int = 0, tag: str = "",
             cause: Segment | None = None) -> Segment:
        seg = Segment(self.name, self.peer, self.snd_nxt if seq is None else seq, self.rcv_nxt,
                      flags, length, tag, cause=None if cause is None else cause.sid)
        self.path.send(seg)
        return seg

    def send_ack(self, cause: Segment | None = None, tag: str = "") -> None:
        self.emit(ACK, tag=tag, cause=cause)

    def send_rst(self, tag: str = "reset", cause: Segment | None = None) -> None:
        self.emit(RST | ACK, tag=tag, cause=cause)

    def unacked(self) -> bool:
        return self.snd_una < self.snd_nxt

    def retransmit_head(self, tag: str) -> None:
        """Send again what is outstanding from ``snd_una``."""
        if self.state == SYN_SENT:
            self.emit(SYN, seq=0, tag=tag)
            return
        if self.state == SYN_RECV:
            self.emit(SYN | ACK, seq=0, tag=tag)
            return
        end = self.snd_nxt
        fin = self.fin_seq is not None and self.snd_una <= self.fin_seq
        length = (self.fin_seq if fin else end) - self.snd_una
        self.emit(ACK | (FIN if fin else 0), seq=self.snd_una, length=length, tag=tag)

    # ---- application ----

    def start(self, connect: bool) -> None:
        """Schedule the application's script; the client connects at 0."""
        a = self.app
        if connect:
            self.engine.at(0.0, self.app_connect)
        if a.close_at is not None:
            self.engine.at(a.close_at, self.app_close)
        if a.shutdown_at is not None:
            self.engine.at(a.shutdown_at, self.app_shutdown)
        for t, n in a.sends:
            self.engine.at(t, self.app_send, n)
        h = self.host
        if h.vanish_at is not None:
            self.engine.at(h.vanish_at, self.host_vanish)
        if h.forget_at is not None:
            self.engine.at(h.forget_at, self.host_forget)

    def app_connect(self) -> None:
        self.note("sim.note.connect")
        self.set_state(SYN_SENT)
        self.snd_una, self.snd_nxt = 0, 1
        self.emit(SYN, seq=0)
        self.on_syn_sent()

    def app_send(self, n: int) -> None:
        if not self.owned or self.state not in (ESTABLISHED, CLOSE_WAIT):
            return
        self.note("sim.note.send", bytes=n)
        self.emit(ACK, length=n)
        self.snd_nxt += n
        self.on_data_sent()

    def app_close(self) -> None:
        if not self.owned:
            return
        self.owned = False
        self.orphan = self.state is not None
        self.note("sim.note.close")
        if self.state is None:
            return
        if self.app.abort_on_close or self.unread:
            # SO_LINGER 0, or unread data (RFC 2525 2.17): abort with RST
            self.note("sim.note.abort_close")
            self.send_rst()
            self.forget("abort")
            return
        self.on_close()

    def app_shutdown(self) -> None:
        if not self.owned or self.state is None:
            return
        self.note("sim.note.shutdown")
        self.shutdown_wr()

    def shutdown_wr(self) -> None:
        """Send our FIN: ESTABLISHED -> FIN_WAIT1, CLOSE_WAIT -> LAST_ACK."""
        if self.shut_wr or self.state not in (ESTABLISHED, CLOSE_WAIT, SYN_RECV):
            return
        self.shut_wr = True
        self.set_state(FIN_WAIT1 if self.state != CLOSE_WAIT else LAST_ACK)
        self.fin_seq = self.snd_nxt
        self.emit(FIN | ACK)
        self.snd_nxt += 1
        self.on_data_sent()

    def on_eof_reaction(self) -> None:
        what = self.app.on_eof
        if not self.owned or what == "ignore":
            return
        fn = self.app_close if what == "close" else self.app_shutdown
        if truth(self.app.on_eof_delay > 0):
            self.engine.after(self.app.on_eof_delay, fn)
        else:
            fn()

    # ---- host ----

    def host_vanish(self) -> None:
        self.note("sim.note.vanish")
        self.unreachable = True

    def host_forget(self) -> None:
        self.note("sim.note.host_forget")
        self.forget("reboot")

    # ---- receiving ----

    def acceptable(self, seg: Segment) -> bool:
        """RFC 9293 3.10.7.4: does the segment fall in the receive window?"""
        seq, n = seg.seq, seg.end_seq - seg.seq
        if n == 0:
            return self.rcv_nxt <= seq < self.rcv_nxt + WINDOW
        return (self.rcv_nxt <= seq < self.rcv_nxt + WINDOW) or \
            (self.rcv_nxt <= seg.end_seq - 1 < self.rcv_nxt + WINDOW)

    def no_socket(self, seg: Segment) -> None:
        """A host without state for the connection answers RST (RFC 9293
        3.10.7.1), unless the segment is itself a RST."""
        if seg.flags & RST:
            return
        if seg.flags & ACK:
            s = Segment(self.name, self.peer, seg.ack, 0, RST, tag="reset", cause=seg.sid)
        else:
            s = Segment(self.name, self.peer, 0, seg.end_seq, RST | ACK, tag="reset",
                        cause=seg.sid)
        self.path.send(s)

    def receive(self, seg: Segment) -> None:
        if self.state is None:
            if self.name == "server" and seg.flags & SYN and not seg.flags & ACK \
                    and self.snd_nxt == 0:
                self.accept_syn(seg)
            else:
                self.no_socket(seg)
            return
        if self.mini:
            self.minisock_receive(seg)
            return
        f = seg.flags
        st = self.state
        if st == SYN_SENT:
            if f & RST:
                if f & ACK and seg.ack == self.snd_nxt:
                    self.forget("refused")
                return
            if f & SYN and f & ACK and seg.ack == self.snd_nxt:
                self.rcv_nxt = seg.seq + 1
                self.snd_una = seg.ack
                self.last_rcv = self.engine.now
                self.set_state(ESTABLISHED)
                self.send_ack(cause=seg)
                self.on_ack_advanced()
                self.on_established()
            return
        if not self.acceptable(seg):
            if not f & RST:
                self.on_out_of_window(seg)
            return
        if f & RST:
            if seg.seq == self.rcv_nxt:
                self.note("sim.note.reset_received", state=st.name)
                self.on_reset()
            else:
                self.send_ack(cause=seg, tag="challenge-ack")  # RFC 5961 3.2
            return
        if f & SYN:
            self.send_ack(cause=seg, tag="challenge-ack")  # RFC 5961 4.2
            return
        if not f & ACK:
            return
        self.on_segment(seg)
        if self.snd_una < seg.ack <= self.snd_nxt:
            self.snd_una = seg.ack
            self.on_ack_advanced()
        fin_acked = self.fin_seq is not None and self.snd_una > self.fin_seq
        if st == SYN_RECV:
            self.set_state(ESTABLISHED)
            self.on_established()
            st = ESTABLISHED
        elif st == FIN_WAIT1 and fin_acked:
            self.set_state(FIN_WAIT2)
            self.on_fin_acked(seg)
            if self.state is None or self.mini:
                return
            st = self.state
        elif st == CLOSING and fin_acked:
            self.enter_time_wait()
            return
        elif st == LAST_ACK and fin_acked:
            self.forget("last_ack")
            return
        if seg.length:
            if self.orphan or st not in (ESTABLISHED, FIN_WAIT1, FIN_WAIT2):
                if seg.seq + seg.length > self.rcv_nxt:
                    self.on_data_after_close(seg)
                    return
            elif seg.seq == self.rcv_nxt:
                self.rcv_nxt += seg.length
                if not self.app.reads:
                    self.unread += seg.length
        if f & FIN and seg.seq + seg.length == self.rcv_nxt and not self.eof:
            self.rcv_nxt += 1
            self.eof = True
            self.send_ack(cause=seg)
            if st == ESTABLISHED:
                self.set_state(CLOSE_WAIT)
                self.note("sim.note.eof")
                self.on_eof_reaction()
            elif st == FIN_WAIT1:
                self.set_state(CLOSING)
            elif st == FIN_WAIT2:
                self.enter_time_wait()
            return
        if f & FIN and self.eof:
            self.send_ack(cause=seg)  # a retransmitted FIN
            return
        if seg.length:
            self.send_ack(cause=seg)

    def accept_syn(self, seg: Segment) -> None:
        """A listening server gets a SYN: the connection's server socket is
        born in SYN_RECV (the listener itself is not a party)."""
        self.rcv_nxt = seg.seq + 1
        self.snd_una, self.snd_nxt = 0, 1
        self.last_rcv = self.engine.now
        self.set_state(SYN_RECV)
        self.emit(SYN | ACK, seq=0, cause=seg)
        self.on_syn_sent()

    # ---- hooks for profiles ----

    def on_syn_sent(self) -> None:
        """A SYN or SYN-ACK is outstanding."""

    def on_established(self) -> None:
        """The handshake completed."""

    def on_data_sent(self) -> None:
        """New data or our FIN went out."""

    def on_ack_advanced(self) -> None:
        """snd_una moved forward."""

    def on_segment(self, seg: Segment) -> None:
        """An acceptable segment with ACK arrived (idle timers restart)."""
        self.last_rcv = self.engine.now

    def on_out_of_window(self, seg: Segment) -> None:
        """Not acceptable: answer with an ACK (keepalive probes get theirs
        this way). Linux discards it before any timestamp is updated
        (tcp_validate_incoming -> tcp_send_dupack)."""
        self.send_ack(cause=seg)

    def on_reset(self) -> None:
        self.forget("reset")

    def on_close(self) -> None:
        """close() while the connection exists."""
        if self.state in (ESTABLISHED, CLOSE_WAIT, SYN_RECV):
            self.shutdown_wr()
        elif self.state == SYN_SENT:
            self.forget("closed")
        else:
            self.set_state(self.state)  # new span: now an orphan

    def on_fin_acked(self, seg: Segment) -> None:
        """FIN_WAIT1 -> FIN_WAIT2 just happened."""

    def enter_time_wait(self) -> None:
        self.set_state(TIME_WAIT)

    def on_data_after_close(self, seg: Segment) -> None:
        """Data for a socket that can no longer deliver it: RST."""
        self.send_rst(cause=seg)
        self.forget("data_after_close")

    def minisock_receive(self, seg: Segment) -> None:
        raise NotImplementedError
