"""ephemeral-port-exhaustion: per (local address, destination) group."""

import pytest

from tcplinger.diagnose.builder import SocketBuilder, namespace
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.finding import Severity

RANGE = (40000, 40999)  # 1000 ports


def run(ns, **kw):
    return diagnose([ns], rules=["ephemeral-port-exhaustion"], **kw)


def clients(n, *, state="TIME_WAIT", dest="10.0.0.7:5432", start=40000):
    b = SocketBuilder()
    b.add(state, f"10.0.0.1:{start}", dest, vary="sport", inode=0 if state == "TIME_WAIT" else None,
          timer=3 if state == "TIME_WAIT" else 0, count=n)
    return b


@pytest.mark.parametrize("n,expected", [(199, None), (200, Severity.INFO), (499, Severity.INFO),
                                        (500, Severity.WARNING), (899, Severity.WARNING),
                                        (900, Severity.CRITICAL)])
def test_thresholds(n, expected):
    found = run(namespace(clients(n).table(), sysctls={"ip_local_port_range": RANGE}))
    assert (found[0].severity if found else None) == expected
    if found:
        g = found[0].evidence["groups"][0]
        assert g["sockets"] == n and g["remote_address"] == "10.0.0.7" and g["remote_port"] == 5432
        assert g["states"] == {"TIME_WAIT": n}


def test_groups_are_per_destination():
    b = clients(300, dest="10.0.0.7:5432")
    b.add("ESTABLISHED", "10.0.0.1:40300", "10.0.0.8:6379", vary="sport", count=300)
    [f] = run(namespace(b.table(), sysctls={"ip_local_port_range": RANGE}))
    assert f.count == 300 and f.severity == Severity.INFO
    assert {g["remote_port"] for g in f.evidence["groups"]} == {5432, 6379}


def test_listening_ports_are_not_ephemeral():
    b = SocketBuilder()
    b.add("LISTEN", "0.0.0.0:40500")
    b.add("ESTABLISHED", "10.0.0.1:40500", "10.0.0.7:1000", count=600)  # accepted connections
    assert run(namespace(b.table(), sysctls={"ip_local_port_range": RANGE})) == []


def test_ports_outside_the_range_do_not_count():
    found = run(namespace(clients(600, start=20000).table(),
                          sysctls={"ip_local_port_range": RANGE}))
    assert found == []


def _reference_groups(ctx, lo, hi, lowest):
    """destination_groups() as written before it sorted the keys once and
    read columns instead of whole rows (np.unique's inverse per group)."""
    import numpy as np
    from tcplinger.diagnose.rules.ephemeral_ports import destination_hash
    from tcplinger.model.states import NOT_OUTGOING
    size = hi - lo + 1
    rows = ctx.rows
    sport = rows["sport"]
    cand = (sport >= lo) & (sport <= hi) & ~np.isin(rows["state"], [int(s) for s in NOT_OUTGOING])
    if int(np.count_nonzero(cand)) < lowest * size:
        return []
    if ctx.listen_ports:
        cand &= ~np.isin(sport, np.fromiter(ctx.listen_ports, dtype=np.uint16))
    idx = np.flatnonzero(cand)
    keys = destination_hash(rows[idx])
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    out = []
    for g in np.argsort(-counts, kind="stable"):
        if counts[g] < lowest * size:
            break
        members = idx[inverse == g]
        i = int(members[0])
        r = rows[members]
        same = ((r["family"] == rows["family"][i]) & (r["saddr"] == rows["saddr"][i])
                & (r["daddr"] == rows["daddr"][i]) & (r["dport"] == rows["dport"][i]))
        members = members[same]
        if len(members) >= lowest * size:
            out.append((i, members.tolist()))
    return sorted(out, key=lambda g: -len(g[1]))


@pytest.mark.parametrize("seed", range(25))
def test_destination_groups_as_the_per_group_scan(seed):
    """Random tables (IPv4, IPv6, v4-mapped, a listener, states that do not
    count, ties between groups): the same groups with the same rows in the
    same order as the reference, and hashing columns of ``idx`` equals
    hashing the copied rows."""
    import random
    import numpy as np
    from tcplinger.diagnose.context import NsContext
    from tcplinger.diagnose.peers import connection_hash
    from tcplinger.diagnose.rules.ephemeral_ports import destination_groups, destination_hash
    rnd = random.Random(seed)
    b = SocketBuilder()
    dests = ("10.0.0.7:5432", "10.0.0.8:5432", "[fd00::7]:443", "[::ffff:10.0.0.7]:5432")
    srcs = {"[": ("[fd00::1]", "[::ffff:10.0.0.1]"), "1": ("10.0.0.1", "10.0.0.2")}
    b.add("LISTEN", "10.0.0.1:40500", inode=1)
    for _ in range(rnd.randrange(1, 12)):
        dest = rnd.choice(dests)
        src = rnd.choice(srcs[dest[0]])
        if "::ffff" in dest and "::ffff" not in src or "fd00" in dest and "fd00" not in src:
            src = "[::ffff:10.0.0.1]" if "::ffff" in dest else "[fd00::1]"
        b.add(rnd.choice(("TIME_WAIT", "ESTABLISHED", "CLOSE_WAIT", "SYN_RECV")),
              f"{src}:{rnd.randrange(40000, 40900)}", dest, vary="sport",
              count=rnd.choice((1, 5, 50, 50, 120)))
    ctx = NsContext(namespace(b.table(), sysctls={"ip_local_port_range": RANGE}))
    for lowest in (0.0, 0.01, 0.05, 0.2):
        got = [(int(g["_members"][0]), g["_members"].tolist())
               for g in destination_groups(ctx, RANGE[0], RANGE[1], lowest)]
        assert got == _reference_groups(ctx, RANGE[0], RANGE[1], lowest)
    idx = np.array(sorted(rnd.sample(range(len(ctx.rows)), len(ctx.rows) // 2)), np.int64)
    assert (destination_hash(ctx.rows, idx) == destination_hash(ctx.rows[idx])).all()
    for reverse in (False, True):
        assert (connection_hash(ctx.rows, reverse, idx) == connection_hash(ctx.rows[idx], reverse)).all()
