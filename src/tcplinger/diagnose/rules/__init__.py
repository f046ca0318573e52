"""One module per rule; ``MODULES`` maps a rule id (metadata.RULES) to it.

A module has ``evaluate(ctx, thresholds, world, limit)`` (per namespace)
and/or ``evaluate_host(world, thresholds, limit)`` (once per diagnosis),
each returning a list of findings.
"""

from . import (close_wait_leak, conntrack_mismatch, ephemeral_ports, fin_wait1_stuck,
               half_closed_fin_wait2, keepalive_idle, keepalive_timeout_fin_wait2, last_ack_stuck, orphan_fin_wait2,
               orphan_limit, sysctl_folklore, time_wait_pressure)

MODULES = {m.META.id: m for m in (
    close_wait_leak, half_closed_fin_wait2, keepalive_timeout_fin_wait2, orphan_fin_wait2, time_wait_pressure,
    ephemeral_ports, orphan_limit, fin_wait1_stuck, last_ack_stuck, keepalive_idle,
    conntrack_mismatch, sysctl_folklore)}
