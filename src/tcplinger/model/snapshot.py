"""A snapshot: every socket of the namespaces looked at, with their
kernel context, taken at one moment."""

from __future__ import annotations

from dataclasses import dataclass, field

from .kernel import KernelContext
from .socket import NetnsRef
from .table import SocketTable


@dataclass
class NetnsSnapshot:
    netns: NetnsRef
    table: SocketTable
    kernel: KernelContext
    source: str  # "netlink" or "procfs"
    taken_at: float  # time.time()
    monotonic: float  # time.monotonic(), for ages across snapshots
    pids: tuple[int, ...] = ()  # processes known to live in this namespace
    warnings: tuple[str, ...] = ()
    #: the calling thread's own namespace, as discovery found it
    #: (collect/netns.py): the one answer to "is this my namespace"
    current: bool = False


@dataclass
class Snapshot:
    namespaces: list[NetnsSnapshot] = field(default_factory=list)
    #: namespaces that could not be read, with the reason (one line each)
    skipped: list[tuple[NetnsRef, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(len(ns.table) for ns in self.namespaces)
