"""A TCP endpoint: one socket of the simulated connection, its host and
its application.

:class:`Endpoint` implements what all stacks share (RFC 793/9293 segment
processing, sim/segment_arrival.py: acceptability, RST, ACK of our FIN,
in-order data and FIN, the handshake) and leaves the teardown timers --
the part where stacks differ -- to hooks that each OS profile overrides
(sim/profiles/).

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
from .segment_arrival import SegmentArrival

ESTABLISHED = TcpState.ESTABLISHED
SYN_SENT = TcpState.SYN_SENT
SYN_RECV = TcpState.SYN_RECV
FIN_WAIT1 = TcpState.FIN_WAIT1
FIN_WAIT2 = TcpState.FIN_WAIT2
TIME_WAIT = TcpState.TIME_WAIT
CLOSE_WAIT = TcpState.CLOSE_WAIT
LAST_ACK = TcpState.LAST_ACK
CLOSING = TcpState.CLOSING



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


class Endpoint(SegmentArrival):
    """Generic TCP (segment processing: SegmentArrival). Profiles override
    the ``on_*`` hooks and timers."""

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
