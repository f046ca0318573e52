"""Privileged tests: root, `ip netns`, and the harness next to this file.

Modules here import ``harness``, ``ssparse`` and ``ssbracket`` by name; with
pytest's ``--import-mode=importlib`` nothing puts this directory on
sys.path, so this conftest does (it is loaded before any module of the
directory). Namespaces come from ``harness.netns()`` (a context manager)
or, shared by the tests of a module, ``harness.Fresh``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
