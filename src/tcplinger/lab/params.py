"""The namespace sysctls a lab run may set with ``--set NAME=VALUE``,
declared as data with the range this kernel accepts. Scenario parameters
are :class:`tcplinger.model.params.Param`, shared with the simulator.

>>> resolve_sysctl("tcp_fin_timeout").name, resolve_sysctl("net.ipv4.tcp_fin_timeout").name
('net.ipv4.tcp_fin_timeout', 'net.ipv4.tcp_fin_timeout')
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model.params import Param, ParamError


@dataclass(frozen=True)
class Sysctl:
    """A per-namespace sysctl the lab may set, with the range this kernel
    (6.18) accepts where it checks one; measured by writing values in a
    namespace (scripts/kernel_behaviour.py --ranges)."""

    name: str  # net.ipv4.tcp_fin_timeout
    param: Param
    roles: tuple[str, ...]  # namespaces it goes to unless a scenario says otherwise

    @property
    def short(self) -> str:
        return self.name.rsplit(".", 1)[1]


def _sysctl(name: str, kind: str, lo, hi, unit: str, roles=("client", "server")) -> Sysctl:
    short = name.rsplit(".", 1)[1]
    return Sysctl(name, Param(short, None, kind, minimum=lo, maximum=hi, unit=unit), roles)


#: The sysctls --set accepts. Ranges: the kernel's own limits where it has
#: them (tcp_keepalive_probes, tcp_orphan_retries, tcp_retries2: 0..255,
#: u8 handlers; tcp_syn_retries 1..127; tcp_tw_reuse 0..2), otherwise a
#: bound on what a lab run can show (tcp_fin_timeout takes any int here,
#: even negative: tcp_fin_time() then uses 3.5 RTO). tcp_tw_reuse_delay:
#: 1..TCP_PAWS_MSL * MSEC_PER_SEC = 60000 ms (its proc_dointvec_minmax
#: bounds in net/ipv4/sysctl_net_ipv4.c); measured in a namespace on
#: 6.18: 1 and 60000 accepted, 0 and 60001 refused (EINVAL).
SYSCTLS: tuple[Sysctl, ...] = (
    _sysctl("net.ipv4.tcp_fin_timeout", "int", 0, 3600, "s"),
    _sysctl("net.ipv4.tcp_keepalive_time", "int", 1, 32767, "s"),
    _sysctl("net.ipv4.tcp_keepalive_intvl", "int", 1, 32767, "s"),
    _sysctl("net.ipv4.tcp_keepalive_probes", "int", 1, 255, "count"),
    _sysctl("net.ipv4.tcp_max_tw_buckets", "int", 0, 1 << 30, "count"),
    _sysctl("net.ipv4.tcp_orphan_retries", "int", 0, 255, "count"),
    _sysctl("net.ipv4.tcp_retries2", "int", 0, 255, "count"),
    _sysctl("net.ipv4.tcp_syn_retries", "int", 1, 127, "count"),
    _sysctl("net.ipv4.tcp_tw_reuse", "int", 0, 2, ""),
    _sysctl("net.ipv4.tcp_tw_reuse_delay", "int", 1, 60000, "ms"),
    _sysctl("net.ipv4.tcp_timestamps", "int", 0, 2, ""),
    _sysctl("net.ipv4.ip_local_port_range", "range", 1024, 65535, "", roles=("client",)),
    _sysctl("net.netfilter.nf_conntrack_tcp_timeout_established", "int", 1, 1 << 30, "s",
            roles=("router",)),
    _sysctl("net.netfilter.nf_conntrack_tcp_timeout_fin_wait", "int", 1, 1 << 30, "s",
            roles=("router",)),
    _sysctl("net.netfilter.nf_conntrack_tcp_timeout_close_wait", "int", 1, 1 << 30, "s",
            roles=("router",)),
    _sysctl("net.netfilter.nf_conntrack_tcp_timeout_last_ack", "int", 1, 1 << 30, "s",
            roles=("router",)),
    _sysctl("net.netfilter.nf_conntrack_tcp_timeout_time_wait", "int", 1, 1 << 30, "s",
            roles=("router",)),
    _sysctl("net.netfilter.nf_conntrack_tcp_loose", "int", 0, 1, "", roles=("router",)),
)
_BY_NAME = {s.name: s for s in SYSCTLS}
_BY_SHORT = {s.short: s for s in SYSCTLS}


def resolve_sysctl(name: str) -> Sysctl | None:
    """A sysctl by full or short name (``tcp_fin_timeout``)."""
    if "." in name:
        return _BY_NAME.get(name)
    return _BY_SHORT.get(name)


def parse_sets(pairs) -> list[tuple[str, str]]:
    """``["a=1", "b = 2"]`` -> [("a", "1"), ("b", "2")].

    >>> parse_sets(["tcp_fin_timeout=5", "peer = gone"])
    [('tcp_fin_timeout', '5'), ('peer', 'gone')]
    """
    out = []
    for text in pairs:
        key, sep, value = str(text).partition("=")
        if not sep or not key.strip():
            raise ParamError("param.format", "expected NAME=VALUE, got {text}", text=repr(text))
        out.append((key.strip(), value.strip()))
    return out
