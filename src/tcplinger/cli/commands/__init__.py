"""Subcommands. Each module has NAME, ``register(subparsers)`` (which sets
``run`` as the parser default) and turns its arguments into typed options
before calling the library.

Modules are imported only for the command being run: importing all of them
(numpy, the diagnosis, the simulator, prometheus_client...) cost ~0.5 s of
start-up, more than a whole 1M-socket dump's decoding.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    help: str

    def load(self):
        return importlib.import_module(f"{__name__}.{self.module}")


COMMANDS = (
    Command("report", "report", "explain lingering connections: cause, evidence, lifetime, fix "
                                "(the default command)"),
    Command("ls", "ls", "list sockets (like ss -tan) with age, owner and namespace"),
    Command("stats", "stats", "counts by state per namespace and owner, next to kernel limits"),
    Command("rules", "rules", "list the diagnosis rules and their thresholds"),
    Command("explain", "explain", "explain a rule: the TCP behaviour behind it, measured facts, "
                                  "references"),
    Command("check", "check", "monitoring plugin: one line, exit 0 OK / 1 WARNING / 2 CRITICAL "
                              "/ 3 UNKNOWN"),
    Command("doctor", "doctor", "what this host and user allow tcplinger to do"),
    Command("kill", "kill", "end stuck sockets (SOCK_DESTROY); a dry run unless --yes"),
    Command("tune", "tune", "a reviewed sysctl plan from the findings; --write, --apply, --revert"),
    Command("sim", "sim", "simulate teardown on other TCP stacks and behind middleboxes"),
    Command("pcap", "pcap", "rebuild TCP connections from capture files: Zeek conn_state and "
                            "history, each endpoint's states, findings from packets"),
    Command("capture", "capture", "capture packets for N seconds in a namespace, then analyse "
                                  "them as `pcap` does"),
    Command("lab", "lab", "reproduce teardown pathologies on this kernel in throwaway namespaces"),
    Command("exporter", "exporter", "Prometheus exporter (HTTP, or a file for node_exporter)"),
    Command("watch", "watch", "the daemon: remember ages in state, transitions and trends "
                              "(SQLite)"),
    Command("history", "history", "trends from the watch database: sparklines, growth, "
                                  "time to limit"),
    Command("top", "top", "live full-screen view: states, owners, oldest sockets, growth"),
)
BY_NAME = {c.name: c for c in COMMANDS}
DEFAULT_COMMAND = "report"
