"""The bounds every sysctl value tcplinger proposes stays within, and why.

One table for both consumers: the diagnosis's fixes (``report``) propose
values through :mod:`.sysctl_proposals`, which stays inside these bounds,
and ``tune`` plans exactly those values (act/tune_plan.py) and checks them
again here. docs/act.md ("Bounds, and where they come from") has the table
with the reasoning in full; the catalog keys ``sysctl.bound.<key>`` say it
to the user, and ``Bound.sources`` are the citations (the same in every
language). Pure: no I/O.

Two rules hold whatever a finding says:

* ``tcp_tw_recycle`` is never proposed: removed in Linux 4.12 (commit
  4396e46187ca) because it dropped connections from clients behind NAT.
* Nothing is lowered so far that a slow or lossy peer is cut off: floors
  below for tcp_fin_timeout, keepalive, orphan retries and retries2; and
  tcp_keepalive_intvl / tcp_keepalive_probes (the part of keepalive that
  declares a peer dead) are never lowered at all.

>>> BOUNDS["tcp_fin_timeout"].low, BOUNDS["tcp_orphan_retries"].low
(30, 5)
>>> problems("tcp_fin_timeout", 10)
('below the floor 30',)
>>> problems("ip_local_port_range", (1024, 65535), current=(32768, 60999))
('below the floor 10000',)
>>> problems("ip_local_port_range", (1024, 65535), current=(1024, 60999))  # kept, not proposed
()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..model.kernel import SYSCTL_BY_NAME
from .lifetimes import effective_orphan_retries

SysctlValue = int | tuple[int, ...]


class Direction:
    """Which way a setting may be moved by a proposal."""

    ANY = "any"
    RAISE = "raise"  # only ever raised (limits whose overflow destroys state)
    WIDEN = "widen"  # a range: only ever widened


@dataclass(frozen=True)
class Bound:
    key: str  # tcplinger's name: the sysctl's last component
    low: int | None  # never proposed below (None: no floor)
    high: int | None  # never proposed above (None: no ceiling)
    default: SysctlValue | None  # the kernel's default (6.18; None: scales with memory)
    sources: tuple[str, ...]
    direction: str = Direction.ANY

    @property
    def sysctl(self) -> str:
        return sysctl_name(self.key)

    @property
    def message_key(self) -> str:
        """The catalog key that gives the reasoning in words (fields low, high, sources)."""
        return f"sysctl.bound.{self.key}"

    def to_json(self) -> dict:
        return {"low": self.low, "high": self.high, "direction": self.direction,
                "sources": list(self.sources)}


#: Sysctls the bounds name that a snapshot's KernelContext does not carry
#: (``tune`` reads them itself: tcp_tw_reuse is proposed only with timestamps).
EXTRA_PATHS = {"tcp_timestamps": "net/ipv4/tcp_timestamps"}


def sysctl_path(key: str) -> str:
    """Path below /proc/sys.

    >>> sysctl_path("tcp_timestamps")
    'net/ipv4/tcp_timestamps'
    """
    spec = SYSCTL_BY_NAME.get(key)
    return spec.path if spec else EXTRA_PATHS[key]


def sysctl_name(key: str) -> str:
    """Dotted sysctl name of a key.

    >>> sysctl_name("tcp_fin_timeout"), sysctl_name("nf_conntrack_max")
    ('net.ipv4.tcp_fin_timeout', 'net.netfilter.nf_conntrack_max')
    """
    return sysctl_path(key).replace("/", ".")


def per_netns(key: str) -> bool:
    """Whether each network namespace has its own value (KERNEL-NOTES.md);
    host-wide ones exist only in the initial namespace, or are read-only
    copies of it (nf_conntrack_max).

    >>> per_netns("tcp_fin_timeout"), per_netns("tcp_max_orphans")
    (True, False)
    """
    spec = SYSCTL_BY_NAME.get(key)
    return spec.per_netns if spec else True


IP_SYSCTL = "Documentation/networking/ip-sysctl.rst"
CT_SYSCTL = "Documentation/networking/nf_conntrack-sysctl.rst"
RFC1122_KA = "RFC 1122 §4.2.3.6 (keep-alives)"
RFC1122_R2 = "RFC 1122 §4.2.3.5 (R2 >= 100 s)"
RFC9293_CLOSE = "RFC 9293 §3.6 (closing a connection)"
RFC1337 = "RFC 1337 (TIME-WAIT assassination hazards)"
RFC6298 = "RFC 6298 §2 (initial RTO 1 s)"
RFC7323 = "RFC 7323 §5 (PAWS)"
RFC5382 = "RFC 5382 REQ-5 (established idle timeout >= 2 h 4 min)"
RFC6335 = "RFC 6335 §6 (dynamic ports 49152-65535)"
TCP7 = "tcp(7)"
TCP_TIMER_C = "net/ipv4/tcp_timer.c (tcp_model_timeout, tcp_orphan_retries)"
MINISOCKS_C = "net/ipv4/tcp_minisocks.c (tcp_time_wait)"

#: Kernel memory per TIME_WAIT minisocket (tw_sock_TCP object size, 6.18,
#: /proc/slabinfo).
TW_SOCK_BYTES = 256
#: Unswappable memory an orphan may hold (ip-sysctl, tcp_max_orphans).
ORPHAN_BYTES = 64 << 10
PAGE_BYTES = 4096

BOUNDS: dict[str, Bound] = {b.key: b for b in (
    # Orphaned FIN_WAIT2 only. 30 s still waits out a peer FIN retransmitted
    # with exponential backoff from a 1 s RTO (1+2+4+8+16 = 31 s) and the
    # usual idle-close of client pools; above 60 s it costs 2T-120 s in two
    # phases (diagnose/lifetimes.py), so 60 is the ceiling.
    Bound("tcp_fin_timeout", 30, 60, 60, (IP_SYSCTL, TCP7, RFC9293_CLOSE, RFC6298)),
    # Only sockets with SO_KEEPALIVE; time to the first probe, not to
    # declaring a peer dead, so lowering it costs probes, not connections.
    Bound("tcp_keepalive_time", 120, 7200, 7200, (RFC1122_KA, TCP7, IP_SYSCTL)),
    # The part that declares a peer dead: never lowered; raised back to 3
    # if someone set fewer (one lost probe must not kill a connection).
    Bound("tcp_keepalive_probes", 3, None, 9, (RFC1122_KA, IP_SYSCTL), Direction.RAISE),
    Bound("tcp_keepalive_intvl", None, None, 75, (RFC1122_KA, IP_SYSCTL), Direction.RAISE),
    # Orphans get about 0.2 s x (2^(N+1) - 1) of retransmissions
    # (tcp_model_timeout with TCP_RTO_MIN): 5 -> 12.6 s, 6 -> 25.4 s,
    # 8 (what 0 means) -> 102 s. Below 5 a path with a 1 s RTO gets fewer
    # than four tries before the data the application wrote is thrown away.
    Bound("tcp_orphan_retries", 5, None, 0, (IP_SYSCTL, TCP_TIMER_C)),
    # "RFC 1122 recommends at least 100 seconds for the timeout, which
    # corresponds to a value of at least 8" (ip-sysctl). Only raised back.
    Bound("tcp_retries2", 8, None, 15, (IP_SYSCTL, RFC1122_R2), Direction.RAISE),
    # 1 only: lets connect() take a TIME_WAIT port when timestamps prove
    # the new segments are newer (PAWS); never tcp_tw_recycle.
    Bound("tcp_tw_reuse", 1, 1, 2, (IP_SYSCTL, RFC7323, RFC1337)),
    # "you must not lower the limit artificially, but rather increase it"
    # (ip-sysctl); 256 B per tw_sock_TCP slab object on 6.18: the ceiling
    # of 2^21 buckets is 512 MiB.
    Bound("tcp_max_tw_buckets", None, 1 << 21, None, (IP_SYSCTL, MINISOCKS_C),
          Direction.RAISE),
    # "each orphan eats up to ~64K of unswappable memory" (ip-sysctl): the
    # ceiling is what tcp_mem's high mark can hold (max_orphans_ceiling).
    Bound("tcp_max_orphans", None, None, None, (IP_SYSCTL, TCP_TIMER_C), Direction.RAISE),
    # Widened only, never below 10000: the ports under it hold most
    # services' well-known listeners (ip_local_reserved_ports for others).
    # A low end someone already set lower is kept, never moved further.
    Bound("ip_local_port_range", 10000, 65535, (32768, 60999), (IP_SYSCTL, RFC6335),
          Direction.WIDEN),
    # Longer keeps closing flows known; never above the established timeout.
    Bound("nf_conntrack_tcp_timeout_close_wait", 60, 3600, 60, (CT_SYSCTL,), Direction.RAISE),
    Bound("nf_conntrack_tcp_timeout_established", 7440, None, 432000, (CT_SYSCTL, RFC5382)),
    Bound("nf_conntrack_max", None, None, None, (CT_SYSCTL,), Direction.RAISE),
)}

#: Never proposed, whatever a finding or a seed says.
NEVER = ("tcp_tw_recycle",)

#: Settings raised back to their floor when found below it (tune's bounds check).
FLOORS_KEPT = ("tcp_fin_timeout", "tcp_keepalive_probes", "tcp_retries2", "tcp_orphan_retries")


def max_orphans_ceiling(tcp_mem: tuple[int, ...] | None) -> int | None:
    """Orphans tcp_mem's high mark (pages) can hold at 64 KiB each.

    >>> max_orphans_ceiling((100, 200, 300_000)), max_orphans_ceiling(None)
    (18750, None)
    """
    if not tcp_mem or len(tcp_mem) != 3:
        return None
    return int(tcp_mem[2]) * PAGE_BYTES // ORPHAN_BYTES


def _effective(key: str, value: int) -> int:
    return effective_orphan_retries(value) if key == "tcp_orphan_retries" else value


def clamp(key: str, value: int) -> int:
    """A value held inside its bound.

    >>> clamp("tcp_fin_timeout", 5), clamp("tcp_fin_timeout", 120), clamp("tcp_keepalive_time", 30)
    (30, 60, 120)
    """
    b = BOUNDS[key]
    if b.low is not None:
        value = max(value, b.low)
    if b.high is not None:
        value = min(value, b.high)
    return value


def problems(key: str, value: SysctlValue, current: SysctlValue | None = None,
             sysctls: Mapping[str, SysctlValue] | None = None) -> tuple[str, ...]:
    """Why ``value`` (proposed for ``key``, now ``current``) breaks the
    bounds: empty when it keeps them. ``sysctls`` (the namespace's other
    settings) checks the bounds that depend on another setting.

    >>> problems("tcp_orphan_retries", 3), problems("tcp_orphan_retries", 6)
    (('below the floor 5',), ())
    >>> problems("tcp_max_tw_buckets", 1024, current=2048)
    ('lowered, but it is only ever raised',)
    >>> problems("tcp_tw_recycle", 0)
    ('never proposed',)
    """
    if key in NEVER:
        return ("never proposed",)
    b = BOUNDS.get(key)
    if b is None:
        return ("no bound: not a setting tcplinger proposes",)
    out: list[str] = []
    if isinstance(value, tuple):
        ends = list(zip(value, current if isinstance(current, tuple) else (None,) * len(value)))
        if len(value) != 2 or value[0] > value[1]:
            out.append("not a range")
        for v, cur in ends:
            if v == cur:
                continue  # an end left as it is is not proposed
            if b.low is not None and v < b.low:
                out.append(f"below the floor {b.low}")
            if b.high is not None and v > b.high:
                out.append(f"above the ceiling {b.high}")
        if b.direction == Direction.WIDEN and isinstance(current, tuple) and len(value) == 2 \
                and (value[0] > current[0] or value[1] < current[1]):
            out.append("narrowed, but it is only ever widened")
        return tuple(out)
    eff = _effective(key, int(value))
    if b.low is not None and eff < b.low:
        out.append(f"below the floor {b.low}")
    if b.high is not None and eff > b.high:
        out.append(f"above the ceiling {b.high}")
    if b.direction == Direction.RAISE and isinstance(current, int) \
            and eff < _effective(key, current):
        out.append("lowered, but it is only ever raised")
    others = sysctls or {}
    if key == "tcp_max_orphans":
        cap = max_orphans_ceiling(others.get("tcp_mem"))
        if cap is not None and value > cap:
            out.append(f"above what tcp_mem can hold ({cap})")
    if key == "nf_conntrack_tcp_timeout_close_wait":
        est = others.get("nf_conntrack_tcp_timeout_established")
        if isinstance(est, int) and value > est:
            out.append(f"above the established timeout ({est})")
    return tuple(out)


def below_floor(key: str, value: SysctlValue | None) -> int | None:
    """The floor to raise ``value`` back to, None when it is not below it
    (tcp_orphan_retries 0 means 8).

    >>> below_floor("tcp_fin_timeout", 5), below_floor("tcp_fin_timeout", 60)
    (30, None)
    >>> below_floor("tcp_orphan_retries", 0), below_floor("tcp_orphan_retries", 2)
    (None, 5)
    """
    low = BOUNDS[key].low
    if not isinstance(value, int) or low is None:
        return None
    return low if _effective(key, value) < low else None
