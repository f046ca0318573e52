"""Linux netfilter connection tracking (what nftables/iptables stateful
rules and NAT rely on), from net/netfilter/nf_conntrack_proto_tcp.c
(``tcp_conntracks``, ``tcp_timeouts``, ``tcp_new``) and
Documentation/networking/nf_conntrack-sysctl.rst.

* Each packet moves the entry through conntrack's own TCP states
  (SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT after a FIN, CLOSE_WAIT once
  it is acknowledged, LAST_ACK after the second FIN, TIME_WAIT, CLOSE
  after a RST) and resets its timeout to that state's
  ``nf_conntrack_tcp_timeout_*``.
* An expired entry is gone. With ``nf_conntrack_tcp_loose`` (default 1) a
  later ACK or data packet creates a new ESTABLISHED entry ("loose
  pick-up"); a FIN or RST without an entry is INVALID -- and a ruleset
  with ``ct state invalid drop`` (``invalid = "drop"``) drops it. That is
  how a server that finally closes a long CLOSE_WAIT loses its FIN.
"""

from __future__ import annotations

from ...model.states import TcpState
from ...model.params import Param
from ..segment import ACK, FIN, RST, SYN, Segment
from . import Middlebox, MiddleboxProfile

_DOC = "Documentation/networking/nf_conntrack-sysctl.rst; net/netfilter/nf_conntrack_proto_tcp.c"

TIMEOUTS = (("syn_sent", 120), ("syn_recv", 60), ("established", 432000), ("fin_wait", 120),
            ("close_wait", 60), ("last_ack", 30), ("time_wait", 120), ("close", 10))

PARAMS = tuple(
    Param(f"nf_conntrack_tcp_timeout_{name}", float(v), "seconds",
          f"net.netfilter.nf_conntrack_tcp_timeout_{name}", _DOC, minimum=0)
    for name, v in TIMEOUTS
) + (
    Param("nf_conntrack_tcp_loose", 1, "bool",
          "pick up connections from a mid-stream ACK or data packet", _DOC),
    Param("invalid", "drop", "choice",
          "what the ruleset does with INVALID packets (ct state invalid drop)",
          "nft(8) ct state; common stateful rulesets", choices=("drop", "pass")),
    Param("new_not_syn", "drop", "choice",
          "what the ruleset does with a packet that creates no entry and is not invalid "
          "(loose pick-up off)", "nft(8)", choices=("drop", "pass")),
)

_STATE = {"syn_sent": TcpState.SYN_SENT, "syn_recv": TcpState.SYN_RECV,
          "established": TcpState.ESTABLISHED, "fin_wait": TcpState.FIN_WAIT1,
          "close_wait": TcpState.CLOSE_WAIT, "last_ack": TcpState.LAST_ACK,
          "time_wait": TcpState.TIME_WAIT, "close": TcpState.CLOSE}


class Conntrack(Middlebox):
    def start(self):
        self.ct = None  # conntrack state name, or None
        self.expiry = None

    def _enter(self, name: str):
        self.ct = name
        if self.expiry is not None:
            self.expiry.cancel()
        self.expiry = self.engine.after(getattr(self.p, f"nf_conntrack_tcp_timeout_{name}"),
                                        self.expire)
        self.set_state(_STATE[name], name.upper())

    def expire(self):
        self.note("sim.note.ct_expire", state=self.ct.upper())
        self.ct = None
        self.expiry = None
        self.set_state(None)

    def process(self, seg: Segment, forward: bool) -> bool:
        f = seg.flags
        if self.ct is None:
            if f & SYN and not f & ACK and forward:
                self._enter("syn_sent")
                return True
            if f & (FIN | RST) or f & SYN:
                self.note("sim.note.ct_invalid", flags=seg_flags(f))
                return self.p.invalid == "pass"
            if self.p.nf_conntrack_tcp_loose != 0 and f & ACK:
                self.note("sim.note.ct_pickup")
                self._enter("established")
                return True
            return self.p.new_not_syn == "pass"
        ct = self.ct
        if f & RST:
            self._enter("close")
        elif f & SYN:
            if ct == "syn_sent" and f & ACK and not forward:
                self._enter("syn_recv")
            else:
                self._enter(ct)
        elif f & FIN:
            if ct in ("established", "syn_recv"):
                self._enter("fin_wait")
            elif ct in ("fin_wait", "close_wait", "last_ack"):
                self._enter("last_ack")
            else:
                self._enter(ct)
        elif f & ACK:
            nxt = {"syn_recv": "established", "fin_wait": "close_wait",
                   "last_ack": "time_wait"}.get(ct, ct)
            if ct == "syn_recv" and not forward:
                nxt = ct
            self._enter(nxt)
        return True


def seg_flags(f: int) -> str:
    from ..segment import flag_letters
    return flag_letters(f)


PROFILES = (
    MiddleboxProfile("conntrack", "Linux netfilter conntrack", PARAMS, Conntrack, (_DOC,)),
)
