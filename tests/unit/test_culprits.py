"""Culprits of sockets no process holds (diagnose/culprits.py), on built
tables: grouped by listening port or destination, never by ephemeral
port; the listener's owner on the server side; on the client side the
holders of sockets to the same destination, else the processes the
tracepoint saw connecting to it (--interval); the fixes name programs we
measured and fall back to generic ones for every other program."""

from dataclasses import replace

from tcplinger.diagnose import culprits, process_text
from tcplinger.diagnose.builder import SocketBuilder, namespace, owners_for
from tcplinger.diagnose.context import NsContext
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.inputs import Connects
from tcplinger.i18n import Messages
from tcplinger.model.socket import Owner

EN = Messages("en")


def proxy_in_front_of_upstream(connects=None, server_comm="nginx"):
    """TIME_WAIT on the upstream's :8084 (it closed first), no connection to
    it open at the snapshot: what nginx without upstream keep-alive leaves."""
    b = SocketBuilder()
    b.add("LISTEN", "127.0.0.1:8084", inode=1)
    b.add("LISTEN", "127.0.0.1:8080", inode=2)
    b.add("TIME_WAIT", "127.0.0.1:8084", "127.0.0.1:40000", vary="dport", inode=0, timer=3,
          expires_ms=30_000, count=600)
    owners = owners_for(1, 1, 100, server_comm) | owners_for(2, 1, 200, "nginx")
    ns = namespace(b.table(), owners=owners, sysctls={"tcp_max_tw_buckets": 1000})
    return replace(ns, connects=connects)


def worker(pid=201):
    return Owner(pid=pid, comm="nginx", fd=-1, cmdline="nginx: worker process")


def tw_finding(ns):
    [f] = [f for f in diagnose([ns]) if f.rule == "time-wait-pressure"]
    return f


def test_server_side_group_by_listening_port_with_the_listener_owner():
    f = tw_finding(proxy_in_front_of_upstream())
    [g] = f.evidence["groups"]
    assert (g["side"], g["where"], g["count"]) == ("server", ":8084", 600)
    assert [(c["pid"], c["basis"]) for c in g["culprits"]] == [(100, "listener")]
    assert g["clients"] == []  # nobody holds a connection to it, no tracepoint
    text = " ".join(t.render(EN) for t in f.facts)
    assert "Local ports" not in text and "40000" not in text


def test_clients_seen_connecting_by_the_tracepoint():
    seen = Connects(3.0, ((worker(), 2, "127.0.0.1", 8084, 12_000),
                          (worker(202), 2, "127.0.0.1", 9999, 5)))
    f = tw_finding(proxy_in_front_of_upstream(seen))
    [g] = f.evidence["groups"]
    assert [(c["pid"], c["basis"], c["connects_per_s"]) for c in g["clients"]] == \
        [(201, "connects", 4000.0)]
    facts = [t.render(EN) for t in f.facts]
    assert any("Clients of :8084 on this host: nginx (pid 201: nginx: worker process), seen "
               "opening 4000 connections per second to it in the last 3.0 s" in t for t in facts)
    fixes = [x.text.render(EN) for x in f.fixes]
    # the proxy's fix first: it makes the upstream close a connection per request
    assert "keepalive 32" in fixes[0] and "pid 201" in fixes[0]


def test_holders_first_then_the_other_processes_seen_connecting():
    """A process holding a connection to the destination now comes first;
    one the tracepoint saw connecting (a curl that connected once and has
    exited, named from the details read while it lived) follows; a holder
    also seen connecting is listed once, as a holder."""
    curl = Owner(pid=4321, comm="curl", fd=-1, cmdline="curl -s http://127.0.0.1:8084/")
    ns = proxy_in_front_of_upstream(Connects(3.0, ((worker(), 2, "127.0.0.1", 8084, 30),
                                                   (curl, 2, "127.0.0.1", 8084, 6))))
    b = SocketBuilder()
    b.add("ESTABLISHED", "127.0.0.1:50000", "127.0.0.1:8084", inode=7)
    table = type(ns.table).concat([ns.table, b.table()])
    ns = replace(ns, table=table, owners=dict(ns.owners) | owners_for(7, 1, worker().pid, "nginx"))
    [g] = tw_finding(ns).evidence["groups"]
    assert [(c["pid"], c["basis"]) for c in g["clients"]] == \
        [(worker().pid, "destination"), (4321, "connects")]
    assert g["clients"][1]["connects_per_s"] == 2.0


def test_programs_without_a_named_fix_get_the_generic_one():
    """lighttpd, haproxy, a Go server: no comm-specific fix, a generic one
    that names the program and the usual knobs."""
    f = tw_finding(proxy_in_front_of_upstream(server_comm="lighttpd"))
    fixes = [x.text.render(EN) for x in f.fixes]
    assert any(t.startswith("lighttpd (pid 100) closes connections on :8084 first") and
               "server.max-keep-alive-idle" in t for t in fixes)


def test_client_side_groups_by_destination():
    b = SocketBuilder()
    b.add("TIME_WAIT", "10.0.0.1:40000", "10.0.0.7:5432", vary="sport", inode=0, timer=3,
          expires_ms=30_000, count=30)
    b.add("TIME_WAIT", "10.0.0.1:41000", "10.0.0.8:443", vary="sport", inode=0, timer=3,
          expires_ms=30_000, count=10)
    b.add("ESTABLISHED", "10.0.0.1:50000", "10.0.0.7:5432", inode=9)
    ns = namespace(b.table(), owners=owners_for(9, 1, 300, "java"))
    ctx = NsContext(ns)
    found = culprits.groups(ctx, [i for i in range(40)])
    assert [(g.side, g.where, len(g.rows)) for g in found] == \
        [("client", "10.0.0.7:5432", 30), ("client", "10.0.0.8:443", 10)]
    assert [(c.pid, c.basis) for c in found[0].culprits] == [(300, "destination")]
    assert found[1].culprits == ()
    facts = [t.render(EN) for t in culprits.group_facts(ctx, found)]
    assert facts[1].startswith("10 towards 10.0.0.8:443: no process holds a socket to it now")
    fixes = [x.text.render(EN) for x in culprits.group_fixes(ctx, found)]
    assert fixes == ["java (pid 300) opens and closes connections to 10.0.0.7:5432: reuse them "
                     "(keep-alive, a connection pool)."]


def test_who_says_the_command_line_only_when_it_says_more():
    assert process_text.who(7, "python3", "python3 leaky_backend.py 9000").render(EN) == \
        "python3 (pid 7: python3 leaky_backend.py 9000)"
    assert process_text.who(42, "java", "java").render(EN) == "java (pid 42)"
    zh = Messages("zh")
    assert process_text.who(42, "java").render(zh) == "java（pid 42）"
    refs = [process_text.ref(Owner(pid=p, comm="w", fd=1)) for p in range(5)]
    from tcplinger.diagnose.finding import Text
    assert Text("rule.common.group.local_clients",
                {"where": ":80", "who": process_text.who_text(refs)}).render(EN) == \
        "Clients of :80 on this host: w (pid 0), w (pid 1), w (pid 2) and 2 more (they hold " \
        "connections to it now)."


def _reference_clients(ctx, family, addr, port, limit=5):
    """clients_of()'s holders as written before it read only the held rows
    towards the port (a scan of every held row's copy)."""
    import numpy as np
    from tcplinger.model.states import TcpState
    held = np.flatnonzero((ctx.rows["inode"] != 0) & (ctx.state != int(TcpState.LISTEN)))
    rows = ctx.rows[held]
    key = np.frombuffer(bytes(addr).ljust(16, b"\0"), dtype=rows["daddr"].dtype)[0]
    same = (rows["dport"] == port) & (rows["daddr"] == key) & (rows["family"] == family)
    counts: dict[int, list] = {}
    for ino in rows["inode"][same].tolist():
        for o in (ctx.inp.owners or {}).get(int(ino), ())[:1]:
            counts.setdefault(o.pid, [o, 0])[1] += 1
    ranked = sorted(counts.values(), key=lambda e: (-e[1], e[0].pid))
    return tuple(process_text.ref(o, "destination", "x") for o, _ in ranked[:limit])


def test_clients_of_reads_the_held_rows_towards_the_port_as_a_scan_of_all():
    """Random tables (IPv4, IPv6, v4-mapped, equal ports across families,
    listeners, orphans): the holders found through held_rows() are those a
    scan of every row finds, for every destination and a missing one."""
    import random
    import socket
    rnd = random.Random(7)
    addrs = ("10.0.0.7", "10.0.0.8", "fd00::7", "::ffff:10.0.0.7")
    found = 0
    for _ in range(30):
        b, owners, inode = SocketBuilder(), {}, 1
        for _ in range(rnd.randrange(1, 60)):
            a = rnd.choice(addrs)
            remote = f"[{a}]:{rnd.choice((80, 443, 5432))}" if ":" in a else \
                f"{a}:{rnd.choice((80, 443, 5432))}"
            local = "[fd00::1]:50000" if ":" in a else "10.0.0.1:50000"
            state = rnd.choice(("ESTABLISHED", "CLOSE_WAIT", "TIME_WAIT", "LISTEN"))
            ino = 0 if state == "TIME_WAIT" else inode
            b.add(state, local, remote, inode=ino)
            if ino:
                owners |= owners_for(ino, 1, rnd.choice((300, 301, 302)), "java")
            inode += 1
        ctx = NsContext(namespace(b.table(), owners=owners))
        held = culprits.held_rows(ctx)
        for a in addrs + ("10.0.0.9",):
            family = socket.AF_INET6 if ":" in a else socket.AF_INET
            raw = socket.inet_pton(family, a)
            for port in (80, 443, 5432, 8080):
                want = _reference_clients(ctx, family, raw, port)
                assert culprits.clients_of(ctx, family, raw, port, "x", 5, held) == want
                assert culprits.clients_of(ctx, family, raw, port, "x") == want
                found += bool(want)
    assert found > 50
