"""What every stack does with an arriving segment (RFC 9293 3.10.7): the
handshake's reply, acceptability, RST and SYN in a synchronised state, the
ACK of our FIN, in-order data and the peer's FIN. The profile hooks
(``on_*``, sim/endpoint.py and sim/profiles/) take it from there."""

from __future__ import annotations

from ..model.states import TcpState
from .segment import ACK, FIN, RST, SYN, Segment

ESTABLISHED, SYN_SENT, SYN_RECV = TcpState.ESTABLISHED, TcpState.SYN_SENT, TcpState.SYN_RECV
FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT = TcpState.FIN_WAIT1, TcpState.FIN_WAIT2, TcpState.CLOSE_WAIT
LAST_ACK, CLOSING = TcpState.LAST_ACK, TcpState.CLOSING

#: Receive window the simulated sockets advertise (bytes).
WINDOW = 65535


class SegmentArrival:
    """Segment processing of :class:`~tcplinger.sim.endpoint.Endpoint`."""

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
        if self.state == SYN_SENT:
            self._handshake_reply(seg)
            return
        if not self.acceptable(seg):
            if not seg.flags & RST:
                self.on_out_of_window(seg)
            return
        if seg.flags & (RST | SYN) or not seg.flags & ACK:
            self._control(seg)
            return
        self.on_segment(seg)
        st = self._ack(seg)
        if st is not None:
            self._payload(seg, st)

    def _handshake_reply(self, seg: Segment) -> None:
        """SYN_SENT: a RST refuses, a SYN-ACK of our SYN establishes."""
        f = seg.flags
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

    def _control(self, seg: Segment) -> None:
        """An acceptable RST, a SYN, or a segment without ACK."""
        if seg.flags & RST:
            if seg.seq == self.rcv_nxt:
                self.note("sim.note.reset_received", state=self.state.name)
                self.on_reset()
            else:
                self.send_ack(cause=seg, tag="challenge-ack")  # RFC 5961 3.2
        elif seg.flags & SYN:
            self.send_ack(cause=seg, tag="challenge-ack")  # RFC 5961 4.2

    def _ack(self, seg: Segment) -> TcpState | None:
        """The ACK field: snd_una, and the states an ACK of our SYN or FIN
        moves on; the state to go on with, or None when the ACK ended it."""
        st = self.state
        if self.snd_una < seg.ack <= self.snd_nxt:
            self.snd_una = seg.ack
            self.on_ack_advanced()
        fin_acked = self.fin_seq is not None and self.snd_una > self.fin_seq
        if st == SYN_RECV:
            self.set_state(ESTABLISHED)
            self.on_established()
            return ESTABLISHED
        if st == FIN_WAIT1 and fin_acked:
            self.set_state(FIN_WAIT2)
            self.on_fin_acked(seg)
            return None if self.state is None or self.mini else self.state
        if st == CLOSING and fin_acked:
            self.enter_time_wait()
            return None
        if st == LAST_ACK and fin_acked:
            self.forget("last_ack")
            return None
        return st

    def _payload(self, seg: Segment, st: TcpState) -> None:
        """In-order data and the peer's FIN."""
        f = seg.flags
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
