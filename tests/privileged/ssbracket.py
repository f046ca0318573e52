"""Compare tcplinger's JSON sockets with ss listings taken around the run.

ss is run just before and just after tcplinger (a *bracket*): anything that
moves with time (timer expiry, retransmit counts, age) must lie between the
two ss readings; everything else must equal both. That bounds the tolerance
by what actually happened instead of by a guessed constant.

Tolerances, and why:

- ss prints expiry with lost precision (``print_ms_timer``: ms dropped from
  10 s on, seconds from 10 min on); the parser returns the resolution, so
  the true value of a reading ``v`` lies in ``[v, v + resolution)``.
- ``JIFFY_MS``: the kernel reports expiry as ``jiffies_to_msecs(expires -
  jiffies)`` (inet_diag.c), so readings move in jiffy steps; one jiffy at
  the lowest HZ Linux builds with (100) covers a converter that rounds.
- A timewait-type socket that the second ss no longer lists must have
  had its timer run out within the run (:func:`expired`); tcplinger may or
  may not have seen it, and if it did, its reading must lie between the
  first ss reading and 0.
- A timer that re-armed between the two ss runs (retransmit or zero-window
  probe timers with backoff; seen changing, or pending after more time than
  the first reading had left) can legitimately read anything from 0 up to
  its new timeout; then only ``0 <= expires <= max(reading) + elapsed`` is
  checked, and retransmits must lie between the two readings' min and max.
"""

from __future__ import annotations

import pwd
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness import Netns, timer_timeout_s

JIFFY_MS = 10
#: States a close() leads to: with inode 0 the socket is kernel-held.
ORPHAN_STATES = frozenset({"FIN_WAIT1", "FIN_WAIT2", "CLOSING", "LAST_ACK", "TIME_WAIT"})


@dataclass
class Bracket:
    ns: Netns
    before: dict[int, dict]  # cookie -> ss row
    after: dict[int, dict]
    elapsed_ms: float  # from the start of the first ss to the end of the second


def by_cookie(rows: list[dict]) -> dict[int, dict]:
    out = {r["cookie"]: r for r in rows}
    assert len(out) == len(rows), "ss listed a cookie twice"
    return out


def bracket(namespaces: list[Netns], fn: Callable[[], object],
            options: str = "tanoe") -> tuple[object, dict[str, Bracket]]:
    """Run ss in every namespace, then ``fn()``, then ss again.

    With ``-p`` only the first ss walks /proc (slow on a host with many
    open files): owners of our static population do not move, timers do.
    """
    t0 = time.monotonic()
    before = {ns.name: by_cookie(ns.ss(options)) for ns in namespaces}
    result = fn()
    after = {ns.name: by_cookie(ns.ss(options.replace("p", ""))) for ns in namespaces}
    elapsed = (time.monotonic() - t0) * 1000
    return result, {ns.name: Bracket(ns, before[ns.name], after[ns.name], elapsed)
                    for ns in namespaces}


def ss_orphan(row: dict) -> bool:
    return row["inode"] == 0 and row["state"] in ORPHAN_STATES


def _timer_problems(b: dict, a: dict, got: dict, elapsed_ms: float) -> list[str]:
    tb, ta = b["timer"], a["timer"]
    out = []
    if got.get("kind") not in {tb["kind"], ta["kind"]}:
        return [f"timer.kind: ss {tb['kind']!r} (after: {ta['kind']!r}), got {got.get('kind')!r}"]
    if tb["kind"] == "off" and ta["kind"] == "off":
        return []
    exp = got.get("expires_ms")
    # Re-armed: seen changing, or still pending after more time than the
    # first reading had left (it fired in between; an ACK may then have
    # reset the count and armed a fresh, shorter RTO: a CI run read 0
    # retransmits with 348 ms left, then 1 with 792 ms, then 0 with 120 ms)
    rearmed = (tb["kind"] != ta["kind"] or tb["retransmits"] != ta["retransmits"]
               or ta["expires_ms"] > tb["expires_ms"] + tb["resolution_ms"]
               or elapsed_ms > tb["expires_ms"] + tb["resolution_ms"] + JIFFY_MS)
    lo_r, hi_r = sorted((tb["retransmits"], ta["retransmits"]))
    if rearmed:
        # The timer fired between the readings: a probe or retransmission
        # was in flight, and the peer's answer resets the count
        # (icsk_probes_out / icsk_retransmits go back to 0 on an ACK).
        lo_r, hi_r = 0, hi_r + 1
    if not lo_r <= got.get("retransmits", -1) <= hi_r:
        out.append(f"timer.retransmits: ss {tb['retransmits']}..{ta['retransmits']},"
                   f" got {got.get('retransmits')}")
    if not isinstance(exp, int):
        return out + [f"timer.expires_ms: not an int: {exp!r}"]
    if rearmed:
        hi = max(tb["expires_ms"] + tb["resolution_ms"], ta["expires_ms"] + ta["resolution_ms"])
        lo, hi = 0, hi + elapsed_ms
    else:
        lo, hi = ta["expires_ms"] - JIFFY_MS, tb["expires_ms"] + tb["resolution_ms"] + JIFFY_MS
    if not lo <= exp <= hi:
        out.append(f"timer.expires_ms: ss bracket [{lo}, {hi:.0f}]"
                   f" (before {tb['expires_ms']}+{tb['resolution_ms']}, after {ta['expires_ms']}),"
                   f" got {exp}")
    return out


def _age_problems(b: dict, a: dict, got: dict, fin_timeout: int) -> list[str]:
    """Timewait-type sockets: age = timeout - remaining. TIME_WAIT: exact,
    source "timer"; an orphaned FIN_WAIT2: a lower bound, source
    "since_close" (tcp_close() armed its timer, not the FIN's ACK that
    moved it to FIN_WAIT2: track/age.py, docs/json.md)."""
    timeout = timer_timeout_s(b, fin_timeout)
    age = got.get("age") or {}
    if timeout is None:
        # A persist or retransmit timer says nothing about time in state.
        if b["timer"]["kind"] in ("retransmit", "probe") and age.get("source") == "timer":
            return [f"age.source: 'timer' for a {b['state']} {b['timer']['kind']} timer,"
                    " which does not measure time in state"]
        return []
    out = []
    since_close = b["state"] == "FIN_WAIT2"
    source, at_least = ("since_close", True) if since_close else ("timer", False)
    if age.get("source") != source:
        out.append(f"age.source: expected {source!r} (timewait-type, timeout {timeout}s),"
                   f" got {age.get('source')!r}")
    secs = age.get("seconds")
    if not isinstance(secs, (int, float)):
        return out + [f"age.seconds: expected a number, got {secs!r}"]
    tb, ta = b["timer"], a["timer"]
    lo = timeout - (tb["expires_ms"] + tb["resolution_ms"] + JIFFY_MS) / 1000
    hi = timeout - (ta["expires_ms"] - JIFFY_MS) / 1000
    if not lo <= secs <= hi:
        out.append(f"age.seconds: ss says {timeout}s - remaining in [{lo:.3f}, {hi:.3f}], got {secs}")
    own = got.get("timer", {}).get("expires_ms")
    if isinstance(own, int) and abs(secs - (timeout - own / 1000)) > (JIFFY_MS + 1) / 1000:
        out.append(f"age.seconds: {secs} != {timeout} - own timer.expires_ms {own}/1000")
    if age.get("at_least") is not at_least:
        out.append(f"age.at_least: expected {at_least} for a {b['state']} timer age,"
                   f" got {age.get('at_least')!r}")
    return out


def socket_problems(b: dict, a: dict, got: dict, *, elapsed_ms: float, fin_timeout: int,
                    ns: Netns | None = None, owners: bool = False) -> list[str]:
    """Every way one tcplinger socket disagrees with its ss readings."""
    out = []

    def same(field: str, want, have) -> None:
        if want != have:
            out.append(f"{field}: ss {want!r}, got {have!r}")

    same("state", b["state"], got.get("state"))
    same("family", b["family"], got.get("family"))
    same("local", {k: b["local"][k] for k in ("address", "port")}, got.get("local"))
    same("remote", {k: b["remote"][k] for k in ("address", "port")}, got.get("remote"))
    same("inode", b["inode"], got.get("inode"))
    same("uid", b["uid"], got.get("uid"))
    same("recv_q", b["recv_q"], got.get("recv_q"))
    same("send_q", b["send_q"], got.get("send_q"))
    same("timewait_type", b["timewait_type"], got.get("timewait_type"))
    same("orphan", ss_orphan(b), got.get("orphan"))
    same("shutdown", b["shutdown"], got.get("shutdown"))
    if ns is not None:
        netns = got.get("netns") or {}
        same("netns.inode", ns.inode, netns.get("inode"))
        same("netns.name", ns.name, netns.get("name"))
    out += _timer_problems(b, a, got.get("timer") or {}, elapsed_ms)
    out += _age_problems(b, a, got, fin_timeout)
    if owners:
        want = sorted((u["pid"], u["comm"], u["fd"]) for u in b["users"])
        have = sorted((o.get("pid"), o.get("comm"), o.get("fd")) for o in got.get("owners", []))
        same("owners (pid, comm, fd)", want, have)
        for o in got.get("owners", []):
            out += owner_problems(o)
    return out


def owner_problems(o: dict) -> list[str]:
    """user and cmdline of an owner against /proc (the process still runs)."""
    out = []
    try:
        status = Path(f"/proc/{o['pid']}/status").read_text()
        cmdline = Path(f"/proc/{o['pid']}/cmdline").read_bytes()
    except OSError as exc:
        return [f"owner {o.get('pid')}: /proc unreadable: {exc}"]
    uid = int(next(l for l in status.splitlines() if l.startswith("Uid:")).split()[1])
    if o.get("user") != pwd.getpwuid(uid).pw_name:
        out.append(f"owner {o['pid']} user: /proc says uid {uid}"
                   f" ({pwd.getpwuid(uid).pw_name}), got {o.get('user')!r}")
    argv0 = cmdline.split(b"\0")[0].decode()
    if argv0 not in (o.get("cmdline") or ""):
        out.append(f"owner {o['pid']} cmdline: /proc argv[0] {argv0!r} not in {o.get('cmdline')!r}")
    return out


def problems(br: Bracket, tl_sockets: list[dict], *, fin_timeout: int,
             check_netns: bool = True, owners: bool = False) -> list[str]:
    """All disagreements between tcplinger's sockets (one namespace) and ss."""
    out = []
    after = dict(br.after)
    for c in sorted(set(br.before) - set(br.after)):
        if expired(br.before[c], br.elapsed_ms):
            after[c] = _at_expiry(br.before[c])
        else:
            out.append(f"{br.ns.name}: cookie {c} {_describe(br.before[c])} vanished during"
                       f" the run ({br.elapsed_ms:.0f} ms) before its timer expired")
    for c in sorted(set(br.after) - set(br.before)):
        out.append(f"{br.ns.name}: cookie {c} {_describe(br.after[c])} appeared during the run")
    br = Bracket(br.ns, br.before, after, br.elapsed_ms)
    got = {}
    for s in tl_sockets:
        if s.get("cookie") in got:
            out.append(f"cookie {s.get('cookie')} listed twice")
        got[s.get("cookie")] = s
    stable = set(br.before) & set(br.after)
    for c in sorted(stable - set(got)):
        if c in br.after and br.after[c].get("expired"):
            continue  # gone before tcplinger looked: fine
        out.append(f"missing from tcplinger: cookie {c} {_describe(br.before[c])}")
    for c in sorted(set(got) - set(br.before) - set(br.after)):
        out.append(f"not in ss: cookie {c} {got[c].get('state')} {got[c].get('local')}"
                   f" -> {got[c].get('remote')}")
    for c in sorted(stable & set(got)):
        for p in socket_problems(br.before[c], br.after[c], got[c], elapsed_ms=br.elapsed_ms,
                                 fin_timeout=fin_timeout, ns=br.ns if check_netns else None,
                                 owners=owners):
            out.append(f"cookie {c} {_describe(br.before[c])}: {p}")
    return out


def expired(row: dict, elapsed_ms: float) -> bool:
    """Whether a timewait-type socket listed before a run may have been
    reaped by the end of it: its timer (a lower bound) ran out within the
    run. Reaping is never early (inet_twsk_kill from the tw timer,
    net/ipv4/inet_timewait_sock.c), only late under load."""
    t = row["timer"]
    return t["kind"] == "timewait" and t["expires_ms"] <= elapsed_ms + JIFFY_MS


def _at_expiry(row: dict) -> dict:
    """The last reading of a socket that expired during the run."""
    return dict(row, expired=True, timer=dict(row["timer"], expires_ms=0, resolution_ms=1))


def _describe(row: dict) -> str:
    l, r = row["local"], row["remote"]
    return f"{row['state']} {l['address']}:{l['port']} -> {r['address']}:{r['port']}"
