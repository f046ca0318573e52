"""What to do about each finding from packets: the same kinds of fix as
the socket findings (``report.fix.*``: application, socket option,
sysctl, operations), each a catalog key and, where a command helps, the
command with the connection's own addresses and ports filled in.

The packets cannot say which process holds a socket or what the hosts'
sysctls are, so a fix names where to look next (``tcplinger report`` on
the host of the end that lingers), the setting that bounds the state,
and the lab scenario that reproduces it on this kernel (docs/lab.md).

>>> ends("10.0.0.1:40000 → [::1]:80")
{'orig': ('10.0.0.1', 40000), 'resp': ('::1', 80)}
>>> [f.command for f in FIXES["zero-window-at-close"]][1]
'tcplinger report --port {side_port}'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WireFix:
    kind: str  # report.fix.<kind>: app, socket, sysctl, ops
    key: str  # the text's catalog key; its fields: the finding's, ends named
    #: a command; ``{ROLE}``, ``{ROLE_host}``, ``{ROLE_port}`` for each role
    #: field of the finding (closer, other, sender, side, ...)
    command: str = ""


_REPORT_CW = "tcplinger report --state close-wait --port {other_port}"
_FOREIGN = WireFix("ops", "wire.fix.foreign_find",
                   "tcpdump -ni any -v 'tcp and host {sender_host} and port {sender_port}'")

FIXES: dict[str, tuple[WireFix, ...]] = {
    "half-close-unanswered": (
        WireFix("ops", "wire.fix.half_close_find", _REPORT_CW),
        WireFix("app", "rule.close-wait-leak.fix.close_on_eof"),
        WireFix("app", "rule.half-closed-fin-wait-2.fix.read_then_close"),
        WireFix("ops", "wire.fix.reproduce", "tcplinger lab run half-close-fin-wait-2")),
    "fin-unacked": (
        WireFix("ops", "rule.common.unacked.fix.path", "nft list ruleset"),
        WireFix("socket", "rule.common.unacked.fix.user_timeout"),
        WireFix("sysctl", "wire.fix.orphan_retries", "sysctl net.ipv4.tcp_orphan_retries"),
        WireFix("ops", "wire.fix.reproduce", "tcplinger lab run fin-dropped")),
    "keepalive-one-sided": (
        WireFix("ops", "wire.fix.firewall_keepalive", "tcplinger lab run firewall-keepalive"),
        WireFix("app", "rule.half-closed-fin-wait-2.fix.read_then_close")),
    "keepalive-foreign": (_FOREIGN,),
    "rst-after-fin": (
        WireFix("app", "wire.fix.linger_abort", "tcplinger lab run linger-abort"),),
    "reset-foreign": (
        _FOREIGN,
        WireFix("ops", "wire.fix.idle_timeout", "tcplinger explain keepalive-vs-idle-timeout")),
    "zero-window-at-close": (
        WireFix("app", "rule.common.unacked.fix.reader"),
        WireFix("ops", "wire.fix.zero_window_find", "tcplinger report --port {side_port}"),
        WireFix("socket", "rule.common.unacked.fix.user_timeout")),
    "open-at-end": (
        WireFix("socket", "wire.fix.open_idle", "tcplinger explain keepalive-vs-idle-timeout"),),
}

#: The fields of a finding that name an end ("orig" or "resp").
ROLES = ("closer", "other", "sender", "side", "answerer", "ignorer", "answered_from",
         "ignored_from")


def ends(conn: str) -> dict[str, tuple[str, int]]:
    """``"a:p → b:p"`` (WireFinding.conn) as ``{"orig": (a, p), "resp": (b, p)}``."""
    out = {}
    for side, ep in zip(("orig", "resp"), conn.split(" → ", 1)):
        host, _, port = ep.rpartition(":")
        out[side] = (host.strip("[]"), int(port))
    return out


def fields(finding) -> dict:
    """The finding's fields with every role as its end (``a:p``), and
    ``ROLE_host``/``ROLE_port`` for the commands."""
    where = ends(finding.conn)
    out = dict(finding.field_dict())
    for role in ROLES:
        side = out.get(role)
        if side in where:
            host, port = where[side]
            out[role] = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            out[role + "_host"], out[role + "_port"] = host, port
    return out
