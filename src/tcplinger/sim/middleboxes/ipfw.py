"""ipfw dynamic rules (``keep-state``), FreeBSD, and DragonFly's ipfw, as
middleboxes. The rules themselves (lifetimes by the flags seen, refresh
"both" or "any", keepalive rounds, no passage without state) are
ipfw_dynamic.py's, the one model of ip_fw_dynamic.c that the lab's bridge
runs too; this module schedules its ticks and forges its segments.

Seed 000: the server's TCP answers the forged keepalive (its FIN_WAIT_2
still exists), the answer refreshes the state ("any"), the state lives
another 300 s and the keepalive resets the server's idle time: neither
ever expires. With "both", the silent client never answers, the state
expires and so, later, does the FIN_WAIT_2.
"""

from __future__ import annotations

from ...model.params import Param
from ...model.states import TcpState
from ..num import floor, maximum, minimum, truth
from ..segment import ACK, FIN, RST, Segment
from . import Middlebox, MiddleboxProfile
from .ipfw_dynamic import BOTH_SYN, DynState, Rules, label, tcp_state_of

_MAN = "ipfw(8) SYSCTL VARIABLES; "
_SRC = "sys/netpfil/ipfw/ip_fw_dynamic.c"

PARAMS = (
    Param("dyn_ack_lifetime", 300.0, "seconds",
          "net.inet.ip.fw.dyn_ack_lifetime: lifetime of established states", _MAN + _SRC,
          minimum=1),
    Param("dyn_syn_lifetime", 20.0, "seconds", "net.inet.ip.fw.dyn_syn_lifetime", _MAN + _SRC,
          minimum=1),
    Param("dyn_fin_lifetime", 1.0, "seconds",
          "net.inet.ip.fw.dyn_fin_lifetime (FIN both ways); forced below dyn_keepalive_period",
          _MAN + _SRC, minimum=0),
    Param("dyn_rst_lifetime", 1.0, "seconds",
          "net.inet.ip.fw.dyn_rst_lifetime; forced below dyn_keepalive_period", _MAN + _SRC,
          minimum=0),
    Param("dyn_keepalive", 1, "bool",
          "net.inet.ip.fw.dyn_keepalive: forge keepalives for states about to expire",
          _MAN + _SRC),
    Param("dyn_keepalive_interval", 20, "count",
          "keepalives are sent in the last this-many seconds of a state's life "
          "(not a sysctl in FreeBSD; 20 s)", _SRC, minimum=1),
    Param("dyn_keepalive_period", 5, "count",
          "keepalives are sent every this-many seconds (5 s; whole seconds)", _SRC, minimum=1),
    Param("refresh", "both", "choice",
          "both: an established state is refreshed only when both sides acked since the last "
          "refresh (FreeBSD >= 10); any: every packet refreshes it (ipfw2 up to FreeBSD 9)",
          _SRC + " dyn_update_tcp_state(); sys/netinet/ipfw/ip_fw_dynamic.c (FreeBSD 8)",
          choices=("both", "any")),
    Param("no_state", "drop", "choice",
          "what the static rules do with a packet that matches no state: drop (deny all) "
          "or pass", "ipfw(8) RULE FORMAT: check-state, keep-state",
          choices=("drop", "pass")),
)

class Ipfw(Middlebox):
    """This connection's dynamic state, run by the one model of
    ip_fw_dynamic.c (ipfw_dynamic.py, which the lab's bridge runs too).

    ``dyn_tick`` runs every second in the kernel; here it is only
    scheduled at the seconds where it can do something (the state's expiry,
    or a keepalive round within dyn_keepalive_interval of it), which gives
    the same result: keepalive rounds happen at uptimes that are multiples
    of dyn_keepalive_period (dyn_keepalive_last starts at 0 and the tick
    runs every second)."""

    state_class = DynState

    def start(self):
        self.st = None  # the dynamic state, or None
        self.tick_ev = None
        p = self.p
        self.rules = Rules(p.dyn_ack_lifetime, p.dyn_syn_lifetime, p.dyn_fin_lifetime,
                           p.dyn_rst_lifetime, p.dyn_keepalive, p.dyn_keepalive_interval,
                           p.dyn_keepalive_period, p.refresh)

    def uptime(self):
        return floor(self.engine.now)

    def schedule_tick(self):
        if self.tick_ev is not None:
            self.tick_ev.cancel()
            self.tick_ev = None
        s = self.st
        if s is None:
            return
        r = self.rules
        nxt = self.uptime() + 1
        target = s.expire
        if truth(r.keepalive != 0) and s.state & BOTH_SYN == BOTH_SYN:
            # first keepalive round with uptime + interval > expire
            first = (floor((s.expire - r.keepalive_interval) / r.keepalive_period) + 1) \
                * r.keepalive_period
            target = minimum(target, first)
        self.tick_ev = self.engine.at(maximum(target, nxt), self.tick)

    def process(self, seg: Segment, forward: bool) -> bool:
        now = self.uptime()
        if self.st is not None and self.rules.refresh == "any" and self.st.expired(now):
            self._remove()  # FreeBSD 8: the lookup itself unlinks an expired state
        if self.st is None:
            self.st = self.state_class.install(now, seg.flags, self.rules) if forward else None
            if self.st is None:
                return self.p.no_state != "drop"
            self.note("sim.note.ipfw_install")
        else:
            self.st.packet(now, forward, seg.flags, seg.ack, self.rules)
        self.set_state(TcpState(tcp_state_of(self.st.state)), label(self.st.state))
        self.schedule_tick()
        return True

    def _remove(self):
        self.note("sim.note.ipfw_expire", label=self.label)
        self.st = None
        self.set_state(None)

    def tick(self):
        """dyn_tick() at an integer uptime."""
        self.tick_ev = None
        now = self.uptime()
        s = self.st
        if s is not None and s.expired(now):
            self._remove()
            return
        if s is not None and s.keepalive_round(now, self.rules):
            self.send_keepalives(s.keepalives(self.rules))
        self.schedule_tick()

    def send_keepalives(self, keepalives):
        for k in keepalives:
            # to the SYN's sender (the client) as if from the server, or back
            src, dst = ("server", "client") if k.to_sender else ("client", "server")
            self.forge(Segment(src, dst, k.seq, k.ack, ACK, tag="forged-keepalive"))
        self.note("sim.note.ipfw_keepalive")


class DragonflyState(DynState):
    """DragonFly BSD's state (sys/net/ipfw/ip_fw2.c ``ipfw_state_update_tcp``):
    two FINs give ``dyn_finwait_lifetime`` until both are acknowledged, then
    ``dyn_fin_lifetime`` (not forced below the keepalive period)."""

    def __init__(self, **fields):
        super().__init__(**fields)
        self.seq_fwd = self.seq_rev = None  # last in-sequence seq each way
        self.fin_seq_fwd = self.fin_seq_rev = None  # sequence space after each FIN

    def fin_lifetime(self, rules):
        both_acked = self.fin_seq_fwd is not None and self.fin_seq_rev is not None \
            and self.ack_rev > self.fin_seq_fwd and self.ack_fwd > self.fin_seq_rev
        return rules.fin_lifetime if both_acked else rules.finwait_lifetime


class IpfwDragonfly(Ipfw):
    """DragonFly BSD's ipfw (sys/net/ipfw/ip_fw2.c, per-CPU states): out-of-
    sequence packets pass without updating the state, any in-sequence packet
    pushes the expiry (like FreeBSD <= 9), two FINs give
    ``dyn_finwait_lifetime`` until both are acknowledged. Keepalives are
    assumed to go to both sides, as in FreeBSD <= 9 (the sending code was
    not read)."""

    state_class = DragonflyState

    def start(self):
        super().start()
        self.rules.finwait_lifetime = self.p.dyn_finwait_lifetime

    def process(self, seg: Segment, forward: bool) -> bool:
        s = self.st
        if s is not None:
            last = s.seq_fwd if forward else s.seq_rev
            if last is not None and seg.seq < last and not seg.flags & RST:
                return True  # out of sequence: passes, no update
            if forward:
                s.seq_fwd = seg.seq
            else:
                s.seq_rev = seg.seq
            if seg.flags & FIN:
                if forward:
                    s.fin_seq_fwd = seg.seq + seg.length
                else:
                    s.fin_seq_rev = seg.seq + seg.length
        return super().process(seg, forward)


DRAGONFLY_PARAMS = tuple(
    Param(p.name, p.default, p.kind, p.doc, p.source.replace(_SRC, "sys/net/ipfw/ip_fw2.c"),
          choices=("any",) if p.name == "refresh" else p.choices, minimum=p.minimum)
    if p.name != "refresh" else
    Param("refresh", "any", "choice", "every in-sequence packet refreshes the state",
          "sys/net/ipfw/ip_fw2.c ipfw_state_update_tcp()", choices=("any",))
    for p in PARAMS if p.name not in ("dyn_fin_lifetime", "dyn_rst_lifetime")
) + (
    Param("dyn_fin_lifetime", 2.0, "seconds", "both FINs acknowledged",
          "sys/net/ipfw/ip_fw2.c", minimum=0),
    Param("dyn_rst_lifetime", 2.0, "seconds", "after a RST", "sys/net/ipfw/ip_fw2.c",
          minimum=0),
    Param("dyn_finwait_lifetime", 20.0, "seconds", "both FINs seen, not both acknowledged",
          "sys/net/ipfw/ip_fw2.c", minimum=0),
)

PROFILES = (
    MiddleboxProfile("ipfw", "FreeBSD ipfw dynamic rules (keep-state)", PARAMS, Ipfw,
                     (_MAN, _SRC)),
    MiddleboxProfile("ipfw-dragonfly", "DragonFly BSD ipfw states", DRAGONFLY_PARAMS,
                     IpfwDragonfly, ("ipfw(8) on DragonFly", "sys/net/ipfw/ip_fw2.c")),
)
