"""One TCP connection rebuilt from its packets, in Zeek's order of work
for each packet (TCPSessionAdapter::Process): initialise the sender's
sequence numbers, log history letters, note zero windows, update the
acknowledged and highest sequence numbers, step the state machine, close.

The packet observer (``observe.py``) rides along: it tags keepalives,
window probes and retransmitted FINs and keeps the times that the endpoint
state timelines and the findings need.
"""

from __future__ import annotations

from . import reassembly
from .observe import Observer
from .zeek import (ACK, FIN, H_ACK, H_DATA, H_FIN, H_FINRST, H_MULTI, H_RST, H_SYN, M32,
                   RST, SYN, TOO_LARGE_SEQ_DELTA, Endpoint, History, conn_state, seq_delta)

E = Endpoint


class Connection:
    """``low`` is the side whose (address, port) sorts first; ``orig_low``
    says whether it is the originator (it changes when Zeek's rules flip
    the roles)."""

    __slots__ = ("key", "orig_low", "orig", "resp", "hist", "start", "last", "first",
                 "obs", "flipped", "uid", "interface", "queued", "partial")

    def __init__(self, key, sender_low: bool, t: float, flip: bool, uid: int, interface=0):
        self.key = key  # (lo_hi, lo_lo, lo_port, hi_hi, hi_lo, hi_port)
        self.orig = Endpoint(True)
        self.resp = Endpoint(False)
        self.hist = History()
        self.orig_low = sender_low
        self.start = self.last = self.first = t
        self.flipped = False
        self.uid = uid
        self.interface = interface
        self.queued = False  # in the tracker's queue of closed connections
        #: its first packet was not a SYN (Zeek's IsPartial, for content gaps)
        self.partial = False
        self.obs = Observer(self)
        if flip:
            self.flip()

    def flip(self) -> None:
        self.orig, self.resp = self.resp, self.orig
        self.orig.is_orig, self.resp.is_orig = True, False
        self.orig_low = not self.orig_low
        self.flipped = not self.flipped
        self.hist.letters.append("^")

    # ---- one packet -----------------------------------------------------------
    def corrupt(self, low: bool) -> None:
        """A packet with a bad checksum: history C and nothing else (Zeek
        drops it before the state machine, its counters and its times)."""
        ep = self.orig if low == self.orig_low else self.resp
        self.hist.scaled(ep, "C", "chk")

    def process(self, low: bool, t, flags, seq, ack, win, plen, iplen, ttl) -> None:
        is_orig = low == self.orig_low
        ep, peer = (self.orig, self.resp) if is_orig else (self.resp, self.orig)
        if (flags & 23 == ACK and win and ep.state == 4 and peer.state == 4  # ESTABLISHED
                and self.hist.seen & ((H_DATA if plen else H_ACK) << (0 if is_orig else 16))
                and self._quick(ep, peer, t, seq, ack, win, plen, iplen, ttl)):
            return
        seg = plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        if flags & RST:
            seg -= plen
        after = (seq + seg) & M32
        if ep.state == E.INACTIVE:
            if flags & SYN:
                ep.init_seq(seq, after)
            else:
                ep.init_seq((seq - 1) & M32, seq)
        elif flags & SYN and (ep.state in (E.SYN_SENT, E.SYN_ACK_SENT, E.ESTABLISHED, E.PARTIAL)
                              or (ep.state == E.RESET and ep.prev_state == E.INACTIVE)):
            if seq != (ep.start & M32):
                ep.init_seq(seq, after)
        ep.pkts += 1
        ep.ip_bytes += iplen
        pos = ep.last + seq_delta(seq, ep.last & M32)  # unwrapped
        at = pos + (1 if flags & SYN else 0)  # the payload's first byte
        ack_at = peer.acked + seq_delta(ack, peer.acked & M32)
        self.obs.before(ep, peer, t, flags, seq, ack, win, plen, ttl)
        self._history(ep, flags, seq, plen)
        if win == 0 and not flags & RST and peer.state != E.CLOSED and ep.state != E.RESET:
            self.hist.scaled(ep, "W", "win0")
        if not (self.orig.did_close and self.resp.did_close):
            self.last = t
        if flags & FIN:
            ep.fin_cnt += 1
            ep.fin_seq = pos + seg
        if flags & RST:
            ep.rst_cnt += 1
        peer_was_active = peer.state != E.INACTIVE  # else this ACK only sets its start
        if flags & ACK:
            if peer.state == E.INACTIVE:
                peer.init_seq((ack - 1) & M32, (ack - 1) & M32)
            elif not flags & RST:
                delta = seq_delta(ack, peer.acked & M32)
                if delta > 0 and not (ack == 0 and delta > TOO_LARGE_SEQ_DELTA):
                    peer.acked += delta
        delta_last = self._last_seq(ep, after, flags, plen)
        # the roles may have flipped in _history: look the endpoints up again
        is_orig = ep.is_orig
        close = self._state_machine(ep, peer, is_orig, flags, seq, ack, plen, delta_last)
        if flags & ACK and peer_was_active:
            # after the state machine, as Zeek: a gap revealed by a FIN or
            # RST then finds the sides no longer cleanly established
            for _ in range(reassembly.ack_received(peer, ep, ack_at, self.partial)):
                self.hist.scaled(peer, "G", "gap")
        if plen and not flags & RST and pos >= ep.start:  # not before the start (underflow)
            reassembly.data_sent(ep, at, at + plen)
        if close:
            self._closed(ep, peer)
        if flags & ACK and not flags & RST:
            side, other = ep.obs, peer.obs
            if other is not None and ((side.estab_t is None and other.synack_t is not None)
                                      or (other.fin_end is not None
                                          and other.fin_acked_t is None)):
                self.obs.after(ep, peer, t, flags, seq, ack, plen)

    def _quick(self, ep: Endpoint, peer: Endpoint, t, seq, ack, win, plen, iplen, ttl) -> bool:
        """The common packet (ACK, maybe data, both sides established, an
        open window, nothing to tag) in fewer steps, with the same effect
        as the full path; False (nothing done) when it is not that packet."""
        side, other = ep.obs, peer.obs
        last = ep.last
        if (side is None or other is None or side.ttl != ttl or side.zero_open
                or other.ka_pending is not None or (plen <= 1 and seq == (last - 1) & M32)
                or (plen == 1 and other.window == 0)
                or (side.estab_t is None and other.synack_t is not None)):
            return False
        mask = (H_DATA if plen else H_ACK) << (0 if ep.is_orig else 16)
        if not self.hist.seen & mask:
            return False
        acked = peer.acked
        delta_ack = ((ack - (acked & M32) + 0x80000000) & M32) - 0x80000000
        ack_at = acked + delta_ack
        if ack_at > peer.trim and (ack_at > peer.rs or peer.fin_cnt):
            return False  # a content gap (or a FIN to leave out): reassembly.py
        if plen and (ep.rs != last or ep.blocks is not None
                     or ((seq - (last & M32) + 0x80000000) & M32) - 0x80000000 > 0):
            return False  # data above a hole
        ep.pkts += 1
        ep.ip_bytes += iplen
        self.last = t
        if delta_ack > 0 and not (ack == 0 and delta_ack > TOO_LARGE_SEQ_DELTA):
            peer.acked = ack_at
        if ack_at > peer.trim:
            peer.trim = ack_at
        delta = ((seq + plen - (last & M32) + 0x80000000) & M32) - 0x80000000
        if delta > 0:
            ep.last = ep.rs = last + delta  # in order: nothing waits above a hole
        elif plen:
            self.hist.scaled(ep, "T", "rxmt")
        side.window = win
        side.last_t = t
        if plen:
            side.data_t = t
        return True

    def _history(self, ep: Endpoint, flags: int, seq: int, plen: int) -> None:
        h = self.hist
        bits = (flags & SYN) // SYN + (flags & FIN) + (flags & RST) // RST
        if bits > 1:
            if flags & FIN and flags & RST:
                h.check(ep, H_FINRST, "I")
            else:
                h.check(ep, H_MULTI, "Q")
        elif bits == 1:
            if flags & SYN:
                code = "H" if flags & ACK else "S"
                if h.check(ep, H_SYN, code) and seq != ep.last_syn:
                    h.add(ep, code)
                ep.last_syn = seq
            elif flags & FIN:
                end = (seq + plen) & M32
                if h.check(ep, H_FIN, "F") and end != ep.last_fin:
                    h.add(ep, "F")
                ep.last_fin = end
            else:
                if h.check(ep, H_RST, "R") and seq != ep.last_rst:
                    h.add(ep, "R")
                ep.last_rst = seq
        elif plen or flags & ACK:
            if h.letters == ["H"]:
                # began with a SYN-ACK: productive traffic now makes the
                # SYN-ACK's sender the responder (TCP_Endpoint::CheckHistory)
                self.flip()
                h.letters = ["^", "h"]
            if plen:
                h.check(ep, H_DATA, "D")
            else:
                h.check(ep, H_ACK, "A")

    def _last_seq(self, ep: Endpoint, after: int, flags: int, plen: int) -> int:
        delta = seq_delta(after, ep.last & M32)
        if flags & (SYN | RST) and abs(delta) > TOO_LARGE_SEQ_DELTA:
            pass
        elif flags & FIN and ep.last == ep.start + 1:
            ep.last += delta
        elif ep.state == E.RESET:
            pass
        elif delta > 0:
            ep.last += delta
        elif plen > 0:
            self.hist.scaled(ep, "T", "rxmt")
        return delta

    def _state_machine(self, ep, peer, is_orig, flags, seq, ack, plen, delta_last) -> bool:
        """Zeek's UpdateStateMachine; returns whether the sender closed."""
        st = ep.state
        close = False
        if st == E.INACTIVE:
            if flags & SYN:
                if is_orig:
                    ep.set_state(E.SYN_ACK_SENT if flags & ACK else E.SYN_SENT)
                else:
                    if not flags & ACK and peer.state == E.SYN_ACK_SENT and seq == (ep.start & M32):
                        self.flip()  # SYN and SYN-ACK seen in the wrong order
                        peer.set_state(E.ESTABLISHED)
                    if peer.state == E.SYN_SENT:
                        peer.set_state(E.ESTABLISHED)
                    ep.set_state(E.ESTABLISHED)
            if flags & FIN:
                ep.set_state(E.CLOSED)
                close = True
            if flags & RST:
                ep.set_state(E.RESET)
                close = True
            if ep.state == E.INACTIVE:
                if not is_orig and plen == 0 and self.orig.state == E.SYN_SENT:
                    pass  # an ACK of the SYN before the SYN-ACK (some stacks)
                elif flags & ACK and peer.state == E.ESTABLISHED:
                    ep.set_state(E.ESTABLISHED)  # missed only the first SYN
                else:
                    ep.set_state(E.PARTIAL)
        elif st in (E.SYN_SENT, E.SYN_ACK_SENT):
            if flags & FIN:
                ep.set_state(E.CLOSED)
                close = True
            if flags & RST:
                ep.set_state(E.RESET)
                close = True
        elif st in (E.ESTABLISHED, E.PARTIAL):
            if (flags & SYN and st == E.PARTIAL and peer.state == E.INACTIVE
                    and not flags & ACK):
                ep.set_state(E.SYN_SENT)
            if flags & FIN and not flags & RST:
                ep.set_state(E.CLOSED)
                if peer.state == E.RESET and peer.prev_state == E.CLOSED:
                    peer.set_state(E.CLOSED)  # its FIN then RST: a normal end
                close = True
            if flags & RST:
                ep.set_state(E.RESET)
                close = True
        elif st == E.CLOSED:
            if flags & RST and peer.state != E.CLOSED:
                ep.set_state(E.RESET)
                if not ep.did_close:
                    close = True
        return close

    def _closed(self, ep: Endpoint, peer: Endpoint) -> None:
        ep.did_close = True

    # ---- results --------------------------------------------------------------
    def close_complete(self) -> bool:
        """Both sides done (Zeek deletes the connection tcp_close_delay later)."""
        o, r = self.orig, self.resp
        return ((o.did_close and (r.did_close or r.state == E.INACTIVE or o.state == E.RESET))
                or (r.did_close and (o.state == E.INACTIVE or r.state == E.RESET)))

    def state(self) -> str:
        o, r = self.orig, self.resp
        return conn_state(o.state, r.state, self.hist.text(), o.size(r), r.size(o))

    def is_reuse(self, low: bool, flags: int, seq: int) -> bool:
        """A SYN that starts a new connection on the same 4-tuple
        (Zeek's IsReuse, without its weirds)."""
        first = self.orig
        if flags & ACK:
            if self.orig.state != E.INACTIVE:
                return False
            first = self.resp
        if not (self.orig.did_close or self.resp.did_close):
            if seq == (first.start & M32):
                return False
            if (not flags & ACK and first.state == E.SYN_ACK_SENT
                    and self.resp.state == E.INACTIVE and seq == (self.resp.start & M32)):
                return False
        return True
