"""Text rendering of the ``stats`` document."""

from __future__ import annotations

from ..model.states import BY_STATE, REPORTED
from ..model.text import printable
from .table import render as render_table

_ORDER = [BY_STATE[s].name for s in REPORTED]


def _limit(name, value, msg) -> str:
    return "" if value is None else f"{name} {value}"


def render(doc: dict, msg, *, skipped_owners=None) -> list[str]:
    lines: list[str] = []
    for ns in doc["namespaces"]:
        ref = ns["netns"]
        label = f"net:[{ref['inode']}]"
        if ref["name"] or ref["container"]:
            label = f"{ref['name'] or ref['container']} ({label})"
        lines.append(msg("stats.header", netns=printable(label), total=ns["total"], source=ns["source"]))
        lim = ns["limits"]
        rows = []
        for name in _ORDER:
            n = ns["states"].get(name)
            if not n:
                continue
            note = ""
            if name == "TIME_WAIT":
                note = _limit("tcp_max_tw_buckets", lim.get("tcp_max_tw_buckets"), msg)
            elif name == "FIN_WAIT2":
                note = _limit("tcp_fin_timeout", lim.get("tcp_fin_timeout"), msg)
            rows.append([name, n, note])
        rows.append([msg("stats.orphans"), ns["orphans"], ""])
        rows.append([msg("stats.orphans_full"), ns["orphans_full"],
                     _limit("tcp_max_orphans", lim.get("tcp_max_orphans"), msg)])
        rows.append([msg("stats.timewait_type"), ns["timewait_type"],
                     _limit("tcp_max_tw_buckets", lim.get("tcp_max_tw_buckets"), msg)])
        lines += ["  " + l for l in render_table(
            [msg("col.state"), msg("col.count"), msg("col.limit")], rows, align="lrl")]
        rng = lim.get("ip_local_port_range")
        if rng:
            lines.append("  " + msg("stats.ports", lo=rng[0], hi=rng[1], n=lim.get("ephemeral_ports")))
        ss = ns.get("sockstat")
        if ss:
            lines.append("  " + msg("stats.sockstat", **ss))
        tcpext = ns.get("tcpext") or {}
        if tcpext:
            lines.append("  TcpExt: " + ", ".join(f"{k}={v}" for k, v in tcpext.items()))
        if ns.get("conntrack"):
            lines.append("  " + msg("stats.conntrack", **ns["conntrack"]))
        owners = ns.get("owners")
        if owners:
            lines.append("  " + msg("stats.owners"))
            orows = [[o["pid"], o["comm"], o["container"] or "-", o["total"],
                      " ".join(f"{k}={v}" for k, v in sorted(o["states"].items()))]
                     for o in owners[:20]]
            lines += ["    " + l for l in render_table(
                [msg("col.pid"), msg("col.comm"), msg("col.container"), msg("col.count"),
                 msg("col.states")], orows, align="rllrl")]
            if len(owners) > 20:
                lines.append("    " + msg("stats.more_owners", n=len(owners) - 20))
        elif owners is None and skipped_owners:
            lines.append("  " + msg("stats.owners_skipped", n=skipped_owners))
        lines.append("")
    return lines
