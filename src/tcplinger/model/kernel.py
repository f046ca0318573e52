"""Kernel context of one network namespace: the settings that govern
teardown, socket accounting and the TcpExt counters.

Names are the sysctl's last path component (``tcp_fin_timeout``); the
table below says where each lives and whether it is per namespace
(Documentation/networking/ip-sysctl.rst; checked on 6.18 in KERNEL-NOTES).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SysctlSpec:
    name: str
    path: str  # below /proc/sys
    per_netns: bool
    unit: str  # "s", "count", "range", "pages", "bool", "ms"


SYSCTLS: tuple[SysctlSpec, ...] = (
    SysctlSpec("tcp_fin_timeout", "net/ipv4/tcp_fin_timeout", True, "s"),
    SysctlSpec("tcp_keepalive_time", "net/ipv4/tcp_keepalive_time", True, "s"),
    SysctlSpec("tcp_keepalive_intvl", "net/ipv4/tcp_keepalive_intvl", True, "s"),
    SysctlSpec("tcp_keepalive_probes", "net/ipv4/tcp_keepalive_probes", True, "count"),
    SysctlSpec("tcp_max_tw_buckets", "net/ipv4/tcp_max_tw_buckets", True, "count"),
    SysctlSpec("tcp_max_orphans", "net/ipv4/tcp_max_orphans", False, "count"),
    SysctlSpec("tcp_orphan_retries", "net/ipv4/tcp_orphan_retries", True, "count"),
    SysctlSpec("tcp_retries2", "net/ipv4/tcp_retries2", True, "count"),
    SysctlSpec("tcp_tw_reuse", "net/ipv4/tcp_tw_reuse", True, "count"),
    SysctlSpec("ip_local_port_range", "net/ipv4/ip_local_port_range", True, "range"),
    SysctlSpec("tcp_mem", "net/ipv4/tcp_mem", False, "pages"),
    # Global: read-only in child namespaces, showing the host's value.
    SysctlSpec("nf_conntrack_max", "net/netfilter/nf_conntrack_max", False, "count"),
    SysctlSpec("nf_conntrack_count", "net/netfilter/nf_conntrack_count", True, "count"),
    SysctlSpec("nf_conntrack_tcp_timeout_fin_wait",
               "net/netfilter/nf_conntrack_tcp_timeout_fin_wait", True, "s"),
    SysctlSpec("nf_conntrack_tcp_timeout_close_wait",
               "net/netfilter/nf_conntrack_tcp_timeout_close_wait", True, "s"),
    SysctlSpec("nf_conntrack_tcp_timeout_time_wait",
               "net/netfilter/nf_conntrack_tcp_timeout_time_wait", True, "s"),
    SysctlSpec("nf_conntrack_tcp_timeout_last_ack",
               "net/netfilter/nf_conntrack_tcp_timeout_last_ack", True, "s"),
    SysctlSpec("nf_conntrack_tcp_timeout_established",
               "net/netfilter/nf_conntrack_tcp_timeout_established", True, "s"),
)
SYSCTL_BY_NAME = {s.name: s for s in SYSCTLS}

#: TcpExt counters tcplinger reports (from /proc/net/netstat).
TCPEXT_COUNTERS = (
    "TW", "TWRecycled", "TWKilled", "TCPTimeWaitOverflow",
    "TCPAbortOnData", "TCPAbortOnClose", "TCPAbortOnMemory",
    "TCPAbortOnTimeout", "TCPAbortOnLinger", "TCPAbortFailed",
    "TCPMemoryPressures",
)

#: TIME_WAIT lasts TCP_TIMEWAIT_LEN (60 s, include/net/tcp.h); no sysctl
#: changes it on mainline (tcp_tw_timeout is a vendor patch).
TCP_TIMEWAIT_LEN_S = 60


@dataclass(frozen=True)
class SockStat:
    """/proc/net/sockstat's TCP line (and sockets: used).

    Scopes differ (measured on 6.18): ``inuse`` and ``tw`` are per
    namespace; ``orphan``, ``alloc`` and ``mem_pages`` are host-wide
    counters even when read inside a child namespace.
    """

    inuse: int = 0
    orphan: int = 0
    tw: int = 0
    alloc: int = 0
    mem_pages: int = 0
    sockets_used: int = 0


@dataclass(frozen=True)
class KernelContext:
    sysctls: dict = field(default_factory=dict)  # name -> int | tuple[int, ...]
    sockstat: SockStat | None = None
    tcpext: dict = field(default_factory=dict)  # counter -> int
    conntrack: tuple[int, int] | None = None  # (count, max) where loaded
    missing: tuple[str, ...] = ()  # what could not be read, and why

    def get(self, name: str, default=None):
        return self.sysctls.get(name, default)

    @property
    def port_range_size(self) -> int | None:
        rng = self.sysctls.get("ip_local_port_range")
        if not rng:
            return None
        return rng[1] - rng[0] + 1
