"""What the engine is given: per namespace, plain data and no I/O.

The CLI builds these from a snapshot (collect/), owners (``/proc/*/fd``)
and fd usage; tests build them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence

from ..model.kernel import KernelContext
from ..model.socket import Age, NetnsRef, Owner
from ..model.table import SocketTable


class FdUsageLike(Protocol):
    """``collect.owners.FdUsage`` or :class:`ProcessFacts`."""

    open_fds: int
    soft_limit: int | None


@dataclass(frozen=True)
class ProcessFacts:
    open_fds: int
    soft_limit: int | None  # RLIMIT_NOFILE soft limit; None: unlimited
    hard_limit: int | None = None


@dataclass(frozen=True)
class NamespaceInput:
    netns: NetnsRef
    kernel: KernelContext
    table: SocketTable
    #: inode -> owners; None when owners were not looked up (then rules
    #: about a process say so and lower their confidence).
    owners: Mapping[int, tuple[Owner, ...]] | None = None
    #: pid -> fd usage, for the owners a rule needs (close-wait-leak).
    processes: Mapping[int, FdUsageLike] = field(default_factory=dict)
    #: Ages better than one snapshot can tell (a tracker's), aligned with
    #: the table's rows; None: from timers and tcp_info (track.age).
    ages: Sequence[Age] | None = None
    #: The same namespace's kernel context some seconds earlier, for
    #: counters that are *rising* (TCPTimeWaitOverflow, TCPAbortOnMemory).
    previous: KernelContext | None = None
    interval: float | None = None  # seconds between previous and kernel
