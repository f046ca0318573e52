r"""Settings in sysctl configuration files (sysctl.d(5)), parsed without I/O.

The reader (app/observation.py) reads /etc/sysctl.conf and the
``sysctl.d`` directories and says whether each key exists on the running
kernel (a file under /proc/sys); this module only parses.

>>> [(s.key, s.value, s.line) for s in parse("f", "# tuning\nnet.ipv4.tcp_tw_recycle = 1\n"
...                                                   "-net/ipv4/tcp_fin_timeout=30\n; x\n")]
[('net.ipv4.tcp_tw_recycle', '1', 2), ('net.ipv4.tcp_fin_timeout', '30', 3)]
"""

from __future__ import annotations

from dataclasses import dataclass

#: Keys people still set that do nothing on current mainline kernels.
#: Absent: the file no longer exists; legacy: it exists and has no effect
#: (Documentation/networking/ip-sysctl.rst says "legacy option").
REMOVED = {
    "net.ipv4.tcp_tw_recycle": "4.12",  # commit 4396e46187ca
    "net.ipv4.tcp_tw_timeout": None,  # a vendor patch, never in mainline
}
LEGACY = ("net.ipv4.tcp_low_latency", "net.ipv4.tcp_fack")


@dataclass(frozen=True)
class SysctlSetting:
    path: str
    line: int
    key: str  # dotted form: net.ipv4.tcp_fin_timeout
    value: str
    exists: bool | None = None  # None: not checked


def parse(path: str, text: str) -> list[SysctlSetting]:
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key = key.strip().lstrip("-").strip().replace("/", ".")
        out.append(SysctlSetting(path, number, key, value.strip()))
    return out


def proc_path(key: str) -> str:
    """The file under /proc/sys.

    >>> proc_path("net.ipv4.tcp_tw_recycle")
    'net/ipv4/tcp_tw_recycle'
    """
    return key.replace(".", "/")
