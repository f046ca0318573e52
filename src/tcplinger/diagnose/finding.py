"""Findings: what a rule concluded about one namespace, as plain data.

A finding holds no prose: every sentence is a :class:`Text`, a message key
of the ``rule.*`` catalogs plus the values it is filled with, so the same
finding renders in English or Chinese and its JSON carries the numbers
(``evidence``) rather than sentences to parse.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping

from ..model.socket import Age, NetnsRef, Owner
from ..model.table import SocketTable
from .sysctl_bounds import BOUNDS, per_netns, sysctl_name


class Severity(enum.IntEnum):
    """Ordered, so ``max()`` of findings is the worst; names are the JSON
    values and the monitoring-plugin words (``check``)."""

    INFO = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()


class Confidence(str, enum.Enum):
    """How sure the rule is that its cause is the cause."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True)
class Text:
    """A catalog key and its fields: one sentence in any language.

    >>> Text("rule.x", {"n": 3}).fields["n"]
    3
    """

    key: str
    fields: Mapping[str, object] = field(default_factory=dict)

    def render(self, msg) -> str:
        """The sentence in ``msg``'s language. A field may itself be a Text
        (a process named in the catalog's words) or a tuple of them (a
        list, joined by the catalog's separator)."""
        return msg(self.key, **{k: _rendered(v, msg) for k, v in self.fields.items()})


def _rendered(value, msg):
    if isinstance(value, Text):
        return value.render(msg)
    if isinstance(value, tuple) and value and all(isinstance(v, Text) for v in value):
        return msg("rule.common.list_sep").join(v.render(msg) for v in value)
    return value


class FixKind(str, enum.Enum):
    APP = "app"  # change the application's code or configuration
    SYSCTL = "sysctl"  # a kernel setting, with the command and how to persist it
    SOCKET = "socket"  # a per-socket option (setsockopt)
    OPS = "ops"  # an operational step (restart, firewall, peer)


def format_value(value) -> str:
    """How a value is written to /proc/sys and to sysctl.d files.

    >>> format_value(30), format_value((10000, 65535))
    ('30', '10000 65535')
    """
    if isinstance(value, (tuple, list)):
        return " ".join(str(v) for v in value)
    return str(value)


def _json_value(value):
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class SysctlChange:
    """A sysctl value a fix proposes: what ``report`` prints as commands and
    ``tune`` plans (act/tune_plan.py), the same value for both.

    ``key`` is the sysctl's last component (model.kernel.SYSCTLS). ``netns``
    is where it applies when that is not the finding's namespace (the router
    whose conntrack forgets a flow); ``requires`` are other settings without
    which the value is not safe (tcp_tw_reuse needs tcp_timestamps = 1).
    The value keeps diagnose.sysctl_bounds (tests/unit/test_rule_sysctl_fixes.py).

    >>> c = SysctlChange("ip_local_port_range", (10000, 65535), current=(32768, 60999))
    >>> c.name, c.per_netns
    ('net.ipv4.ip_local_port_range', True)
    >>> print(c.command)
    sysctl -w net.ipv4.ip_local_port_range="10000 65535"
    >>> print(SysctlChange("tcp_fin_timeout", 30).persist.replace(" && ", "\\n"))
    echo 'net.ipv4.tcp_fin_timeout = 30' > /etc/sysctl.d/90-tcplinger-tcp_fin_timeout.conf
    sysctl -p /etc/sysctl.d/90-tcplinger-tcp_fin_timeout.conf
    """

    key: str
    value: int | tuple[int, ...]
    current: int | tuple[int, ...] | None = None
    netns: NetnsRef | None = None
    requires: tuple[tuple[str, int], ...] = ()

    @property
    def name(self) -> str:
        return sysctl_name(self.key)

    @property
    def per_netns(self) -> bool:
        return per_netns(self.key)

    @property
    def command(self) -> str:
        """The ``sysctl -w`` line (quoted when the value has a space)."""
        text = format_value(self.value)
        return f'sysctl -w {self.name}="{text}"' if " " in text else \
            f"sysctl -w {self.name}={text}"

    @property
    def persist(self) -> str:
        """How to keep it across reboots: one sysctl.d file per setting, so
        that two fixes never overwrite each other."""
        path = f"/etc/sysctl.d/90-tcplinger-{self.key}.conf"
        return f"echo '{self.name} = {format_value(self.value)}' > {path} && sysctl -p {path}"

    def to_json(self) -> dict:
        bound = BOUNDS.get(self.key)
        return {"key": self.key, "name": self.name, "value": _json_value(self.value),
                "current": _json_value(self.current), "per_netns": self.per_netns,
                "netns": self.netns.to_json() if self.netns is not None else None,
                "requires": dict(self.requires),
                "bound": bound.to_json() if bound is not None else None}


@dataclass(frozen=True)
class Fix:
    """One remedy. A sysctl fix that proposes a value carries it as
    ``sysctl``; ``command`` and ``persist`` (shell lines, the same in every
    language, so not in catalogs) are rendered from it. SYSCTL fixes
    without ``sysctl`` say which settings do *not* help."""

    kind: FixKind
    text: Text
    sysctl: SysctlChange | None = None

    def __post_init__(self):
        if self.sysctl is not None and self.kind is not FixKind.SYSCTL:
            raise ValueError(f"a {self.kind.value} fix cannot carry a sysctl change")

    @property
    def command(self) -> str | None:
        return self.sysctl.command if self.sysctl is not None else None

    @property
    def persist(self) -> str | None:
        return self.sysctl.persist if self.sysctl is not None else None

    def to_json(self, msg) -> dict:
        return {"kind": self.kind.value, "text": self.text.render(msg), "key": self.text.key,
                "command": self.command, "persist": self.persist,
                "sysctl": self.sysctl.to_json() if self.sysctl is not None else None}


@dataclass(frozen=True)
class OwnerRef:
    """A process a finding names: it holds the sockets (``basis`` "owner"),
    or, inferred for sockets no process holds (diagnose.culprits), it owns
    the listener they were accepted on ("listener"), holds sockets to the
    same remote address and port ("destination"), or was seen connecting
    to it by the tracepoint during --interval ("connects"); ``where`` is what the
    basis matched (":8080", "127.0.0.1:8084"). ``command`` is the command
    line, shortened (culprits.short_command)."""

    pid: int
    comm: str
    command: str = ""
    basis: str = "owner"
    where: str = ""
    #: basis "connects": connections it opened per second to ``where``
    per_s: float | None = None
    #: basis "connects": the processes with this command line it stands for
    #: (one-shot clients, each its own process: ``pid`` is the busiest)
    processes: int = 1

    @property
    def inferred(self) -> bool:
        return self.basis != "owner"

    def to_json(self) -> dict:
        out = {"pid": self.pid, "comm": self.comm, "command": self.command or self.comm,
               "inferred": self.inferred, "basis": self.basis, "where": self.where or None}
        if self.per_s is not None:
            out["connects_per_s"] = round(self.per_s, 3)
        if self.processes > 1:
            out["processes"] = self.processes
        return out


@dataclass(frozen=True)
class SocketSample:
    """The rows a finding shows (capped), with their ages and owners."""

    table: SocketTable
    ages: tuple[Age, ...]
    owners: Mapping[int, tuple[Owner, ...]]
    total: int  # how many sockets the finding covers (>= len(table))


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    netns: NetnsRef
    count: int
    title: Text
    evidence: dict  # JSON-ready numbers and names (docs/json.md, per rule)
    facts: tuple[Text, ...]  # the evidence in words
    cause: tuple[Text, ...]
    lifetime: tuple[Text, ...]
    fixes: tuple[Fix, ...]
    confidence: Confidence
    confidence_reason: Text
    owners: tuple[OwnerRef, ...] = ()
    sockets: SocketSample | None = None

    @property
    def sort_key(self):
        return (-int(self.severity), -self.count, self.rule)
