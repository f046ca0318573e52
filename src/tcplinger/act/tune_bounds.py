"""The limits ``tcplinger tune`` keeps, and where each comes from.

Every value ``tune`` proposes is clamped into these bounds; docs/act.md
has the same table with the reasoning. Sources are citations (the same in
every language); the catalog keys ``tune.bound.<key>`` say it in words.

Two rules hold whatever the findings say:

* ``tcp_tw_recycle`` is never proposed: removed in Linux 4.12 (commit
  4396e46187ca) because it dropped connections from clients behind NAT.
* Nothing is lowered so far that a slow or lossy peer is cut off: floors
  below for tcp_fin_timeout, keepalive, orphan retries and retries2; and
  tcp_keepalive_intvl / tcp_keepalive_probes (the part of keepalive that
  declares a peer dead) are never lowered at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model.kernel import SYSCTL_BY_NAME


@dataclass(frozen=True)
class Bound:
    key: str  # tcplinger's name: the sysctl's last component
    low: int | None  # never proposed below (None: no floor)
    high: int | None  # never proposed above (None: no ceiling)
    default: int | tuple[int, ...] | None  # the kernel's default (6.18)
    sources: tuple[str, ...]

    @property
    def sysctl(self) -> str:
        return sysctl_name(self.key)


def sysctl_name(key: str) -> str:
    """Dotted sysctl name of a key.

    >>> sysctl_name("tcp_fin_timeout"), sysctl_name("nf_conntrack_max")
    ('net.ipv4.tcp_fin_timeout', 'net.netfilter.nf_conntrack_max')
    """
    spec = SYSCTL_BY_NAME.get(key)
    path = spec.path if spec else EXTRA_PATHS[key]
    return path.replace("/", ".")


def sysctl_path(key: str) -> str:
    """Path below /proc/sys."""
    spec = SYSCTL_BY_NAME.get(key)
    return spec.path if spec else EXTRA_PATHS[key]


#: Sysctls tune reads that the snapshot's KernelContext does not carry.
EXTRA_PATHS = {"tcp_timestamps": "net/ipv4/tcp_timestamps"}

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
    Bound("tcp_keepalive_probes", 3, None, 9, (RFC1122_KA, IP_SYSCTL)),
    Bound("tcp_keepalive_intvl", None, None, 75, (RFC1122_KA, IP_SYSCTL)),
    # Orphans get about 0.2 s x (2^(N+1) - 1) of retransmissions
    # (tcp_model_timeout with TCP_RTO_MIN): 5 -> 12.6 s, 6 -> 25.4 s,
    # 8 (what 0 means) -> 102 s. Below 5 a path with a 1 s RTO gets fewer
    # than four tries before the data the application wrote is thrown away.
    Bound("tcp_orphan_retries", 5, None, 0, (IP_SYSCTL, TCP_TIMER_C)),
    Bound("tcp_retries2", 8, None, 15, (IP_SYSCTL, RFC1122_R2)),
    # 1 lets connect() take a TIME_WAIT port when timestamps prove the
    # new segments are newer (PAWS); never tcp_tw_recycle.
    Bound("tcp_tw_reuse", 0, 2, 2, (IP_SYSCTL, RFC7323, RFC1337)),
    # "you must not lower the limit artificially, but rather increase it"
    # (ip-sysctl); 256 B per tw_sock_TCP slab object on 6.18: the ceiling
    # of 2^21 buckets is 512 MiB.
    Bound("tcp_max_tw_buckets", None, 1 << 21, None, (IP_SYSCTL, MINISOCKS_C)),
    # "each orphan eats up to ~64K of unswappable memory" (ip-sysctl): the
    # ceiling is what tcp_mem's high mark can hold; computed per host.
    Bound("tcp_max_orphans", None, None, None, (IP_SYSCTL, TCP_TIMER_C)),
    # Widened only, never below 10000: the ports under it hold most
    # services' well-known listeners (ip_local_reserved_ports for others).
    Bound("ip_local_port_range", 10000, 65535, (32768, 60999), (IP_SYSCTL, RFC6335)),
    Bound("nf_conntrack_tcp_timeout_close_wait", 60, 3600, 60, (CT_SYSCTL,)),
    Bound("nf_conntrack_tcp_timeout_established", 7440, None, 432000, (CT_SYSCTL, RFC5382)),
    Bound("nf_conntrack_max", None, None, None, (CT_SYSCTL,)),
)}

#: Proposed values (within the bounds above).
FIN_TIMEOUT_PROPOSED = 30
ORPHAN_RETRIES_PROPOSED = 6
TW_REUSE_PROPOSED = 1
PORT_RANGE_PROPOSED = (10000, 65535)
CT_CLOSE_WAIT_PROPOSED = 3600
CT_ESTABLISHED_PROPOSED = 86400
#: Kernel memory per TIME_WAIT minisocket (tw_sock_TCP object size, 6.18).
TW_SOCK_BYTES = 256
#: Unswappable memory an orphan may hold (ip-sysctl, tcp_max_orphans).
ORPHAN_BYTES = 64 << 10
PAGE_BYTES = 4096

#: Never proposed, whatever a finding or a seed says.
NEVER = ("tcp_tw_recycle",)


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


def effective_orphan_retries(value: int) -> int:
    """tcp_orphan_retries() in tcp_timer.c: 0 means 8 (for a live path).

    >>> effective_orphan_retries(0), effective_orphan_retries(3)
    (8, 3)
    """
    return 8 if value == 0 else value


def orphan_budget_s(retries: int) -> float:
    """Seconds of retransmission an orphan gets: tcp_model_timeout() with
    TCP_RTO_MIN (200 ms) as the base, TCP_RTO_MAX 120 s.

    >>> orphan_budget_s(5), orphan_budget_s(8), round(orphan_budget_s(15), 1)
    (12.6, 102.2, 924.6)
    """
    base, cap = 0.2, 120.0
    thresh = 9  # ilog2(TCP_RTO_MAX / TCP_RTO_MIN) = ilog2(600)
    if retries <= thresh:
        return round(((2 << retries) - 1) * base, 1)
    return round(((2 << thresh) - 1) * base + (retries - thresh) * cap, 1)
