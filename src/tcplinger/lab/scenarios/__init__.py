"""The lab's scenarios, one module each; :data:`ALL` in the order shown."""

from __future__ import annotations

from . import (buggy_client, close_wait_leak, conntrack_expiry, fin_dropped, firewall_keepalive, half_close, linger_abort,
               orphan_fin_wait2,               port_exhaustion, time_wait_overflow)

ALL = tuple(m.SCENARIO for m in (orphan_fin_wait2, half_close, close_wait_leak, buggy_client,
                                  linger_abort, time_wait_overflow, port_exhaustion,
                                  fin_dropped, conntrack_expiry, firewall_keepalive))
BY_NAME = {s.name: s for s in ALL}


def get(name: str):
    """A scenario by name; KeyError if there is none."""
    return BY_NAME[name]
