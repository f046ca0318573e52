"""FreeBSD ipfw dynamic rules (``keep-state``): one state machine for the
simulator's ipfw middlebox and the lab's userspace ipfw (lab/bridge.py).

Follows sys/netpfil/ipfw/ip_fw_dynamic.c (FreeBSD 12-15):
``dyn_update_tcp_state()`` for the lifetimes, ``dyn_tick()`` for expiry
and the keepalive rounds, ``dyn_enqueue_keepalive_ipv4()`` and
``dyn_make_keepalive_ipv4()`` for the forged keepalives; and the older
sys/netinet/ipfw/ip_fw_dynamic.c (FreeBSD 8-9: ``lookup_dyn_rule_locked``,
``ipfw_tick``) for ``refresh="any"``. No code is copied; the rules, with the
ruleset ``check-state; allow tcp from any to any setup keep-state; deny ip
from any to any``:

* A SYN without ACK that matches no state installs one (forward = the
  SYN's direction). Every packet of a state ORs its SYN/FIN/RST flags into
  it, per direction (``flags << 8`` for the reverse one).
* The state's lifetime then depends on the flags seen: SYN one way:
  ``dyn_syn_lifetime``; SYN both ways, with or without one FIN:
  ``dyn_ack_lifetime``; FIN both ways: ``dyn_fin_lifetime`` (forced below
  ``dyn_keepalive_period``: the kernel rewrites the sysctl); anything else
  (a RST): ``dyn_rst_lifetime`` (forced likewise while keepalives are on).
  Lifetimes are whole seconds of ``time_uptime``.
* ``refresh="both"`` (FreeBSD 10 and later): in the ack-lifetime states the
  expiry is pushed to now + dyn_ack_lifetime only once *both* directions
  sent an ACK at least as large as the last one seen since the previous
  push (ACK_FWD/ACK_REV, cleared at each push). ``refresh="any"`` (ipfw2 up
  to FreeBSD 9, the seed's 2003): any such ACK pushes it.
* Once a second ``dyn_tick`` removes states whose expiry has come, and,
  with ``dyn_keepalive`` on, at uptimes that are multiples of
  ``dyn_keepalive_period`` sends keepalives for the states with SYN both
  ways that expire within ``dyn_keepalive_interval`` (20 s) seconds: to
  each side whose ACK bit is not set ("any": to both sides), an ACK from
  the other side's address with the sequence number one below what that
  side acknowledged last (so its TCP answers with an ACK, as to any old
  segment) and a zero window.
* A packet with no state is denied.

Times and lifetimes may be numpy arrays (a simulator sweep): decisions on
them go through :func:`tcplinger.sim.num.truth`.

>>> rules = Rules(ack_lifetime=10)
>>> s = DynState.install(1, SYN, rules)
>>> s.expire, label(s.state)
(21, 'SYN')
>>> s.packet(1, False, SYN | ACK, 1001, rules), s.packet(1, True, ACK, 5001, rules)
(True, False)
>>> s.expire, label(s.state), tcp_state_of(s.state)
(11, 'BOTH_SYN', 1)
>>> s.packet(2, False, FIN | ACK, 1001, rules), label(s.state)
(True, 'BOTH_SYN|FIN_REV')

The server's FIN carried an ACK (ACK_REV); the client has not acked since
the last push, so the keepalive round at uptime 5 (the state expires
within 20 s) goes to the client only, as if from the server:

>>> s.keepalive_round(5, rules), [(k.to_sender, k.seq, k.ack) for k in s.keepalives(rules)]
(True, [(True, 5000, 1001)])
>>> s.expired(10), s.expired(11)
(False, True)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..num import truth
from ..segment import ACK, FIN, RST, SYN

BOTH_SYN = SYN | SYN << 8
BOTH_FIN = FIN | FIN << 8
TCP_FLAGS = (FIN | SYN | RST) | (FIN | SYN | RST) << 8
ACK_FWD = 0x10000
ACK_REV = 0x20000
ACK_BOTH = ACK_FWD | ACK_REV


@dataclass
class Rules:
    """net.inet.ip.fw.* (ipfw(8) SYSCTL VARIABLES); FreeBSD defaults.
    dyn_keepalive_interval (20) and _period (5) are compile-time constants
    in FreeBSD. Mutable: the kernel rewrites fin/rst lifetimes."""

    ack_lifetime: object = 300
    syn_lifetime: object = 20
    fin_lifetime: object = 1
    rst_lifetime: object = 1
    keepalive: object = 1
    keepalive_interval: object = 20
    keepalive_period: object = 5
    refresh: str = "both"  # "both" (FreeBSD >= 10) | "any" (ipfw2 up to FreeBSD 9)


@dataclass(frozen=True)
class Keepalive:
    """A forged segment: to the SYN's sender (``to_sender``) or to the
    other side, from its peer's address, ACK only, window 0."""

    to_sender: bool
    seq: int
    ack: int


def _seq_ge(a: int, b: int) -> bool:
    return ((a - b) & 0xFFFFFFFF) < 0x80000000


@dataclass
class DynState:
    """One dynamic state: ``state`` the flags seen (the kernel's
    ``data->state``), the last ACK each way, the expiry in uptime seconds."""

    state: int = 0
    ack_fwd: int = 0
    ack_rev: int = 0
    expire: object = 0

    @classmethod
    def install(cls, uptime, flags: int, rules: Rules, **fields) -> "DynState | None":
        """The state a packet matching no state installs ("setup" matches a
        SYN without ACK), or None: denied."""
        if flags & (SYN | ACK) != SYN:
            return None
        s = cls(**fields)
        s.packet(uptime, True, flags, 0, rules)
        return s

    def packet(self, uptime, forward: bool, flags: int, ack: int, rules: Rules) -> bool:
        """dyn_update_tcp_state(); True when the state's SYN/FIN/RST flags
        changed."""
        old = self.state & TCP_FLAGS
        th = flags & (FIN | SYN | RST)
        self.state |= th if forward else th << 8
        kind = self.state & TCP_FLAGS
        if kind == SYN:
            self.expire = uptime + rules.syn_lifetime
        elif kind in (BOTH_SYN, BOTH_SYN | FIN, BOTH_SYN | FIN << 8):
            if flags & ACK:
                self._ack(uptime, forward, ack, rules)
        elif kind == BOTH_SYN | BOTH_FIN:
            self.expire = uptime + self.fin_lifetime(rules)
        else:
            if truth(rules.keepalive != 0) and truth(rules.rst_lifetime >= rules.keepalive_period):
                rules.rst_lifetime = rules.keepalive_period - 1
            self.expire = uptime + rules.rst_lifetime
        return (self.state & TCP_FLAGS) != old

    def fin_lifetime(self, rules: Rules):
        if truth(rules.fin_lifetime >= rules.keepalive_period):
            rules.fin_lifetime = rules.keepalive_period - 1  # the kernel rewrites the sysctl
        return rules.fin_lifetime

    def _ack(self, uptime, forward: bool, ack: int, rules: Rules) -> None:
        last = self.ack_fwd if forward else self.ack_rev
        if not (last == 0 or _seq_ge(ack, last)):
            return
        if forward:
            self.ack_fwd = ack
        else:
            self.ack_rev = ack
        if rules.refresh == "any":
            self.expire = uptime + rules.ack_lifetime
            return
        self.state |= ACK_FWD if forward else ACK_REV
        if self.state & ACK_BOTH == ACK_BOTH:
            self.expire = uptime + rules.ack_lifetime
            self.state &= ~ACK_BOTH

    def expired(self, uptime) -> bool:
        """dyn_expire_states(): its time has come."""
        return truth(self.expire <= uptime)

    def keepalive_round(self, uptime, rules: Rules) -> bool:
        """dyn_tick() at ``uptime`` (a whole second) sends this state
        keepalives: a round (uptime on the period grid; the kernel's
        dyn_keepalive_last starts at 0), SYN both ways, expiring within the
        interval."""
        return truth(rules.keepalive != 0) and truth(uptime % rules.keepalive_period == 0) \
            and self.state & BOTH_SYN == BOTH_SYN \
            and truth(uptime + rules.keepalive_interval > self.expire)

    def keepalives(self, rules: Rules) -> list[Keepalive]:
        """The keepalives of a round: to each side that has not acked since
        the last push ("any": both), once it has acked anything."""
        both = rules.refresh == "any"
        out = []
        if (both or not self.state & ACK_FWD) and self.ack_fwd > 0:  # to the SYN's sender
            out.append(Keepalive(True, (self.ack_fwd - 1) & 0xFFFFFFFF, self.ack_rev))
        if (both or not self.state & ACK_REV) and self.ack_rev > 0:
            out.append(Keepalive(False, (self.ack_rev - 1) & 0xFFFFFFFF, self.ack_fwd))
        return out


def label(flags: int) -> str:
    """A state's flags as ipfw would print them, for the timeline.

    >>> label(BOTH_SYN | FIN << 8), label(SYN), label(BOTH_SYN | BOTH_FIN), label(RST | BOTH_SYN)
    ('BOTH_SYN|FIN_REV', 'SYN', 'BOTH_SYN|BOTH_FIN', 'BOTH_SYN|RST')
    """
    st = flags & TCP_FLAGS
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


def tcp_state_of(flags: int) -> int:
    """The TCP state a dynamic state is drawn as (kernel numbers)."""
    st = flags & TCP_FLAGS
    if st & (RST | RST << 8):
        return 7  # CLOSE
    if st & BOTH_SYN != BOTH_SYN:
        return 2  # SYN_SENT
    if st & BOTH_FIN == BOTH_FIN:
        return 6  # TIME_WAIT
    if st & (FIN | FIN << 8):
        return 5  # FIN_WAIT2
    return 1  # ESTABLISHED
