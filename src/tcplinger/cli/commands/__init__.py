"""Subcommands. Each module has NAME, ``register(subparsers)`` (which sets
``run`` as the parser default) and turns its arguments into typed options
before calling the library."""

from . import doctor, ls, sim, stats

COMMANDS = (ls, stats, doctor, sim)
DEFAULT_COMMAND = "stats"  # until `report` (the diagnosis) exists
