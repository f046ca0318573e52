"""Subcommands. Each module has NAME, ``register(subparsers, h)`` (which
sets ``run`` as the parser default; ``h`` is the catalog of the help's
language, every help text a key in it) and turns its arguments into typed options
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
    help: str  # the catalog key of its one-line help

    def load(self):
        return importlib.import_module(f"{__name__}.{self.module}")


COMMANDS = (
    Command("report", "report", "help.report"),
    Command("ls", "ls", "help.ls"),
    Command("stats", "stats", "help.stats"),
    Command("rules", "rules", "help.rules"),
    Command("explain", "explain", "help.explain"),
    Command("check", "check", "help.check"),
    Command("doctor", "doctor", "help.doctor"),
    Command("kill", "kill", "help.kill"),
    Command("tune", "tune", "help.tune"),
    Command("sim", "sim", "sim.help.command"),
    Command("pcap", "pcap", "wire.help.pcap"),
    Command("capture", "capture", "wire.help.capture"),
    Command("lab", "lab", "lab.help.command"),
    Command("exporter", "exporter", "help.exporter"),
    Command("watch", "watch", "help.watch"),
    Command("history", "history", "help.history"),
    Command("top", "top", "help.top"),
)
BY_NAME = {c.name: c for c in COMMANDS}
DEFAULT_COMMAND = "report"
