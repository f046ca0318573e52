"""``tcplinger ls --json`` sees exactly what ``ss`` sees, socket by socket.

One namespace holds the standard population (harness.standard_items: every
teardown state in both families, three owners, shared and dup'd fds,
orphans full and timewait-type, a non-root uid). Each test runs tcplinger
between two ``ss`` runs and compares by socket cookie (ssbracket.py says
which tolerance applies where, and why).
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged

import harness  # noqa: E402
from ssbracket import Bracket, bracket, problems  # noqa: E402
from ssparse import key  # noqa: E402

#: <= 60 s, so orphan FIN_WAIT2 sockets are timewait-type (tcp_close() in
#: net/ipv4/tcp.c), and not 60, so an age computed with the TIME_WAIT length
#: instead of tcp_fin_timeout is 15 s off and fails.
FIN_TIMEOUT = 45


@pytest.fixture(scope="module")
def pool():
    fresh = harness.Fresh(harness.standard_owners(), harness.standard_items(),
                          {"net.ipv4.tcp_fin_timeout": FIN_TIMEOUT})
    try:
        yield fresh
    finally:
        fresh.close()


@pytest.fixture
def live(pool):
    """The population, still exactly as built and with >= 25 s to live (a
    new namespace and population when the shared one is older)."""
    return pool.get(min_left_s=25)


def ls(pop, *args: str, inside: bool = False) -> dict:
    if inside:
        argv = pop.ns.exec_argv(harness.tcplinger_argv("ls", "--json", *args))
    else:
        argv = harness.tcplinger_argv("ls", "--json", "--netns", pop.ns.name, *args)
    return harness.run_json(argv)


def no_problems(found: list[str]) -> None:
    assert not found, f"{len(found)} disagreement(s) with ss:\n" + "\n".join(found)


def only(br: Bracket, keep) -> Bracket:
    """The bracket restricted to the ss rows a filter should select (chosen
    on the first ss run: only it has ``-p`` users)."""
    chosen = {c for c, r in br.before.items() if keep(r)}
    return Bracket(br.ns, {c: br.before[c] for c in chosen},
                   {c: r for c, r in br.after.items() if c in chosen}, br.elapsed_ms)


def test_population_is_what_the_holder_promised(live):
    """The oracle side: ss shows the states, uids and owners holder.py built."""
    rows = live.ns.ss("tanoep")
    promised = live.by_key()
    found = []
    for r in rows:
        p = promised[key(r)]
        want = sorted((o["pid"], o["comm"], o["fd"]) for o in p["owners"])
        have = sorted((u["pid"], u["comm"], u["fd"]) for u in r["users"])
        for field, w, h in (("owners", want, have), ("uid", p["uid"], r["uid"]),
                            ("timewait_type", p["timewait_type"], r["timewait_type"]),
                            ("inode is 0", not p["owners"], r["inode"] == 0)):
            if w != h:
                found.append(f"{key(r)} {field}: promised {w}, ss {h}")
    assert not found, "\n".join(found)
    seen = {(r["state"], r["family"], r["inode"] == 0, r["timewait_type"]) for r in rows}
    for fam in ("ipv4", "ipv6"):
        assert {("LISTEN", fam, False, False), ("ESTABLISHED", fam, False, False),
                ("CLOSE_WAIT", fam, False, False), ("FIN_WAIT2", fam, False, False),
                ("FIN_WAIT2", fam, True, True), ("TIME_WAIT", fam, True, True),
                ("FIN_WAIT1", fam, True, False), ("LAST_ACK", fam, True, False),
                ("SYN_SENT", fam, False, False), ("ESTABLISHED", fam, True, False)} <= seen
    assert {r["timer"]["kind"] for r in rows} == {
        "off", "keepalive", "timewait", "retransmit", "probe"}
    assert {u["comm"] for r in rows for u in r["users"]} == {"tl-web", "tl-cli", "tl-worker"}
    assert 65534 in {r["uid"] for r in rows}


@pytest.mark.parametrize("inside", [False, True], ids=["--netns", "ip-netns-exec"])
def test_ls_matches_ss(live, inside):
    doc, br = bracket([live.ns], lambda: ls(live, inside=inside))
    no_problems(problems(br[live.ns.name], doc["sockets"], fin_timeout=FIN_TIMEOUT))


@pytest.mark.parametrize("inside", [False, True], ids=["--netns", "ip-netns-exec"])
def test_owners_match_ss_p(live, inside):
    doc, br = bracket([live.ns], lambda: ls(live, "--owners", inside=inside), options="tanoep")
    no_problems(problems(br[live.ns.name], doc["sockets"], fin_timeout=FIN_TIMEOUT,
                         owners=True))


def test_closed_sockets_have_no_owner_and_timewait_ages(live):
    """What the holder closed is ownerless: orphan, no owners, and for
    timewait-type sockets an age from the timer (compared with ss in
    test_ls_matches_ss; here against the holder's own record)."""
    doc = ls(live, "--owners")
    got = {key(s): s for s in doc["sockets"]}
    found = []
    for p in live.sockets:
        s = got.get(key(p))
        if s is None:
            found.append(f"{key(p)}: missing")
            continue
        if p["owners"]:
            continue
        closed = p["state"] != "ESTABLISHED"  # the other ownerless one: unaccepted
        checks = [("owners", [], s["owners"]), ("orphan", closed, s["orphan"]),
                  ("inode", 0, s["inode"])]
        if p["timewait_type"]:
            timeout = harness.timer_timeout_s(p, live.fin_timeout)
            # an orphaned FIN_WAIT2's timer counts from close(): a lower bound
            source = "since_close" if p["state"] == "FIN_WAIT2" else "timer"
            checks += [("age.source", source, s["age"]["source"]),
                       ("age.at_least", source == "since_close", s["age"]["at_least"]),
                       ("timer.kind", "timewait", s["timer"]["kind"])]
            secs = s["age"]["seconds"]
            if not isinstance(secs, (int, float)) or not 0 <= secs <= timeout:
                found.append(f"{key(p)} age.seconds: expected within 0..{timeout}, got {secs!r}")
        found += [f"{key(p)} {f}: expected {w!r}, got {h!r}" for f, w, h in checks if w != h]
    assert not found, "\n".join(found)
    assert sum(not p["owners"] for p in live.sockets) == 14  # per family: 4 timewait-type, 2 full orphans, 1 unaccepted


@pytest.mark.parametrize("tl_state, states", [
    ("close-wait", {"CLOSE_WAIT"}),
    ("fin-wait-2", {"FIN_WAIT2"}),  # full and timewait-type sockets alike
    ("time-wait", {"TIME_WAIT"}),
    ("listen", {"LISTEN"}),
    ("FIN_WAIT1,LAST_ACK", {"FIN_WAIT1", "LAST_ACK"}),
    ("passive-close", {"CLOSE_WAIT", "LAST_ACK"}),
])
def test_state_filter(live, tl_state, states):
    doc, br = bracket([live.ns], lambda: ls(live, "--state", tl_state))
    mine = only(br[live.ns.name], lambda r: r["state"] in states)
    # ss's own state filter agrees with the predicate above (oracle check).
    assert {r["cookie"] for r in live.ns.ss("tanoe", states=tuple(sorted(states)))} \
        == set(mine.before)
    assert mine.before, f"the population has no {states} socket"
    no_problems(problems(mine, doc["sockets"], fin_timeout=FIN_TIMEOUT))


def _server_port(pop, kind: str, family: str = "ipv4") -> int:
    return next(s["local"]["port"] for s in pop.sockets
                if s["kind"] == kind and s["family"] == family and s["side"] == "listener")


@pytest.mark.parametrize("flag, ss_expr, keep", [
    ("--port", "( sport = :{p} or dport = :{p} )",
     lambda r, p: p in (r["local"]["port"], r["remote"]["port"])),
    ("--sport", "sport = :{p}", lambda r, p: r["local"]["port"] == p),
    ("--dport", "dport = :{p}", lambda r, p: r["remote"]["port"] == p),
])
def test_port_filters(live, flag, ss_expr, keep):
    # A close_wait listener's port: its LISTEN and CLOSE_WAIT sockets have
    # it as sport, the orphan FIN_WAIT2 peer as dport.
    port = _server_port(live, "close_wait")
    doc, br = bracket([live.ns], lambda: ls(live, flag, str(port)))
    mine = only(br[live.ns.name], lambda r: keep(r, port))
    assert {r["cookie"] for r in live.ns.ss("tanoe", *ss_expr.format(p=port).split())} \
        == set(mine.before)
    assert mine.before
    no_problems(problems(mine, doc["sockets"], fin_timeout=FIN_TIMEOUT))


@pytest.mark.parametrize("extra", [(), ("--state", "close-wait")], ids=["pid", "pid+state"])
def test_pid_filter(live, extra):
    pid = live.owners["tl-worker"]
    doc, br = bracket([live.ns], lambda: ls(live, "--pid", str(pid), "--owners", *extra), options="tanoep")
    states = {"CLOSE_WAIT"} if extra else None
    mine = only(br[live.ns.name], lambda r: any(u["pid"] == pid for u in r["users"])
                and (states is None or r["state"] in states))
    assert mine.before
    no_problems(problems(mine, doc["sockets"], fin_timeout=FIN_TIMEOUT, owners=True))


def test_comparison_catches_disagreements(live):
    """The oracle is not vacuous: a tcplinger answer altered in one field
    at a time is caught."""
    doc, br = bracket([live.ns], lambda: ls(live))
    br = br[live.ns.name]
    assert not problems(br, doc["sockets"], fin_timeout=FIN_TIMEOUT)
    fin2 = next(i for i, s in enumerate(doc["sockets"])
                if s["state"] == "FIN_WAIT2" and s["timewait_type"])
    listen = next(i for i, s in enumerate(doc["sockets"]) if s["state"] == "LISTEN")

    def bump(path, delta):
        def f(socks, i):
            obj = socks[i]
            for part in path[:-1]:
                obj = obj[part]
            obj[path[-1]] = obj[path[-1]] + delta if delta is not None else "CLOSE_WAIT"
        return f

    mutations = {
        "drop a socket": (listen, lambda socks, i: socks.pop(i)),
        "age with TIME_WAIT's 60 s": (fin2, bump(("age", "seconds"), 60 - FIN_TIMEOUT)),
        "timer 2 s late": (fin2, bump(("timer", "expires_ms"), 2000)),
        "inode off by one": (listen, bump(("inode",), 1)),
        "wrong state": (listen, bump(("state",), None)),
        "wrong port": (listen, bump(("local", "port"), 1)),
    }
    for what, (index, mutate) in mutations.items():
        socks = copy.deepcopy(doc["sockets"])
        mutate(socks, index)
        assert problems(br, socks, fin_timeout=FIN_TIMEOUT), f"not caught: {what}"


def test_netns_cleans_up_after_a_failure():
    """netns() ends the holder and its owners by pid and deletes the
    namespace even when the body raises; sysctls are in place."""
    with pytest.raises(RuntimeError, match="boom"):
        with harness.netns({"net.ipv4.tcp_fin_timeout": 33}) as ns:
            name = ns.name
            assert name.startswith("tl-t-") and ns.inode == os.stat(
                harness.NETNS_DIR / name).st_ino
            assert ns.sysctl("net.ipv4.tcp_fin_timeout") == "33"
            pop = harness.populate(ns, [harness.Owner("tl-x")],
                                   [harness.Item("close_wait", "ipv6", server=("tl-x",))])
            assert pop.fin_timeout == 33
            pids = [pop.proc.pid, *pop.owners.values()]
            raise RuntimeError("boom")
    assert not (harness.NETNS_DIR / name).exists()
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)  # owners are reaped by init once the holder is gone
    assert not [p for p in pids if Path(f"/proc/{p}").exists()]
