"""tests/data/netlink/population.py (shared with the fixture recorder),
loaded once for the privileged netlink tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def load():
    name = "tl_nl_population"
    if name not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "data" / "netlink" / "population.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
