"""The lab's userspace ipfw (lab/bridge.py): a table of dynamic states by
address pair, each run by the one model of FreeBSD's ip_fw_dynamic.c
(sim/middleboxes/ipfw_dynamic.py, which the simulator's ipfw runs too).

>>> fw = Ipfw(IpfwParams(ack_lifetime=10))
>>> C, S = ("10.0.0.2", 40000), ("10.0.1.2", 80)
>>> fw.packet(1, C, S, SYN, 0).passed, fw.state_label(C, S)
(True, 'SYN')
>>> fw.packet(1, S, C, SYN | ACK, 1001).passed and fw.packet(1, C, S, ACK, 5001).passed
True
>>> fw.expire_of(C, S), fw.state_label(C, S)
(11, 'BOTH_SYN')
>>> fw.packet(2, S, C, FIN | ACK, 1001).passed, fw.state_label(C, S)
(True, 'BOTH_SYN|FIN_REV')

The server's FIN carried an ACK (ACK_REV); the client has not acked since
the last push, so the keepalive round at uptime 5 (the state expires
within 20 s) goes to the client only, as if from the server:

>>> [(k.src, k.dst, k.seq, k.ack) for k in fw.tick(5)]
[(('10.0.1.2', 80), ('10.0.0.2', 40000), 5000, 1001)]
>>> [label(s.state) for s in fw.expired(11)], fw.packet(12, C, S, ACK, 5002).passed
(['BOTH_SYN|FIN_REV'], False)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..sim.middleboxes.ipfw_dynamic import (ACK, FIN, RST, SYN, DynState, Rules, label,
                                            tcp_state_of)

__all__ = ["ACK", "FIN", "RST", "SYN", "Ipfw", "IpfwParams", "FlowState", "Keepalive",
           "Verdict", "label", "tcp_state_of"]

Addr = tuple[str, int]
#: net.inet.ip.fw.* as the bridge is given them (``--params`` JSON)
IpfwParams = Rules


@dataclass
class FlowState(DynState):
    src: Addr = ("", 0)  # the SYN's sender
    dst: Addr = ("", 0)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    forward: bool | None = None  # direction relative to the state
    installed: bool = False
    changed: bool = False  # the state's flags changed


@dataclass(frozen=True)
class Keepalive:
    """A forged segment: from ``src`` to ``dst``, ACK only, window 0."""

    src: Addr
    dst: Addr
    seq: int
    ack: int


@dataclass
class Ipfw:
    params: Rules = field(default_factory=Rules)
    states: dict = field(default_factory=dict)  # (src, dst) -> FlowState

    def _find(self, a: Addr, b: Addr) -> tuple[FlowState | None, bool]:
        s = self.states.get((a, b))
        if s is not None:
            return s, True
        return self.states.get((b, a)), False

    def expire_of(self, a: Addr, b: Addr) -> int | None:
        s, _ = self._find(a, b)
        return None if s is None else s.expire

    def state_label(self, a: Addr, b: Addr) -> str | None:
        s, _ = self._find(a, b)
        return None if s is None else label(s.state)

    def packet(self, uptime: int, src: Addr, dst: Addr, flags: int, ack: int) -> Verdict:
        s, forward = self._find(src, dst)
        if s is None:
            s = FlowState.install(uptime, flags, self.params, src=src, dst=dst)
            if s is None:
                return Verdict(False)
            self.states[(src, dst)] = s
            return Verdict(True, True, True, True)
        return Verdict(True, forward, False, s.packet(uptime, forward, flags, ack, self.params))

    def expired(self, uptime: int) -> list[FlowState]:
        """dyn_expire_states(): remove and return states whose time has come."""
        gone = [k for k, s in self.states.items() if s.expired(uptime)]
        return [self.states.pop(k) for k in gone]

    def tick(self, uptime: int) -> list[Keepalive]:
        """dyn_tick() after the expiry pass: the keepalives of this round."""
        out = []
        for s in self.states.values():
            if s.keepalive_round(uptime, self.params):
                out += [Keepalive(s.dst, s.src, k.seq, k.ack) if k.to_sender
                        else Keepalive(s.src, s.dst, k.seq, k.ack)
                        for k in s.keepalives(self.params)]
        return out
