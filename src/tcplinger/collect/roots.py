"""Where the kernel is: ``/proc`` and ``/run/netns`` on a live host, a
recorded tree in tests. Every reader of collect/ takes its root as a
parameter (DESIGN.md); these are the one set of defaults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
RUN_NETNS = Path("/run/netns")  # where `ip netns add` bind-mounts namespaces (ip-netns(8))
RUNTIME_ROOT = Path("/")  # where the container runtimes keep their state (collect/runtimes.py)


@dataclass(frozen=True)
class Roots:
    """The procfs root, the named-namespace directory and the container
    runtimes' state, together."""

    proc: Path = PROC
    run_netns: Path = RUN_NETNS
    runtime: Path = RUNTIME_ROOT
