"""FreeBSD ipfw dynamic rules (``keep-state``), as a pure state machine.

Follows sys/netpfil/ipfw/ip_fw_dynamic.c (FreeBSD 12-15):
``dyn_update_tcp_state()`` for the lifetimes, ``dyn_tick()`` for expiry
and the keepalive rounds, ``dyn_enqueue_keepalive_ipv4()`` and
``dyn_make_keepalive_ipv4()`` for the forged keepalives. No code is
copied; the rules, with the ruleset ``check-state; allow tcp from any to
any setup keep-state; deny ip from any to any``:

* A SYN without ACK that matches no state installs one (forward = the
  SYN's direction). Every packet of a state ORs its SYN/FIN/RST flags into
  it, per direction (``flags << 8`` for the reverse one).
* The state's lifetime then depends on the flags seen: SYN one way:
  ``dyn_syn_lifetime``; SYN both ways, with or without one FIN: pushed to
  ``dyn_ack_lifetime`` once *both* directions sent an ACK at least as large
  as the last one seen since the previous push (ACK_FWD/ACK_REV, cleared
  at each push); FIN both ways: ``dyn_fin_lifetime`` (forced below
  ``dyn_keepalive_period``); anything else (a RST): ``dyn_rst_lifetime``.
  Lifetimes are whole seconds of ``time_uptime``.
* Once a second ``dyn_tick`` removes states whose expiry has come, and,
  with ``dyn_keepalive`` on, every ``dyn_keepalive_period`` seconds sends
  keepalives for the states with SYN both ways that expire within
  ``dyn_keepalive_interval`` (20 s) seconds: to each side whose ACK bit is
  not set, an ACK from the other side's address with the sequence number
  one below what that side acknowledged last (so its TCP answers with an
  ACK, as to any old segment) and a zero window.
* A packet with no state is denied.

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

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
BOTH_SYN = SYN | SYN << 8
BOTH_FIN = FIN | FIN << 8
TCP_FLAGS = (FIN | SYN | RST) | (FIN | SYN | RST) << 8
ACK_FWD = 0x10000
ACK_REV = 0x20000
ACK_BOTH = ACK_FWD | ACK_REV

Addr = tuple[str, int]


def _seq_ge(a: int, b: int) -> bool:
    return ((a - b) & 0xFFFFFFFF) < 0x80000000


def _time_leq(a: int, b: int) -> bool:
    return a - b <= 0


@dataclass
class IpfwParams:
    """net.inet.ip.fw.* (ipfw(8) SYSCTL VARIABLES); FreeBSD defaults."""

    ack_lifetime: int = 300
    syn_lifetime: int = 20
    fin_lifetime: int = 1
    rst_lifetime: int = 1
    keepalive: int = 1
    keepalive_interval: int = 20  # compile-time constant in FreeBSD
    keepalive_period: int = 5  # idem


@dataclass
class DynState:
    src: Addr  # the SYN's sender
    dst: Addr
    state: int = 0
    ack_fwd: int = 0
    ack_rev: int = 0
    expire: int = 0


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
    params: IpfwParams = field(default_factory=IpfwParams)
    states: dict = field(default_factory=dict)  # (src, dst) -> DynState
    keepalive_last: int = 0

    # ---- lookups --------------------------------------------------------------
    def _find(self, a: Addr, b: Addr) -> tuple[DynState | None, bool]:
        s = self.states.get((a, b))
        if s is not None:
            return s, True
        s = self.states.get((b, a))
        return s, False

    def expire_of(self, a: Addr, b: Addr) -> int | None:
        s, _ = self._find(a, b)
        return None if s is None else s.expire

    def state_label(self, a: Addr, b: Addr) -> str | None:
        s, _ = self._find(a, b)
        return None if s is None else label(s.state)

    # ---- packets ----------------------------------------------------------------
    def packet(self, uptime: int, src: Addr, dst: Addr, flags: int, ack: int) -> Verdict:
        s, forward = self._find(src, dst)
        installed = False
        if s is None:
            if flags & (SYN | ACK) != SYN:  # "setup" matches a SYN without ACK only
                return Verdict(False)
            s = DynState(src, dst)
            self.states[(src, dst)] = s
            forward, installed = True, True
        old = s.state & TCP_FLAGS
        s.expire = self._update(uptime, s, flags, ack, forward)
        return Verdict(True, forward, installed, installed or (s.state & TCP_FLAGS) != old)

    def _update(self, uptime: int, s: DynState, flags: int, ack: int, forward: bool) -> int:
        """dyn_update_tcp_state(): the new expiry, updating ``s.state``."""
        p = self.params
        expire = s.expire
        th = flags & (FIN | SYN | RST)
        state = s.state | (th if forward else th << 8)
        kind = state & TCP_FLAGS
        if kind == SYN:
            expire = uptime + p.syn_lifetime
        elif kind in (BOTH_SYN, BOTH_SYN | FIN, BOTH_SYN | FIN << 8):
            if flags & ACK:
                if forward:
                    if s.ack_fwd == 0 or _seq_ge(ack, s.ack_fwd):
                        state |= ACK_FWD
                        s.ack_fwd = ack
                else:
                    if s.ack_rev == 0 or _seq_ge(ack, s.ack_rev):
                        state |= ACK_REV
                        s.ack_rev = ack
            if state & ACK_BOTH == ACK_BOTH:
                expire = uptime + p.ack_lifetime
                state &= ~ACK_BOTH
        elif kind == BOTH_SYN | BOTH_FIN:
            if p.fin_lifetime >= p.keepalive_period:
                p.fin_lifetime = p.keepalive_period - 1  # the kernel rewrites the sysctl
            expire = uptime + p.fin_lifetime
        else:
            if p.keepalive and p.rst_lifetime >= p.keepalive_period:
                p.rst_lifetime = p.keepalive_period - 1
            expire = uptime + p.rst_lifetime
        s.state = state
        return expire

    # ---- the once-a-second tick ---------------------------------------------------
    def expired(self, uptime: int) -> list[DynState]:
        """dyn_expire_states(): remove and return states whose time has come."""
        gone = [k for k, s in self.states.items() if _time_leq(s.expire, uptime)]
        return [self.states.pop(k) for k in gone]

    def tick(self, uptime: int) -> list[Keepalive]:
        """dyn_tick() after the expiry pass: the keepalives of this round."""
        p = self.params
        if not p.keepalive or self.keepalive_last + p.keepalive_period > uptime:
            return []
        self.keepalive_last = uptime
        out = []
        for s in self.states.values():
            if s.state & BOTH_SYN != BOTH_SYN or _time_leq(uptime + p.keepalive_interval,
                                                           s.expire):
                continue
            if not s.state & ACK_FWD and s.ack_fwd > 0:  # to the SYN's sender
                out.append(Keepalive(s.dst, s.src, (s.ack_fwd - 1) & 0xFFFFFFFF, s.ack_rev))
            if not s.state & ACK_REV and s.ack_rev > 0:
                out.append(Keepalive(s.src, s.dst, (s.ack_rev - 1) & 0xFFFFFFFF, s.ack_fwd))
        return out


def label(state: int) -> str:
    """A state's flags as ipfw would print them, for the timeline.

    >>> label(BOTH_SYN | FIN << 8), label(SYN), label(BOTH_SYN | BOTH_FIN), label(RST | BOTH_SYN)
    ('BOTH_SYN|FIN_REV', 'SYN', 'BOTH_SYN|BOTH_FIN', 'BOTH_SYN|RST')
    """
    st = state & TCP_FLAGS
    parts = []
    if st & BOTH_SYN == BOTH_SYN:
        parts.append("BOTH_SYN")
    elif st & BOTH_SYN:
        parts.append("SYN")
    if st & BOTH_FIN == BOTH_FIN:
        parts.append("BOTH_FIN")
    elif st & FIN:
        parts.append("FIN_FWD")
    elif st & FIN << 8:
        parts.append("FIN_REV")
    if st & (RST | RST << 8):
        parts.append("RST")
    return "|".join(parts) or "NONE"


def tcp_state_of(state: int) -> int:
    """The TCP state a dynamic state is drawn as (as the simulator does)."""
    st = state & TCP_FLAGS
    if st & (RST | RST << 8):
        return 7  # CLOSE
    if st & BOTH_SYN != BOTH_SYN:
        return 2  # SYN_SENT
    if st & BOTH_FIN == BOTH_FIN:
        return 6  # TIME_WAIT
    if st & (FIN | FIN << 8):
        return 5  # FIN_WAIT2
    return 1  # ESTABLISHED
