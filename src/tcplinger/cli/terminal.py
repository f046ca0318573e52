"""The terminal a command writes to, injectable so tests run the CLI in
process (as httpie's ``Environment``)."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Terminal:
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)  # confirmations
    env: dict = field(default_factory=lambda: dict(os.environ))
    is_tty: bool | None = None
    width: int | None = None

    def __post_init__(self):
        if self.is_tty is None:
            self.is_tty = hasattr(self.stdout, "isatty") and self.stdout.isatty()
        if self.width is None:
            self.width = shutil.get_terminal_size((100, 24)).columns if self.is_tty else 200

    def out(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def err(self, text: str) -> None:
        self.stderr.write(text + "\n")
