"""Stateful devices with a timeout per connection phase: pf, cloud load
balancers and NAT gateways, and a generic stateful firewall.

Each packet of the connection moves the state to a phase (opening,
established, one side closed, both closed, reset) and pushes its expiry
to now + that phase's timeout. When the state expires the device forgets
the connection, optionally resetting both ends (Azure's "TCP reset on
idle"); a later packet without state is dropped, answered with a reset
(AWS), or passed.

Defaults and their sources:

* ``pf``: pf.conf(5) "set timeout" (OpenBSD/FreeBSD): tcp.first 120 s,
  tcp.opening 30 s, tcp.established 86400 s, tcp.closing 900 s,
  tcp.finwait 45 s, tcp.closed 90 s.
* ``aws-nlb``: 350 s idle timeout for TCP flows; a client or target that
  sends after it gets a RST (Elastic Load Balancing user guide, "Network
  Load Balancers", idle timeout).
* ``aws-nat``: 350 s; "a NAT gateway returns an RST packet to any
  resources behind the NAT gateway that attempt to continue the
  connection (it does not send a FIN packet)" (Amazon VPC user guide,
  NAT gateways, troubleshooting). The client is behind it.
* ``gcp-nat``: Cloud NAT timeouts: TCP established idle 1200 s, TCP
  transitory idle 30 s, TCP TIME_WAIT 120 s (Cloud NAT docs, "NAT
  timeouts"; RouterNat tcpEstablishedIdleTimeoutSec and friends).
* ``azure-lb``: idle timeout 4 minutes (4-100), optional TCP reset on idle
  that resets both ends (Azure Load Balancer docs, "TCP reset and idle
  timeout").
* ``stateful-fw``: a generic firewall; every timeout is a parameter.
"""

from __future__ import annotations

from ...model.states import TcpState
from ..num import truth
from ...model.params import Param
from ..segment import ACK, FIN, RST, SYN, Segment
from . import Middlebox, MiddleboxProfile

PHASES = ("opening", "established", "half_closed", "closed", "reset")
_PHASE_STATE = {"opening": TcpState.SYN_SENT, "established": TcpState.ESTABLISHED,
                "half_closed": TcpState.FIN_WAIT2, "closed": TcpState.TIME_WAIT,
                "reset": TcpState.CLOSE}


def _params(src: str, opening, established, half_closed, closed, reset, no_state="drop",
            rst_on_expiry=0, labels=None) -> tuple[Param, ...]:
    labels = labels or {}
    doc = {"opening": "before the connection is established",
           "established": "established, idle",
           "half_closed": "after the first FIN",
           "closed": "after both FINs",
           "reset": "after a RST"}
    out = []
    for phase, value in zip(PHASES, (opening, established, half_closed, closed, reset)):
        out.append(Param(f"{phase}_timeout", float(value), "seconds",
                         doc[phase] + (f" ({labels[phase]})" if phase in labels else ""), src,
                         minimum=0))
    out.append(Param("no_state", no_state, "choice",
                     "a packet without state: drop it, answer with a reset to its sender "
                     "(rst), only when the client (inside) sends it (rst-client), or pass",
                     src, choices=("drop", "rst", "rst-client", "pass")))
    out.append(Param("rst_on_expiry", rst_on_expiry, "bool",
                     "reset both ends when the state expires", src))
    return tuple(out)


class TimeoutTable(Middlebox):
    def start(self):
        self.phase = None
        self.fins = set()
        self.expiry = None

    def _enter(self, phase: str):
        self.phase = phase
        timeout = getattr(self.p, f"{phase}_timeout")
        if self.expiry is not None:
            self.expiry.cancel()
        self.expiry = self.engine.after(timeout, self.expire)
        self.set_state(_PHASE_STATE[phase], f"{phase} ({self.profile})")

    def process(self, seg: Segment, forward: bool) -> bool:
        f = seg.flags
        if self.phase is None:
            if forward and f & SYN and not f & ACK:
                self.fins = set()
                self.note("sim.note.mb_install")
                self._enter("opening")
                return True
            return self._no_state(seg, forward)
        if f & RST:
            self._enter("reset")
            return True
        if f & FIN:
            self.fins.add(forward)
        if len(self.fins) == 2:
            self._enter("closed")
        elif self.fins:
            self._enter("half_closed")
        elif self.phase == "opening" and not forward and f & SYN:
            self._enter("opening")
        elif self.phase == "opening" and forward and f & ACK and not f & SYN:
            self._enter("established")
        else:
            self._enter(self.phase if self.phase != "opening" else "opening")
        return True

    def _no_state(self, seg: Segment, forward: bool) -> bool:
        mode = self.p.no_state
        if mode == "pass":
            return True
        if mode == "rst" or (mode == "rst-client" and forward):
            if not seg.flags & RST:
                self.note("sim.note.mb_reset", to=seg.src)
                self.forge(Segment(seg.dst, seg.src, seg.ack, 0, RST, tag="middlebox-reset",
                                   cause=seg.sid))
        return False

    def expire(self):
        self.note("sim.note.mb_expire", phase=self.phase)
        if truth(self.p.rst_on_expiry != 0) and self.phase in ("established", "half_closed"):
            ep = self.path.endpoints
            for target, other in (("client", "server"), ("server", "client")):
                me = ep[target]
                self.forge(Segment(other, target, me.rcv_nxt, 0, RST, tag="idle-reset"))
        self.phase = None
        self.expiry = None
        self.set_state(None)


_PF = "pf.conf(5) set timeout"
_AWS_NLB = "AWS Elastic Load Balancing, Network Load Balancers: idle timeout (350 s)"
_AWS_NAT = "Amazon VPC user guide, NAT gateways: 350 s idle timeout, RST to the inside"
_GCP = "Google Cloud NAT: NAT timeouts (RouterNat tcp*TimeoutSec)"
_AZURE = "Azure Load Balancer: TCP reset and idle timeout"
_GENERIC = "generic stateful firewall (set the timeouts of yours)"

PROFILES = (
    MiddleboxProfile("pf", "pf (OpenBSD / FreeBSD) states",
                     _params(_PF, 30, 86400, 900, 45, 90, labels={
                         "opening": "tcp.opening; tcp.first is 120 s",
                         "established": "tcp.established", "half_closed": "tcp.closing",
                         "closed": "tcp.finwait", "reset": "tcp.closed"}),
                     TimeoutTable, (_PF,)),
    MiddleboxProfile("aws-nlb", "AWS Network Load Balancer flow table",
                     _params(_AWS_NLB, 350, 350, 350, 350, 350, no_state="rst"),
                     TimeoutTable, (_AWS_NLB,)),
    MiddleboxProfile("aws-nat", "AWS NAT gateway",
                     _params(_AWS_NAT, 350, 350, 350, 350, 350, no_state="rst-client"),
                     TimeoutTable, (_AWS_NAT,)),
    MiddleboxProfile("gcp-nat", "Google Cloud NAT",
                     _params(_GCP, 30, 1200, 30, 120, 30, labels={
                         "opening": "tcpTransitoryIdleTimeoutSec",
                         "established": "tcpEstablishedIdleTimeoutSec",
                         "half_closed": "tcpTransitoryIdleTimeoutSec",
                         "closed": "tcpTimeWaitTimeoutSec"}),
                     TimeoutTable, (_GCP,)),
    MiddleboxProfile("azure-lb", "Azure Load Balancer",
                     _params(_AZURE, 240, 240, 240, 240, 240),
                     TimeoutTable, (_AZURE,)),
    MiddleboxProfile("stateful-fw", "generic stateful firewall",
                     _params(_GENERIC, 30, 3600, 120, 10, 10),
                     TimeoutTable, (_GENERIC,)),
)
