"""Privileged tests: root, `ip netns`, and the harness next to this file.

Modules here import ``harness`` and ``ssparse`` by name; with pytest's
``--import-mode=importlib`` nothing puts this directory on sys.path, so
this conftest does (it is loaded before any module of the directory).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import harness  # noqa: E402  (needs the path above)


@pytest.fixture
def make_netns():
    """Factory for namespaces that all end (processes, then the namespace)
    when the test ends, passed or failed: ``ns = make_netns({sysctl: value})``."""
    with contextlib.ExitStack() as stack:
        yield lambda sysctls=None: stack.enter_context(harness.netns(sysctls))
