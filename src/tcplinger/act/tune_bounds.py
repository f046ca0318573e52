"""The limits ``tcplinger tune`` keeps: now :mod:`tcplinger.diagnose.sysctl_bounds`.

The bounds moved to the diagnosis so that ``report``'s fixes and ``tune``'s
plan propose the same values within the same floors (the diagnosis may not
import act/). This module only re-exports them for callers that still
import it from here (cli/commands/tune.py); new code imports
``diagnose.sysctl_bounds`` and ``diagnose.sysctl_proposals`` directly.

>>> BOUNDS["tcp_fin_timeout"].low, NEVER
(30, ('tcp_tw_recycle',))
"""

from __future__ import annotations

from ..diagnose.sysctl_bounds import (BOUNDS, EXTRA_PATHS, NEVER, ORPHAN_BYTES, PAGE_BYTES,
                                      TW_SOCK_BYTES, Bound, clamp, problems, sysctl_name,
                                      sysctl_path)

__all__ = ["BOUNDS", "EXTRA_PATHS", "NEVER", "ORPHAN_BYTES", "PAGE_BYTES", "TW_SOCK_BYTES",
           "Bound", "clamp", "problems", "sysctl_name", "sysctl_path"]
