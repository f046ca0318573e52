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
        return msg(self.key, **self.fields)


class FixKind(str, enum.Enum):
    APP = "app"  # change the application's code or configuration
    SYSCTL = "sysctl"  # a kernel setting, with the command and how to persist it
    SOCKET = "socket"  # a per-socket option (setsockopt)
    OPS = "ops"  # an operational step (restart, firewall, peer)


@dataclass(frozen=True)
class Fix:
    """One remedy. ``command`` and ``persist`` are shell lines, the same in
    every language (they are not translated, so they are not in catalogs)."""

    kind: FixKind
    text: Text
    command: str | None = None
    persist: str | None = None

    def to_json(self, msg) -> dict:
        return {"kind": self.kind.value, "text": self.text.render(msg), "key": self.text.key,
                "command": self.command, "persist": self.persist}


@dataclass(frozen=True)
class OwnerRef:
    pid: int
    comm: str

    def to_json(self) -> dict:
        return {"pid": self.pid, "comm": self.comm}


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
