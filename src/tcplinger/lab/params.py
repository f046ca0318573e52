"""Scenario parameters and namespace sysctls: declared as data, checked
against their ranges, set with ``--set NAME=VALUE``.

>>> p = Param("fin_timeout", 5, "int", minimum=0, maximum=3600)
>>> p.parse("12"), p.describe_range()
(12, '0..3600')
>>> p.parse("4000")
Traceback (most recent call last):
...
tcplinger.lab.params.ParamError: fin_timeout=4000: out of range 0..3600
>>> resolve_sysctl("tcp_fin_timeout").name, resolve_sysctl("net.ipv4.tcp_fin_timeout").name
('net.ipv4.tcp_fin_timeout', 'net.ipv4.tcp_fin_timeout')
"""

from __future__ import annotations

from dataclasses import dataclass


class ParamError(ValueError):
    """A parameter that does not exist, or a value it does not take."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    kind: str  # "int" | "float" | "bool" | "choice" | "range" (two ints, "LOW HIGH")
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""  # "s", "ms", "count", ""
    #: a namespace sysctl this parameter sets (full dotted name), and where
    sysctl: str | None = None
    roles: tuple[str, ...] = ()

    def describe_range(self) -> str:
        if self.kind == "choice":
            return "|".join(self.choices)
        if self.kind == "bool":
            return "0|1"
        lo = "" if self.minimum is None else f"{self.minimum:g}"
        hi = "" if self.maximum is None else f"{self.maximum:g}"
        return f"{lo}..{hi}" if lo or hi else ""

    def parse(self, text) -> object:
        text = str(text).strip()
        if self.kind == "bool":
            low = text.lower()
            if low in _TRUE:
                return 1
            if low in _FALSE:
                return 0
            raise ParamError(f"{self.name}={text}: expected 0 or 1")
        if self.kind == "choice":
            if text not in self.choices:
                raise ParamError(f"{self.name}={text}: expected one of {', '.join(self.choices)}")
            return text
        if self.kind == "range":
            parts = text.replace(",", " ").replace("-", " ").split()
            try:
                lo, hi = (int(x) for x in parts)
            except ValueError:
                raise ParamError(f"{self.name}={text}: expected two port numbers, LOW HIGH") \
                    from None
            for v in (lo, hi):
                self._check(v, text)
            if lo > hi:
                raise ParamError(f"{self.name}={text}: LOW is above HIGH")
            return f"{lo} {hi}"
        try:
            value = int(text) if self.kind == "int" else float(text)
        except ValueError:
            raise ParamError(f"{self.name}={text}: not a number") from None
        self._check(value, text)
        return value

    def _check(self, value, text) -> None:
        if (self.minimum is not None and value < self.minimum) or \
                (self.maximum is not None and value > self.maximum):
            raise ParamError(f"{self.name}={text}: out of range {self.describe_range()}")

    def to_json(self) -> dict:
        out = {"name": self.name, "default": self.default, "kind": self.kind,
               "min": self.minimum, "max": self.maximum,
               "choices": list(self.choices) or None, "unit": self.unit or None}
        if self.sysctl:
            out["sysctl"] = self.sysctl
            out["namespaces"] = list(self.roles)
        return out


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


def _s(name: str, kind: str, lo, hi, unit: str, roles=("client", "server"), default=None):
    short = name.rsplit(".", 1)[1]
    return Sysctl(name, Param(short, default, kind, lo, hi, unit=unit), roles)


#: The sysctls --set accepts. Ranges: the kernel's own limits where it has
#: them (tcp_keepalive_probes, tcp_orphan_retries, tcp_retries2: 0..255,
#: u8 handlers; tcp_syn_retries 1..127; tcp_tw_reuse 0..2), otherwise a
#: bound on what a lab run can show (tcp_fin_timeout takes any int here,
#: even negative: tcp_fin_time() then uses 3.5 RTO).
SYSCTLS: tuple[Sysctl, ...] = (
    _s("net.ipv4.tcp_fin_timeout", "int", 0, 3600, "s"),
    _s("net.ipv4.tcp_keepalive_time", "int", 1, 32767, "s"),
    _s("net.ipv4.tcp_keepalive_intvl", "int", 1, 32767, "s"),
    _s("net.ipv4.tcp_keepalive_probes", "int", 1, 255, "count"),
    _s("net.ipv4.tcp_max_tw_buckets", "int", 0, 1 << 30, "count"),
    _s("net.ipv4.tcp_orphan_retries", "int", 0, 255, "count"),
    _s("net.ipv4.tcp_retries2", "int", 0, 255, "count"),
    _s("net.ipv4.tcp_syn_retries", "int", 1, 127, "count"),
    _s("net.ipv4.tcp_tw_reuse", "int", 0, 2, ""),
    _s("net.ipv4.tcp_tw_reuse_delay", "int", 1, 599999, "ms"),
    _s("net.ipv4.tcp_timestamps", "int", 0, 2, ""),
    _s("net.ipv4.ip_local_port_range", "range", 1024, 65535, "", roles=("client",)),
    _s("net.netfilter.nf_conntrack_tcp_timeout_established", "int", 1, 1 << 30, "s",
       roles=("router",)),
    _s("net.netfilter.nf_conntrack_tcp_timeout_fin_wait", "int", 1, 1 << 30, "s",
       roles=("router",)),
    _s("net.netfilter.nf_conntrack_tcp_timeout_close_wait", "int", 1, 1 << 30, "s",
       roles=("router",)),
    _s("net.netfilter.nf_conntrack_tcp_timeout_last_ack", "int", 1, 1 << 30, "s",
       roles=("router",)),
    _s("net.netfilter.nf_conntrack_tcp_timeout_time_wait", "int", 1, 1 << 30, "s",
       roles=("router",)),
    _s("net.netfilter.nf_conntrack_tcp_loose", "int", 0, 1, "", roles=("router",)),
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
            raise ParamError(f"expected NAME=VALUE, got {text!r}")
        out.append((key.strip(), value.strip()))
    return out
