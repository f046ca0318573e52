#!/usr/bin/env python3
"""Regenerate the lab's measured table in docs/kernel-behaviour.md.

Runs every scenario of `tcplinger lab` over the parameter values below
with ``tcplinger lab run ... --json`` (as root, several runs at a time;
the longest take two minutes, the whole ~3 minutes), then rewrites the
part of docs/kernel-behaviour.md between ``<!-- lab:begin -->`` and
``<!-- lab:end -->`` (appending the markers if the file has none; the
rest of the file is left as it is).

    sudo python scripts/kernel_behaviour.py            # measure and write
    sudo python scripts/kernel_behaviour.py --print    # measure, print only
    sudo python scripts/kernel_behaviour.py --only orphan-fin-wait-2 --print
    sudo python scripts/kernel_behaviour.py --ranges --print   # sysctl ranges only

Where a seed's claim does not hold on the kernel it runs on, the table
says so next to the claim, from the numbers just measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "kernel-behaviour.md"
BEGIN, END = "<!-- lab:begin -->", "<!-- lab:end -->"
sys.path.insert(0, str(ROOT / "src"))

from tcplinger.lab.slack import granule_s, kernel_hz  # noqa: E402


# ---- reading a run ---------------------------------------------------------------------

def socks(doc, side):
    return [s for s in doc["sockets"] if s["side"] == side]


def time_in(doc, side, state, n=0, **flags):
    ss = socks(doc, side)
    if len(ss) <= n:
        return None
    total, seen = 0.0, False
    for s in ss[n]["states"]:
        if s["state"] != state or any(s.get(k, False) != v for k, v in flags.items()):
            continue
        seen = True
        end = s["end_s"] if s["end_s"] is not None else doc["duration_s"]
        total += end - s["start_s"]
    return total if seen else None


def held(doc, side, state, n=0):
    ss = socks(doc, side)
    return bool(ss) and ss[n]["states"][-1]["state"] == state and \
        ss[n]["states"][-1]["end_s"] is None


def ever(doc, side, state):
    return any(x["state"] == state for s in socks(doc, side) for x in s["states"])


def sent(doc, src, flags, tag=None, dropped=None):
    return [p for p in doc["packets"] if p["src"] == src and all(c in p["flags"] for c in flags)
            and (tag is None or p.get("tag") == tag)
            and (dropped is None or ("dropped_by" in p) == dropped)]


def s(x, held_text="still held"):
    if x is None:
        return "-"
    if x == "held":
        return held_text
    return f"{x:.3f} s" if x < 100 else f"{x:.1f} s"


def lifetime(doc, side, state):
    """Seconds in state, or "held" when still in it at the end."""
    return "held" if held(doc, side, state) else time_in(doc, side, state)


# ---- the cases -----------------------------------------------------------------------------

@dataclass
class Case:
    scenario: str
    sets: tuple[str, ...]
    extra: tuple[str, ...] = ()
    doc: dict | None = None
    error: str | None = None

    @property
    def key(self):
        return (self.scenario,) + self.sets + self.extra


FIN_TIMEOUTS = (0, 1, 5, 30, 60, 61, 65, 90, 120)
LINGER2 = (-1, 2, 130)
ORPHAN_RETRIES = (1, 2, 3, 4)
RETRIES2 = (1, 2, 3)


def cases(only: str | None = None) -> list[Case]:
    out = []
    for t in FIN_TIMEOUTS:
        out.append(Case("orphan-fin-wait-2", (f"tcp_fin_timeout={t}",)))
    for v in LINGER2:
        out.append(Case("orphan-fin-wait-2", ("tcp_fin_timeout=60", f"linger2={v}")))
    out.append(Case("half-close-fin-wait-2", ("hold=10", "tcp_fin_timeout=5")))
    for ka, peer in ((0, "gone"), (1, "alive"), (1, "gone"), (1, "silent")):
        out.append(Case("close-wait-leak", (f"keepalive={ka}", f"peer={peer}", "keepidle=5",
                                            "keepintvl=2", "keepcnt=3")))
    out.append(Case("buggy-client-keepalive", ("client=buggy", "tcp_fin_timeout=60")))
    out.append(Case("buggy-client-keepalive", ("client=proper",), ("--duration", "70")))
    out.append(Case("linger-abort", ("linger=1",)))
    out.append(Case("linger-abort", ("linger=0",), ("--duration", "70")))
    out.append(Case("time-wait-overflow", ("connections=12", "tcp_max_tw_buckets=4")))
    out.append(Case("time-wait-overflow", ("connections=12", "tcp_max_tw_buckets=0")))
    for reuse in (0, 1, 2):
        out.append(Case("port-exhaustion", (f"tcp_tw_reuse={reuse}",)))
    for r in ORPHAN_RETRIES:
        out.append(Case("fin-dropped", ("state=fin_wait_1", "owner=orphan",
                                        f"tcp_orphan_retries={r}")))
    for r in RETRIES2:
        out.append(Case("fin-dropped", ("state=fin_wait_1", "owner=owned", f"tcp_retries2={r}")))
    out.append(Case("fin-dropped", ("state=last_ack", "owner=orphan", "tcp_orphan_retries=2")))
    out.append(Case("fin-dropped", ("state=last_ack", "owner=owned", "tcp_retries2=2")))
    out.append(Case("conntrack-expiry", ("client=half",)))
    out.append(Case("conntrack-expiry", ("client=orphan",)))
    for ka in (1, 0):
        for fin in (5, 15):
            out.append(Case("firewall-keepalive", (f"dyn_keepalive={ka}", f"tcp_fin_timeout={fin}")))
    out.append(Case("firewall-keepalive", ("dyn_keepalive=1", "tcp_fin_timeout=30",
                                           "dyn_ack_lifetime=60", "dyn_keepalive_interval=20",
                                           "dyn_keepalive_period=5")))
    return [c for c in out if only is None or c.scenario == only]


def run_case(case: Case) -> Case:
    argv = [sys.executable, "-m", "tcplinger", "lab", "run", case.scenario, "--json",
            *case.extra]
    for x in case.sets:
        argv += ["--set", x]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "LANG": "C"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        case.error = done.stderr.strip().splitlines()[-1] if done.stderr else "failed"
    else:
        case.doc = json.loads(done.stdout)
    return case


# ---- the tables ----------------------------------------------------------------------------

def param(case: Case, name: str):
    return case.doc["params"].get(name) if case.doc else None


def failed_checks(case: Case) -> str:
    if case.error:
        return f"run failed: {case.error}"
    bad = [c["id"] for c in case.doc["checks"] if not c["ok"]]
    return "all expectations held" if not bad else "did not hold: " + ", ".join(bad)


def orphan_table(cs: list[Case]) -> list[str]:
    rows = ["| tcp_fin_timeout | TCP_LINGER2 | FIN_WAIT2 lasted | as a full socket | "
            "as a minisock | then TIME_WAIT? | reset sent? | expectations |",
            "|---|---|---|---|---|---|---|---|"]
    for c in cs:
        d = c.doc
        if d is None:
            rows.append(f"| {c.sets} | | | | | | | {failed_checks(c)} |")
            continue
        rows.append("| {} | {} | {} | {} | {} | {} | {} | {} |".format(
            param(c, "tcp_fin_timeout"), param(c, "linger2") or "unset",
            s(time_in(d, "client", "FIN_WAIT2")),
            s(time_in(d, "client", "FIN_WAIT2", minisock=False)),
            s(time_in(d, "client", "FIN_WAIT2", minisock=True)),
            "yes" if ever(d, "client", "TIME_WAIT") else "no",
            "yes" if sent(d, "client", "R") else "no", failed_checks(c)))
    return rows


def slack_table(cs: list[Case], hz: int | None) -> list[str]:
    rows = ["| timer | configured | measured | late by | wheel granule at HZ={} |".format(
        hz or "?"), "|---|---|---|---|---|"]
    for c in cs:
        d = c.doc
        if d is None or c.scenario != "orphan-fin-wait-2" or param(c, "linger2"):
            continue
        t = param(c, "tcp_fin_timeout")
        if t < 1 or t > 60:
            continue
        got = time_in(d, "client", "FIN_WAIT2", minisock=True)
        if got is None:
            continue
        rows.append(f"| FIN_WAIT2 minisock | {t} s | {got:.3f} s | {got - t:+.3f} s | "
                    f"{granule_s(t, hz or 250):.3f} s |")
    for c in cs:
        d = c.doc
        if d is None:
            continue
        if c.scenario in ("buggy-client-keepalive", "linger-abort") and \
                "--duration" in c.extra:
            side = "server"
            tw = time_in(d, side, "TIME_WAIT")
            if tw is not None and not held(d, side, "TIME_WAIT"):
                rows.append(f"| TIME_WAIT ({c.scenario}) | 60 s | {tw:.3f} s | {tw - 60:+.3f} s "
                            f"| {granule_s(60, hz or 250):.3f} s |")
    return rows


def verdict(ok: bool, claim: str, why: str) -> str:
    return f"- {claim} — **{'holds' if ok else 'does not hold on this kernel'}**: {why}"


def section(cs: list[Case], ranges: list[str] | None) -> str:
    hz = kernel_hz()
    by = {}
    for c in cs:
        by.setdefault(c.scenario, []).append(c)
    out = [BEGIN, "## Lab: lifetimes measured with `tcplinger lab`", "",
           f"Measured on Linux {platform.release()} ({platform.machine()}, CONFIG_HZ={hz}) on "
           f"{time.strftime('%Y-%m-%d')}, every value by `tcplinger lab run SCENARIO --set ... "
           "--json` (docs/lab.md): real sockets in throwaway namespaces, client and server "
           "joined through a router namespace by veth, every state change from the "
           "`sock:inet_sock_set_state` tracepoint and sock_diag polls every 20 ms. "
           "Regenerate with `sudo python scripts/kernel_behaviour.py` (about 3 minutes; it "
           "rewrites only this section). The simulator's calibration above measured the "
           "same lifetimes its own way; the two agree within the timer slack.", ""]
    # -- orphan
    o = by.get("orphan-fin-wait-2", [])
    if o:
        out += ["### orphan-fin-wait-2 (seed 003): the client close()s, the server never does",
                ""] + orphan_table(o) + [""]
        sixty = next((c for c in o if param(c, "tcp_fin_timeout") == 60
                      and not param(c, "linger2") and c.doc), None)
        ninety = next((c for c in o if param(c, "tcp_fin_timeout") == 90
                       and not param(c, "linger2") and c.doc), None)
        if sixty:
            t = time_in(sixty.doc, "client", "FIN_WAIT2")
            out.append(verdict(t is not None and 60 <= t <= 63 and not ever(
                sixty.doc, "client", "TIME_WAIT"),
                "Seed 003: with tcp_fin_timeout=60 the orphaned FIN_WAIT2 lasts \"about a "
                "minute, not exactly\", and then closes without TIME_WAIT",
                f"{t:.3f} s, never TIME_WAIT. The inexactness is the timer wheel: a 60 s "
                f"timer fires up to one granule ({granule_s(60, hz or 250):.3f} s at "
                f"HZ={hz}) late, never early (lab/slack.py)."))
        if ninety:
            t = time_in(ninety.doc, "client", "FIN_WAIT2")
            out.append(verdict(
                t is not None and abs(t - 90) < 3,
                "ip-sysctl.rst: tcp_fin_timeout is \"the length of time an orphaned "
                "connection will remain in the FIN_WAIT_2 state\"",
                f"only up to 60 s. Above, the orphan is a full socket for (t - 60) s and then "
                f"a minisock for another (t - 60) s (tcp_keepalive_timer() hands it over with "
                f"the *remaining* time): tcp_fin_timeout=90 gave {t:.3f} s, 61 gives ~2 s, "
                "120 gives 120 s again."))
        l2 = next((c for c in o if param(c, "linger2") == 130 and c.doc), None)
        if l2:
            t = time_in(l2.doc, "client", "FIN_WAIT2")
            out.append(f"- TCP_LINGER2 above 120 s is capped at 120 s (TCP_FIN_TIMEOUT_MAX): "
                       f"linger2=130 gave {s(t)}. TCP_LINGER2=-1 resets the connection when the "
                       "FIN is acked (the server's CLOSE_WAIT ends with it).")
        out.append("")
    # -- half close
    for c in by.get("half-close-fin-wait-2", []):
        d = c.doc
        out += ["### half-close-fin-wait-2 (seed 003): shutdown(SHUT_WR), process exits later",
                ""]
        if d is None:
            out += [failed_checks(c), ""]
            continue
        owned = time_in(d, "client", "FIN_WAIT2", orphan=False)
        orphan = time_in(d, "client", "FIN_WAIT2", orphan=True)
        out += ["| hold (process keeps the socket) | tcp_fin_timeout | FIN_WAIT2 while owned | "
                "after the exit | expectations |", "|---|---|---|---|---|",
                f"| {param(c, 'hold')} s | {param(c, 'tcp_fin_timeout')} s | {s(owned)} | "
                f"{s(orphan)} | {failed_checks(c)} |", "",
                verdict(owned is not None and owned >= param(c, "hold") - 0.1,
                        "Seed 003 and seed 004: tcp_fin_timeout does not apply to a socket "
                        "that was only shutdown(); it lasts until the process closes it",
                        f"owned for {s(owned)} (> tcp_fin_timeout), then {s(orphan)} more "
                        "from the exit."), ""]
    # -- close wait
    cw = by.get("close-wait-leak", [])
    if cw:
        out += ["### close-wait-leak (seed 004): the server never close()s after EOF", "",
                "| SO_KEEPALIVE | peer | TCP_KEEPIDLE/INTVL/CNT | CLOSE_WAIT lasted | "
                "probes sent | how it ended | expectations |", "|---|---|---|---|---|---|---|"]
        gone = silent = None
        for c in cw:
            d = c.doc
            if d is None:
                out.append(f"| {c.sets} | | | | | | {failed_checks(c)} |")
                continue
            life = lifetime(d, "server", "CLOSE_WAIT")
            how = "-" if life == "held" else ("reset by the peer" if sent(d, "client", "R")
                                              else "timed out (ETIMEDOUT)")
            if param(c, "keepalive") and param(c, "peer") == "gone":
                gone = life
            if param(c, "keepalive") and param(c, "peer") == "silent":
                silent = life
            out.append(f"| {'on' if param(c, 'keepalive') else 'off'} | {param(c, 'peer')} | "
                       f"{param(c, 'keepidle')}/{param(c, 'keepintvl')}/{param(c, 'keepcnt')} | "
                       f"{s(life)} | {len(sent(d, 'server', '.', tag='keepalive'))} | {how} | "
                       f"{failed_checks(c)} |")
        out += ["", verdict(
            False, "Seed 004: CLOSE_WAIT lasts at most tcp_keepalive_time + tcp_keepalive_intvl "
            "x tcp_keepalive_probes (7875 s)",
            "only with SO_KEEPALIVE set (off by default: without it CLOSE_WAIT never ends) and "
            f"a silent peer ({s(silent)} for 5 + 2 x 3 here). A live peer answers every probe "
            f"and CLOSE_WAIT never ends; a peer whose socket is gone answers the first probe "
            f"with a reset ({s(gone)}: the idle time alone)."), ""]
    # -- buggy client
    bc = by.get("buggy-client-keepalive", [])
    if bc:
        out += ["### buggy-client-keepalive (seeds 001, 002): the server closes idle "
                "keep-alive connections", "",
                "| client | server FIN_WAIT2 | server TIME_WAIT | client CLOSE_WAIT | "
                "expectations |", "|---|---|---|---|---|"]
        buggy_fw2 = None
        for c in bc:
            d = c.doc
            if d is None:
                out.append(f"| {c.sets} | | | | {failed_checks(c)} |")
                continue
            fw2 = lifetime(d, "server", "FIN_WAIT2")
            if param(c, "client") == "buggy":
                buggy_fw2 = fw2
            out.append(f"| {param(c, 'client')} | {s(fw2)} | "
                       f"{s(lifetime(d, 'server', 'TIME_WAIT'))} | "
                       f"{s(lifetime(d, 'client', 'CLOSE_WAIT'))} | {failed_checks(c)} |")
        out += ["", verdict(
            False, "Seed 001: FIN_WAIT2 has no timeout and stays until the system reboots",
            f"on Linux the server's socket is an orphan once the application close()s it, "
            f"and tcp_fin_timeout ends it ({s(buggy_fw2)} with 60 s). It is the buggy "
            "client that keeps its end, in CLOSE_WAIT, for as long as it runs."), ""]
    # -- linger
    la = by.get("linger-abort", [])
    if la:
        out += ["### linger-abort (seed 001's SO_LINGER fix)", "",
                "| SO_LINGER {1, 0} | closer sent | TIME_WAIT (closer) | peer's read() | "
                "expectations |", "|---|---|---|---|---|"]
        for c in la:
            d = c.doc
            if d is None:
                out.append(f"| {c.sets} | | | | {failed_checks(c)} |")
                continue
            closer = param(c, "closer")
            flags = "RST" if sent(d, closer, "R") else "FIN"
            out.append(f"| {'on' if param(c, 'linger') else 'off'} | {flags} | "
                       f"{s(lifetime(d, closer, 'TIME_WAIT'), 'held')} | "
                       f"{d['facts'].get('peer_error') or 'EOF'} | {failed_checks(c)} |")
        out += ["", "- Seed 001: SO_LINGER {1, 0} avoids FIN_WAIT2 — **holds**: the connection "
                "is reset, neither side keeps any teardown state; the price is that the peer "
                "sees ECONNRESET and unsent data is lost.", ""]
    # -- time-wait overflow
    to = by.get("time-wait-overflow", [])
    if to:
        out += ["### time-wait-overflow", "",
                "| connections | tcp_max_tw_buckets | entered TIME_WAIT | TCPTimeWaitOverflow | "
                "expectations |", "|---|---|---|---|---|"]
        for c in to:
            d = c.doc
            if d is None:
                out.append(f"| {c.sets} | | | | {failed_checks(c)} |")
                continue
            n = sum(1 for x in socks(d, "client") if any(y["state"] == "TIME_WAIT"
                                                          for y in x["states"]))
            out.append(f"| {param(c, 'connections')} | {param(c, 'tcp_max_tw_buckets')} | {n} | "
                       f"{d['facts'].get('tw_overflow')} | {failed_checks(c)} |")
        out += ["", "- Seed 004: beyond tcp_max_tw_buckets TIME_WAIT sockets \"are cleared "
                "immediately and a warning is printed\" — **holds**, in the sense that the "
                "extra connections never enter TIME_WAIT (tcp_time_wait() finds no bucket and "
                "closes them; TcpExt TCPTimeWaitOverflow counts them).", ""]
    # -- ports
    pe = by.get("port-exhaustion", [])
    if pe:
        out += ["### port-exhaustion", "",
                "| tcp_tw_reuse | ports | connections tried | connected | EADDRNOTAVAIL | "
                "4-tuples reused | expectations |", "|---|---|---|---|---|---|---|"]
        for c in pe:
            d = c.doc
            if d is None:
                out.append(f"| {c.sets} | | | | | | {failed_checks(c)} |")
                continue
            f = d["facts"]
            out.append(f"| {param(c, 'tcp_tw_reuse')} | {param(c, 'ip_local_port_range')} | "
                       f"{param(c, 'connections')} | {f.get('connected')} | "
                       f"{f.get('eaddrnotavail')} | {f.get('reused_tuples')} | "
                       f"{failed_checks(c)} |")
        out += ["", "- tcp_tw_reuse=2 (the default) reuses TIME_WAIT only for loopback "
                "connections: on a veth it behaves like 0. With 1, a connect() took over "
                "TIME_WAIT 4-tuples older than tcp_tw_reuse_delay (1 s) even while other ports "
                "of the range were free (connect() tries even ports first).",
                "- Seed 004's net.ipv4.tcp_tw_recycle and net.ipv4.tcp_tw_timeout do not "
                "exist here (see the sysctl table below).", ""]
    # -- fin dropped
    fd = by.get("fin-dropped", [])
    if fd:
        from tcplinger.lab.scenarios._common import model_timeout
        out += ["### fin-dropped: FINs dropped by nftables on the router", "",
                "| state | owner | retry limit | nominal (2^(n+1)-1) x 200 ms | lasted | "
                "FINs sent | expectations |", "|---|---|---|---|---|---|---|"]
        for c in fd:
            d = c.doc
            if d is None:
                out.append(f"| {c.sets} | | | | | | {failed_checks(c)} |")
                continue
            closer = "client" if param(c, "state") == "fin_wait_1" else "server"
            st = "FIN_WAIT1" if closer == "client" else "LAST_ACK"
            owned = param(c, "owner") == "owned"
            n = param(c, "tcp_retries2") if owned else param(c, "tcp_orphan_retries")
            name = "tcp_retries2" if owned else "tcp_orphan_retries"
            out.append(f"| {st} | {param(c, 'owner')} | {name}={n} | {model_timeout(n or 8):.1f} s"
                       f" | {s(time_in(d, closer, st))} | "
                       f"{len(sent(d, closer, 'F', dropped=True))} | {failed_checks(c)} |")
        out += ["", "- The limit counts from the first RTO retransmission (a tail loss probe "
                "comes before it) and is checked only when the RTO timer fires, so the socket "
                "is dropped at the first expiry past it: roughly twice the nominal time, or "
                "about the nominal one when the RTO is a few percent above 200 ms "
                "(retry_bounds() in lab/scenarios/_common.py). No reset is sent.", ""]
    # -- conntrack
    ce = by.get("conntrack-expiry", [])
    if ce:
        out += ["### conntrack-expiry: the router forgets a half-closed flow", "",
                "| client | ct close_wait timeout | ct entry in CLOSE_WAIT | server CLOSE_WAIT |"
                " server LAST_ACK | FINs dropped (INVALID) | client FIN_WAIT2 | expectations |",
                "|---|---|---|---|---|---|---|---|"]
        for c in ce:
            d = c.doc
            if d is None:
                out.append(f"| {c.sets} | | | | | | | {failed_checks(c)} |")
                continue
            ct = [x for x in (d.get("middlebox") or {}).get("states", [])
                  if x.get("label") == "CLOSE_WAIT"]
            ctl = ct[0]["end_s"] - ct[0]["start_s"] if ct and ct[0]["end_s"] else None
            out.append(f"| {param(c, 'client')} | "
                       f"{param(c, 'nf_conntrack_tcp_timeout_close_wait')} s | {s(ctl)} | "
                       f"{s(lifetime(d, 'server', 'CLOSE_WAIT'))} | "
                       f"{s(lifetime(d, 'server', 'LAST_ACK'))} | "
                       f"{d['facts'].get('invalid_drops')} | "
                       f"{s(lifetime(d, 'client', 'FIN_WAIT2'))} | {failed_checks(c)} |")
        out += ["", "- conntrack reports nothing when an entry times out: DESTROY comes "
                "when the garbage collector or the next packet finds it expired (here: the "
                "server's FIN, seconds later). The lab ends the entry's span at the last "
                "packet plus its timeout.", ""]
    # -- firewall
    fk = by.get("firewall-keepalive", [])
    if fk:
        out += ["### firewall-keepalive (seed 000): a userspace ipfw on the router", "",
                "| dyn_keepalive | ack lifetime / keepalive interval / period | "
                "server tcp_fin_timeout | server FIN_WAIT2 | client CLOSE_WAIT | forged "
                "keepalives | server resets | rule | expectations |",
                "|---|---|---|---|---|---|---|---|---|"]
        outlives = []
        for c in fk:
            d = c.doc
            if d is None:
                out.append(f"| {c.sets} | | | | | | | | {failed_checks(c)} |")
                continue
            fw2 = time_in(d, "server", "FIN_WAIT2")
            outlives.append(fw2 is not None and fw2 > param(c, "tcp_fin_timeout") + 2.1)
            rule = (d.get("middlebox") or {}).get("states") or [{}]
            out.append(
                f"| {'on' if param(c, 'dyn_keepalive') else 'off'} | "
                f"{param(c, 'dyn_ack_lifetime')}/{param(c, 'dyn_keepalive_interval')}/"
                f"{param(c, 'dyn_keepalive_period')} s | {param(c, 'tcp_fin_timeout')} s | "
                f"{s(fw2)} | {s(lifetime(d, 'client', 'CLOSE_WAIT'))} | "
                f"{len(sent(d, 'ipfw', '.', tag='forged-keepalive'))} | "
                f"{len(sent(d, 'server', 'R'))} | {rule[-1].get('label', '-')} | "
                f"{failed_checks(c)} |")
        out += ["", verdict(
            False, "Seed 000: ipfw's keepalives keep the server's FIN_WAIT_2 alive forever",
            "not with a Linux server: its orphaned FIN_WAIT2 ended at tcp_fin_timeout in "
            f"every run{' (it outlived it in one: see the table)' if any(outlives) else ''}. "
            "Linux answers the forged keepalive (an old segment) with an ACK but does not "
            "restart the FIN_WAIT2 timer; FreeBSD's tcp_timer_2msl() does, which is the loop "
            "Luigi Rizzo describes. With dyn_keepalive on, the first keepalive after the "
            "server's socket is gone draws a reset that ends the *client's* CLOSE_WAIT; with "
            "it off, the rule expires and the client's CLOSE_WAIT stays."),
            "- What the emulation cannot show: a FreeBSD endpoint (the lab's kernels are "
            "Linux; the simulator has FreeBSD's TCP), and ipfw's per-CPU in-kernel timing "
            "(lab/bridge.py forwards in userspace: ~0.1 ms more per packet, whole-second "
            "ticks from the bridge's start rather than from boot).", ""]
    out += slack_section(cs, hz)
    if ranges:
        out += ranges
    out.append(END)
    return "\n".join(out) + "\n"


def slack_section(cs, hz) -> list[str]:
    return ["### Timer slack: the tolerance of every lifetime check", "",
            "A timer-wheel timer (FIN_WAIT2, TIME_WAIT, keepalive) never fires early and "
            "fires up to one wheel granule late: 8^level jiffies, the level chosen by how "
            "far the timer is (kernel/time/timer.c). The lab's checks allow that granule, "
            "the poll interval (for ends seen by polls) and 0.15 s of scheduling.", ""] + \
        slack_table(cs, hz) + [""]


# ---- sysctl ranges ---------------------------------------------------------------------

RANGE_PROBES = {
    "net.ipv4.tcp_fin_timeout": ["-1", "0", "8589934", "8589935"],
    "net.ipv4.tcp_keepalive_probes": ["0", "255", "256"],
    "net.ipv4.tcp_orphan_retries": ["-1", "0", "255", "256"],
    "net.ipv4.tcp_retries2": ["0", "255", "256"],
    "net.ipv4.tcp_syn_retries": ["0", "1", "127", "128"],
    "net.ipv4.tcp_tw_reuse": ["0", "2", "3"],
    "net.ipv4.tcp_tw_reuse_delay": ["0", "1", "60000", "60001"],  # 1..TCP_PAWS_MSL s in ms
    "net.ipv4.ip_local_port_range": ["1023 1024", "1024 1024", "40001 40000"],
}
SEED_SYSCTLS = ("net.ipv4.tcp_tw_recycle", "net.ipv4.tcp_tw_timeout", "net.ipv4.tcp_max_orphans",
                "net.ipv4.tcp_timestamps", "net.ipv4.tcp_tw_reuse")


def measure_ranges() -> list[str]:
    ns = f"tl-lab-ranges-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    rows = ["### Namespace sysctls: what this kernel accepts", "",
            "Written in a fresh namespace (`scripts/kernel_behaviour.py --ranges`); "
            "lab/params.py bounds `--set` by these.", "",
            "| sysctl | value written | accepted |", "|---|---|---|"]
    try:
        for name, values in RANGE_PROBES.items():
            path = "/proc/sys/" + name.replace(".", "/")
            for v in values:
                done = subprocess.run(["ip", "netns", "exec", ns, "sh", "-c",
                                       f"echo '{v}' > {path}"], capture_output=True)
                rows.append(f"| {name} | `{v}` | {'yes' if done.returncode == 0 else 'no'} |")
        rows += ["", "| sysctl named by the seeds | in a child namespace | in the host |",
                 "|---|---|---|"]
        for name in SEED_SYSCTLS:
            path = "/proc/sys/" + name.replace(".", "/")
            child = subprocess.run(["ip", "netns", "exec", ns, "test", "-e", path]).returncode == 0
            rows.append(f"| {name} | {'present' if child else 'absent'} | "
                        f"{'present' if Path(path).exists() else 'absent'} |")
    finally:
        subprocess.run(["ip", "netns", "del", ns])
    return rows + [""]


# ---- main -----------------------------------------------------------------------------

def write(text: str) -> None:
    old = DOC.read_text() if DOC.exists() else "# Kernel behaviour\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        new = head + text.rstrip("\n") + tail
    else:
        new = old.rstrip("\n") + "\n\n" + text
    with tempfile.NamedTemporaryFile("w", dir=DOC.parent, delete=False) as f:
        f.write(new)
    os.replace(f.name, DOC)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--print", action="store_true", help="print the section, do not write")
    ap.add_argument("--only", metavar="SCENARIO", help="measure one scenario")
    ap.add_argument("--ranges", action="store_true", help="only the sysctl ranges")
    ap.add_argument("--parallel", type=int, default=6)
    args = ap.parse_args(argv)
    if args.only and not args.print:
        ap.error("--only measures one scenario: use it with --print (the section in the "
                 "document must hold them all)")
    if os.geteuid() != 0:
        print("kernel_behaviour.py: needs root (network namespaces)", file=sys.stderr)
        return 4
    todo = [] if args.ranges else cases(args.only)
    started = time.monotonic()
    with ThreadPoolExecutor(args.parallel) as pool:
        order = sorted(todo, key=lambda c: -("120" in str(c.sets) or "130" in str(c.sets)
                                             or "70" in str(c.extra) or "=90" in str(c.sets)))
        for c in pool.map(run_case, order):
            print(f"  {time.monotonic() - started:6.1f}s  {' '.join(c.key)}: "
                  f"{failed_checks(c)}", file=sys.stderr)
    text = section(todo, measure_ranges())
    if args.print:
        print(text)
    else:
        write(text)
        print(f"wrote {DOC.relative_to(ROOT)} ({time.monotonic() - started:.0f} s)",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
