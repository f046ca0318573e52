"""ipfw dynamic rules (``keep-state``), FreeBSD, and DragonFly's ipfw.

Read from sys/netpfil/ipfw/ip_fw_dynamic.c (FreeBSD 12-15:
``dyn_update_tcp_state``, ``dyn_tick``, ``dyn_send_keepalive_ipv4``,
``dyn_enqueue_keepalive_ipv4``), the older sys/netinet/ipfw/ip_fw_dynamic.c
(FreeBSD 8-9: ``lookup_dyn_rule_locked``, ``ipfw_tick``) and ipfw(8),
"SYSCTL VARIABLES". No code is copied; the rules are:

* A SYN matching a ``setup keep-state`` rule creates the state; each
  packet of the connection then ORs its SYN/FIN/RST flags into the state,
  per direction, and the state's *lifetime* depends on the flags seen:
  one SYN: ``dyn_syn_lifetime``; SYN both ways, with or without one FIN:
  ``dyn_ack_lifetime``; FIN both ways: ``dyn_fin_lifetime``; RST:
  ``dyn_rst_lifetime``. Lifetimes count whole seconds of ``time_uptime``.
* ``refresh = "both"`` (FreeBSD 10 and later): in the ack-lifetime states
  the expiry is pushed to now + dyn_ack_lifetime only once *both*
  directions have sent a non-decreasing ACK since the last push (the
  ACK_FWD / ACK_REV bits). ``refresh = "any"`` (ipfw2 up to FreeBSD 9,
  the seed's 2003): any such packet pushes it.
* Once a second, expired states are removed. Every
  ``dyn_keepalive_period`` seconds, with ``dyn_keepalive`` on, states
  with SYN both ways that expire within ``dyn_keepalive_interval`` seconds
  get forged keepalives: an ACK to each side with the sequence number
  just below what that side expects, so that it answers with an ACK.
  With ``refresh = "both"`` only sides that have not answered since the
  last push get one; with ``"any"`` both sides always do.
* A packet without state is judged by the static rules: ``no_state =
  "drop"`` models the usual ``check-state; allow ... setup keep-state;
  deny all``.

Seed 000: the server's TCP answers the forged keepalive (its FIN_WAIT_2
still exists), the answer refreshes the state ("any"), the state lives
another 300 s and the keepalive resets the server's idle time: neither
ever expires. With "both", the silent client never answers, the state
expires and so, later, does the FIN_WAIT_2.
"""

from __future__ import annotations

from ...model.states import TcpState
import numpy as np

from ..num import floor, maximum, minimum, truth
from ...model.params import Param
from ..segment import ACK, FIN, RST, SYN, Segment
from . import Middlebox, MiddleboxProfile

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

BOTH_SYN = "BOTH_SYN"


class Ipfw(Middlebox):
    """One dynamic state (this connection's).

    ``dyn_tick`` runs every second in the kernel; here it is only
    scheduled at the seconds where it can do something (the state's expiry,
    or a keepalive round within dyn_keepalive_interval of it), which gives
    the same result: keepalive rounds happen at uptimes that are multiples
    of dyn_keepalive_period (dyn_keepalive_last starts at 0 and the tick
    runs every second)."""

    def start(self):
        self.st = None  # the dynamic state, or None
        self.tick_ev = None

    def uptime(self):
        return floor(self.engine.now)

    def schedule_tick(self):
        if self.tick_ev is not None:
            self.tick_ev.cancel()
            self.tick_ev = None
        s = self.st
        if s is None:
            return
        p = self.p
        nxt = self.uptime() + 1
        target = s["expire"]
        if truth(p.dyn_keepalive != 0) and s["syn_f"] and s["syn_r"]:
            # first keepalive round with uptime + interval > expire
            first = (floor((s["expire"] - p.dyn_keepalive_interval) / p.dyn_keepalive_period)
                     + 1) * p.dyn_keepalive_period
            target = minimum(target, first)
        self.tick_ev = self.engine.at(maximum(target, nxt), self.tick)

    def _lifetime_and_label(self):
        s = self.st
        syn = s["syn_f"] and s["syn_r"]
        fin_f, fin_r = s["fin_f"], s["fin_r"]
        if s["rst"]:
            return "rst", TcpState.CLOSE, "RST"
        if not syn:
            return "syn", TcpState.SYN_SENT, "SYN"
        if fin_f and fin_r:
            return "fin", TcpState.TIME_WAIT, "BOTH_SYN|BOTH_FIN"
        if fin_f or fin_r:
            return "ack", TcpState.FIN_WAIT2, "BOTH_SYN|FIN_" + ("FWD" if fin_f else "REV")
        return "ack", TcpState.ESTABLISHED, BOTH_SYN

    def _expire_for(self, kind):
        p = self.p
        now = self.uptime()
        if kind == "syn":
            return now + p.dyn_syn_lifetime
        if kind == "ack":
            return now + p.dyn_ack_lifetime
        if kind == "fin":
            # forced below the keepalive period (dyn_update_tcp_state)
            life = p.dyn_fin_lifetime
            if truth(life >= p.dyn_keepalive_period):
                life = p.dyn_keepalive_period - 1
            return now + life
        life = p.dyn_rst_lifetime
        if truth(p.dyn_keepalive != 0) and truth(life >= p.dyn_keepalive_period):
            life = p.dyn_keepalive_period - 1
        return now + life

    def process(self, seg: Segment, forward: bool) -> bool:
        f = seg.flags
        if self.st is None:
            if forward and f & SYN and not f & ACK:
                self.st = {"syn_f": False, "syn_r": False, "fin_f": False, "fin_r": False,
                           "rst": False, "ack_f": 0, "ack_r": 0, "bit_f": False,
                           "bit_r": False, "expire": None}
                self.note("sim.note.ipfw_install")
            else:
                if self.p.no_state == "drop":
                    return False
                return True
        elif self.p.refresh == "any" and truth(self.st["expire"] <= self.uptime()):
            # FreeBSD 8: the lookup itself unlinks an expired state
            self._remove()
            return self.process(seg, forward)
        s = self.st
        if f & SYN:
            s["syn_f" if forward else "syn_r"] = True
        if f & FIN:
            s["fin_f" if forward else "fin_r"] = True
        if f & RST:
            s["rst"] = True
        kind, state, label = self._lifetime_and_label()
        if kind == "ack":
            if f & ACK:
                self._ack(seg.ack, forward)
        else:
            s["expire"] = self._expire_for(kind)
        if s["expire"] is None:  # the SYN's first lifetime
            s["expire"] = self._expire_for("syn")
        self.set_state(state, label)
        self.schedule_tick()
        return True

    def _ack(self, ack: int, forward: bool):
        s = self.st
        key, bit = ("ack_f", "bit_f") if forward else ("ack_r", "bit_r")
        advanced = s[key] == 0 or ack >= s[key]
        if self.p.refresh == "any":
            if advanced:
                s[key] = ack
                s["expire"] = self._expire_for("ack")
            return
        if advanced:
            s[bit] = True
            s[key] = ack
        if s["bit_f"] and s["bit_r"]:
            s["expire"] = self._expire_for("ack")
            s["bit_f"] = s["bit_r"] = False

    def _remove(self):
        self.note("sim.note.ipfw_expire", label=self.label)
        self.st = None
        self.set_state(None)

    def tick(self):
        """dyn_tick() at an integer uptime."""
        self.tick_ev = None
        now = self.uptime()
        s = self.st
        if s is not None and truth(s["expire"] <= now):
            self._remove()
            return
        p = self.p
        if s is not None and truth(p.dyn_keepalive != 0) \
                and truth(np.fmod(now, p.dyn_keepalive_period) == 0) \
                and s["syn_f"] and s["syn_r"] \
                and truth(now + p.dyn_keepalive_interval > s["expire"]):
            self.send_keepalives()
        self.schedule_tick()

    def send_keepalives(self):
        s = self.st
        both = self.p.refresh == "any"
        if (both or not s["bit_f"]) and s["ack_f"] > 0:
            # to the client, as if from the server: seq just below what
            # the client expects (ack_fwd - 1), so that it answers
            self.forge(Segment("server", "client", s["ack_f"] - 1, s["ack_r"], ACK,
                               tag="forged-keepalive"))
        if (both or not s["bit_r"]) and s["ack_r"] > 0:
            self.forge(Segment("client", "server", s["ack_r"] - 1, s["ack_f"], ACK,
                               tag="forged-keepalive"))
        self.note("sim.note.ipfw_keepalive")


class IpfwDragonfly(Ipfw):
    """DragonFly BSD's ipfw (sys/net/ipfw/ip_fw2.c, per-CPU states):
    ``ipfw_state_update_tcp`` ignores out-of-sequence packets, any
    in-sequence packet pushes the expiry (like FreeBSD <= 9), and two FINs
    give ``dyn_finwait_lifetime`` until both are acknowledged, then
    ``dyn_fin_lifetime``. Keepalives are assumed to go to both sides, as in
    FreeBSD <= 9 (the sending code was not read)."""

    def _expire_for(self, kind):
        if kind == "fin":
            s = self.st
            both_acked = s.get("fin_seq_f") is not None and s.get("fin_seq_r") is not None \
                and s["ack_r"] > s["fin_seq_f"] and s["ack_f"] > s["fin_seq_r"]
            return self.uptime() + (self.p.dyn_fin_lifetime if both_acked
                                    else self.p.dyn_finwait_lifetime)
        return super()._expire_for(kind)

    def process(self, seg: Segment, forward: bool) -> bool:
        if self.st is not None:
            s = self.st
            key = "seq_f" if forward else "seq_r"
            if key in s and seg.seq < s[key] and not seg.flags & RST:
                return True  # out of sequence: passes, no update
            s[key] = seg.seq
            if seg.flags & FIN:
                s["fin_seq_f" if forward else "fin_seq_r"] = seg.seq + seg.length
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
