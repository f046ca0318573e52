"""``--all-netns``: three namespaces at once, each its own population.

The populations differ (kinds, families, owners, and tcp_fin_timeout), so
a socket tagged with the wrong namespace, or an age computed with another
namespace's sysctl, shows up as a disagreement with ss run in each one.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

pytestmark = pytest.mark.privileged

import harness  # noqa: E402
from ssbracket import bracket, expired, problems, ss_orphan  # noqa: E402
from harness import Item  # noqa: E402


def _items_b() -> list[Item]:
    web, cli, worker = (o.name for o in harness.standard_owners("-b"))
    return [Item("listen", "ipv4", server=(web,)),
            Item("close_wait", "ipv4", server=(web,)),
            Item("close_wait", "ipv4", server=(worker,)),
            Item("close_wait", "ipv4", server=(worker,), dup=2),
            Item("time_wait", "ipv4", server=(web,)),
            Item("time_wait", "ipv4", server=(web,)),
            Item("fin_wait2", "ipv4", client=(cli,), server=(web,))]


def _items_c() -> list[Item]:
    web, cli, worker = (o.name for o in harness.standard_owners("-c"))
    return [Item("established", "ipv6", client=(cli,), server=(web,)),
            Item("established", "ipv6", client=(cli,), server=(web, worker), keepidle=120),
            Item("close_wait", "ipv6", server=(worker,)),
            Item("time_wait", "ipv6", server=(web,)),
            Item("time_wait", "ipv6", server=(web,)),
            Item("time_wait", "ipv6", server=(web,)),
            Item("last_ack", "ipv6", client=(cli,), server=(web,)),
            Item("fin_wait1", "ipv6", server=(worker,))]


#: (owners, items, tcp_fin_timeout) per namespace; the timeouts differ so
#: the orphan FIN_WAIT2 ages check that each namespace's own sysctl is used.
SPECS = [
    (harness.standard_owners("-a"), harness.standard_items("-a"), 45),
    (harness.standard_owners("-b"), _items_b(), 30),
    (harness.standard_owners("-c"), _items_c(), 50),
]


@pytest.fixture(scope="module")
def pools():
    made = [harness.Fresh(owners, items, {"net.ipv4.tcp_fin_timeout": fin})
            for owners, items, fin in SPECS]
    try:
        yield made
    finally:
        for pool in made:
            pool.close()


@pytest.fixture
def trio(pools):
    # The 30 s namespace leaves least room: rebuild with < 20 s left.
    return [pool.get(min_left_s=20) for pool in pools]


def test_ls_all_netns_matches_ss_in_each(trio):
    nss = [p.ns for p in trio]
    doc, brs = bracket(nss, lambda: harness.run_json(
        harness.tcplinger_argv("ls", "--json", "--all-netns")))
    by_inode = defaultdict(list)
    for s in doc["sockets"]:
        by_inode[(s.get("netns") or {}).get("inode")].append(s)
    found = []
    for pop in trio:
        found += [f"{pop.ns.name}: {p}" for p in problems(
            brs[pop.ns.name], by_inode[pop.ns.inode], fin_timeout=pop.fin_timeout)]
    # Every socket of ours appears once, under its own namespace only.
    ours = {c: p.ns.name for p in trio for c in brs[p.ns.name].before}
    seen = Counter(s.get("cookie") for s in doc["sockets"] if s.get("cookie") in ours)
    found += [f"cookie {c} of {ours[c]} listed {n} times" for c, n in seen.items() if n != 1]
    listed = {(n.get("netns") or {}).get("inode"): (n.get("netns") or {}).get("name")
              for n in doc.get("namespaces", [])}
    for pop in trio:
        if listed.get(pop.ns.inode, "<absent>") != pop.ns.name:
            found.append(f"namespaces[]: {pop.ns.name} (inode {pop.ns.inode}) listed as"
                         f" {listed.get(pop.ns.inode, '<absent>')!r}")
    assert not found, f"{len(found)} disagreement(s) with ss:\n" + "\n".join(found)


def _ss_counts(rows: list[dict]) -> dict:
    return {
        "total": len(rows),
        "states": dict(Counter(r["state"] for r in rows)),
        "orphans": sum(ss_orphan(r) for r in rows),
        "time_wait": sum(r["state"] == "TIME_WAIT" for r in rows),
        "timewait_type": sum(bool(r["timewait_type"]) for r in rows),
    }


def _ss_owner_counts(rows: list[dict]) -> dict:
    per_pid = defaultdict(Counter)
    comm = {}
    for r in rows:
        for pid in {u["pid"] for u in r["users"]}:  # a socket counts once per process
            per_pid[pid][r["state"]] += 1
        for u in r["users"]:
            comm[u["pid"]] = u["comm"]
    return {(pid, comm[pid]): dict(c) for pid, c in per_pid.items()}


def _count_problems(name: str, got, before, after) -> list[str]:
    """got must lie between the two ss counts (equal when nothing expired
    in between: ssbracket.expired is the only change allowed)."""
    if isinstance(before, dict):
        got = got if isinstance(got, dict) else {}
        return [p for k in sorted(set(before) | set(after) | set(got))
                for p in _count_problems(f"{name}.{k}", got.get(k, 0),
                                         before.get(k, 0), after.get(k, 0))]
    lo, hi = sorted((before, after))
    if not (isinstance(got, int) and lo <= got <= hi):
        want = before if lo == hi else f"{after}..{before}"
        return [f"{name}: ss {want}, got {got}"]
    return []


def test_stats_all_netns_counts_equal_ss(trio):
    nss = [p.ns for p in trio]
    doc, brs = bracket(nss, lambda: harness.run_json(
        harness.tcplinger_argv("stats", "--json", "--all-netns", "--owners")), options="tanoep")
    entries = {(e.get("netns") or {}).get("inode"): e for e in doc["namespaces"]}
    found = []
    for pop in trio:
        br = brs[pop.ns.name]
        changed = set(br.before) ^ set(br.after)
        found += [f"{pop.ns.name}: cookie {c} changed during the run, not by expiring"
                  for c in sorted(changed)
                  if c not in br.before or not expired(br.before[c], br.elapsed_ms)]
        e = entries.get(pop.ns.inode)
        if e is None:
            found.append(f"{pop.ns.name} (inode {pop.ns.inode}): no stats entry")
            continue
        if (e.get("netns") or {}).get("name") != pop.ns.name:
            found.append(f"{pop.ns.name}: netns.name {e['netns'].get('name')!r}")
        before = _ss_counts(list(br.before.values()))
        after = _ss_counts(list(br.after.values()))
        for k in before:
            found += _count_problems(f"{pop.ns.name} {k}", e.get(k), before[k], after[k])
        # Expiring sockets are timewait-type, never owned: owners are stable.
        want = _ss_owner_counts(list(br.before.values()))
        got_owners = {(o["pid"], o["comm"]): o["states"] for o in e.get("owners") or []}
        if got_owners != want:
            found.append(f"{pop.ns.name} owners (sockets per process and state):"
                         f" ss {want}, got {got_owners}")
        # The kernel's per-namespace timewait count (sockstat "tw", what
        # `ss -s` prints as timewait) counts every timewait-type socket.
        found += _count_problems(f"{pop.ns.name} sockstat.tw", (e.get("sockstat") or {}).get("tw"),
                                 before["timewait_type"], after["timewait_type"])
        limit = (e.get("limits") or {}).get("tcp_fin_timeout")
        if limit != pop.fin_timeout:
            found.append(f"{pop.ns.name} limits.tcp_fin_timeout: {pop.fin_timeout}, got {limit}")
    assert not found, f"{len(found)} disagreement(s) with ss:\n" + "\n".join(found)
