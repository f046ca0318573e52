"""Subcommands. Each module has NAME, ``register(subparsers)`` (which sets
``run`` as the parser default) and turns its arguments into typed options
before calling the library."""

from . import check, doctor, explain, exporter, kill, ls, report, rules, sim, stats, tune

COMMANDS = (report, ls, stats, rules, explain, check, doctor, sim, kill, tune, exporter)
DEFAULT_COMMAND = "report"
