"""Exit codes and the one error type the CLI turns into a single line.

The codes are part of the interface (README, "Exit codes").
"""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    OK = 0
    ERROR = 1  # an unexpected failure (a bug: please report it)
    USAGE = 2  # bad arguments: unknown state, bad port, unknown option
    NOT_FOUND = 3  # a namespace, process or rule that does not exist
    PERMISSION = 4  # not allowed (not root, no CAP_NET_ADMIN/CAP_SYS_ADMIN)
    UNSUPPORTED = 5  # the kernel lacks a needed feature
    REFUSED = 6  # kill --yes: every selected socket was refused, nothing was done
    BAD_INPUT = 7  # a file that is not a readable capture (garbage, corrupt, link type)
    INTERRUPTED = 130


class CliError(Exception):
    """A message for the user and the exit code that goes with it."""

    def __init__(self, message: str, code: Exit = Exit.ERROR):
        super().__init__(message)
        self.message = message
        self.code = code
