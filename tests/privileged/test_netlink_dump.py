"""sock_diag dump and lookup against a real kernel, checked with `ss -tanoe`.

Every test runs in a throwaway namespace ``tl-nl-…`` holding the known
population of tests/data/netlink/population.py.
"""

from __future__ import annotations

import errno
import socket
import struct

import numpy as np
import pytest

import nlpopulation  # noqa: E402  (tests/privileged is on sys.path: conftest.py)

pytestmark = pytest.mark.privileged



P = nlpopulation.load()

from tcplinger.collect.netlink import codec, wire  # noqa: E402
from tcplinger.collect.netlink.dump import (ALL, DiagError, DiagSocket,  # noqa: E402
                                            DiagUnavailable, dump, lookup)
from tcplinger.model.states import TcpState, name as state_name, state_mask  # noqa: E402


@pytest.fixture(scope="module")
def world():
    with P.Netns("dump") as ns, P.Population(ns) as pop:
        yield ns, pop


def _records(table):
    cache: dict = {}
    return [table.record(i, address_cache=cache) for i in range(len(table))]


def _key(rec):
    return (rec.local.address, rec.local.port, rec.remote.address, rec.remote.port)


def test_dump_equals_ss(world):
    ns, pop = world
    table = ns.run(dump)
    ss = {line.cookie: line for line in P.parse_ss(ns.exec("ss", "-tanoe"))}
    recs = _records(table)
    assert len(recs) == len(ss) == len(pop.expected)
    for rec in recs:
        line = ss[rec.cookie]  # ss's sk: is the sock_diag cookie
        assert state_name(rec.state) == line.state
        assert (rec.local.address, rec.local.port) == line.local
        assert (rec.remote.address, rec.remote.port) == line.remote
        assert (rec.inode, rec.uid, int(rec.timer.kind)) == (line.inode, line.uid, line.timer)
        assert (rec.recv_q, rec.send_q, rec.shutdown) == (line.recv_q, line.send_q, line.shutdown)
    expected = {(*e.local, *e.remote): e for e in pop.expected}
    for rec in recs:
        e = expected[_key(rec)]
        assert state_name(rec.state) == e.state, e.label
        assert rec.timewait_type == e.timewait, e.label
        assert rec.family == e.family, e.label


def test_population_details(world):
    ns, pop = world
    by_label = {}
    recs = {_key(r): r for r in _records(ns.run(dump))}
    for e in pop.expected:
        by_label[e.label] = recs[(*e.local, *e.remote)]
    assert by_label["listen_nobody4"].uid == 65534
    assert by_label["est4_client"].timer.kind == 2  # SO_KEEPALIVE
    assert by_label["est4_client"].recv_q == 100
    assert by_label["half4_client"].shutdown == 2  # SEND_SHUTDOWN
    assert by_label["half4_server"].shutdown == 1  # RCV_SHUTDOWN: FIN received
    for label in ("orphan4_client", "orphan6_client", "tw4_client", "tw6_client"):
        r = by_label[label]
        assert r.timewait_type and r.inode == 0 and r.uid == 0 and r.timer.kind == 3
        assert r.shutdown is None and r.orphan
    # fin timeout 30 s in the namespace: the orphan's timer runs below it
    assert 0 < by_label["orphan4_client"].timer.expires_ms <= P.FIN_TIMEOUT * 1000
    assert 30_000 < by_label["tw4_client"].timer.expires_ms <= 60_000
    assert by_label["dual_server"].local.address == "::ffff:127.0.0.1"


def test_states_mask_is_applied_in_kernel(world):
    ns, _ = world
    cw = ns.run(dump, state_mask([TcpState.CLOSE_WAIT]))
    assert set(cw.rows["state"].tolist()) == {8} and len(cw) == 4
    fw2 = ns.run(dump, state_mask([TcpState.FIN_WAIT2]))
    # The FIN_WAIT2 bit matches full sockets and timewait-type orphans alike.
    assert set(fw2.rows["state"].tolist()) == {5}
    assert sorted(fw2.rows["timewait"].tolist()) == [False, False, True, True]


def test_families(world):
    ns, pop = world
    v4 = ns.run(dump, families=(socket.AF_INET,))
    v6 = ns.run(dump, families=(socket.AF_INET6,))
    assert set(v4.rows["family"].tolist()) == {2} and set(v6.rows["family"].tolist()) == {10}
    assert len(v4) + len(v6) == len(pop.expected)
    assert len(v4) == sum(e.family == socket.AF_INET for e in pop.expected)


def test_socket_stays_in_its_namespace(world):
    """A DiagSocket created inside the namespace keeps dumping that
    namespace from this (host) thread; one created here sees the host."""
    ns, _ = world
    inside = ns.run(DiagSocket)
    try:
        table = dump(sock=inside)  # called from the main thread
    finally:
        inside.close()
    ss_cookies = {line.cookie for line in P.parse_ss(ns.exec("ss", "-tanoe"))}
    assert set(table.rows["cookie"].tolist()) == ss_cookies
    with DiagSocket() as here:
        host = dump(sock=here)
    assert not set(host.rows["cookie"].tolist()) & ss_cookies


def test_tcp_info_matches_getsockopt(world):
    """INFO decoded from the dump equals getsockopt(TCP_INFO) on the same
    socket for the fields that do not move on an idle connection."""
    ns, pop = world
    table = ns.run(dump, tcp_info=True)
    assert table.info is not None
    index = {_key(r): i for i, r in enumerate(_records(table))}
    names = ("state ca_state retransmits probes backoff options wscale flags rto ato snd_mss "
             "rcv_mss unacked sacked lost retrans fackets last_data_sent last_ack_sent "
             "last_data_recv last_ack_recv pmtu rcv_ssthresh rtt rttvar snd_ssthresh snd_cwnd "
             "advmss reordering rcv_rtt rcv_space total_retrans").split()
    checked = 0
    for label, sock in pop.socks.items():
        raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        direct = dict(zip(names, struct.unpack("=8B24I", raw)))
        local, remote = sock.getsockname()[:2], (sock.getpeername()[:2] if "listen" not in label
                                                 else ("0.0.0.0" if sock.family == 2 else "::", 0))
        info = table.info[index[(*local, *remote)]]
        assert info["present"], label
        for field in ("state", "ca_state", "options", "rto", "snd_mss", "rcv_mss", "snd_cwnd",
                      "unacked", "retrans", "total_retrans"):
            assert int(info[field]) == direct[field], (label, field)
        checked += 1
    assert checked >= 12
    tw = table.rows["timewait"]
    assert not table.info["present"][tw].any()  # timewait-type: no INFO attribute


def test_lookup_each_socket(world):
    ns, pop = world
    diag = ns.run(DiagSocket)
    try:
        recs = _records(dump(sock=diag))
        for rec in recs:
            if rec.state == TcpState.LISTEN:
                continue
            got = lookup(rec.family, rec.local.address, rec.local.port, rec.remote.address,
                         rec.remote.port, rec.cookie, sock=diag)
            assert len(got) == 1 and int(got.rows["cookie"][0]) == rec.cookie
            assert int(got.rows["state"][0]) == rec.state
            assert bool(got.rows["timewait"][0]) == rec.timewait_type
        est = next(r for r in recs if r.state == TcpState.ESTABLISHED and r.family == 2)
        # A wrong cookie: not this socket (6.18 answers ENOENT, not ESTALE).
        assert len(lookup(2, est.local.address, est.local.port, est.remote.address,
                          est.remote.port, est.cookie ^ 1, sock=diag)) == 0
        assert len(lookup(2, "127.0.0.1", 1, "127.0.0.1", 2, sock=diag)) == 0
        with_info = lookup(2, est.local.address, est.local.port, est.remote.address,
                           est.remote.port, est.cookie, tcp_info=True, sock=diag)
        assert with_info.info is not None and with_info.info["present"][0]
    finally:
        diag.close()


def test_lookup_without_cookie_falls_back_to_listener(world):
    """The kernel's inet_lookup() answers a vanished 4-tuple with the
    listener on its local port; lookup() must not return that."""
    ns, _ = world
    diag = ns.run(DiagSocket)
    try:
        req = codec.encode_exact_request(2, src="127.0.0.1", sport=P.PORT, dst="127.0.0.1",
                                         dport=1, cookie=wire.NO_COOKIE, seq=diag.next_seq())
        raw = codec.decode_dump(b"".join(diag.exchange(req))).table
        assert len(raw) == 1 and int(raw.rows["state"][0]) == TcpState.LISTEN
        assert len(lookup(2, "127.0.0.1", P.PORT, "127.0.0.1", 1, sock=diag)) == 0
    finally:
        diag.close()


def test_unavailable_family_raises(world):
    ns, _ = world
    with pytest.raises(DiagUnavailable) as info:
        ns.run(dump, families=(3,))  # AF_AX25: no sock_diag handler
    assert info.value.errno == errno.ENOENT
    with pytest.raises(DiagError) as info:
        ns.run(dump, families=(99,))  # beyond AF_MAX
    assert info.value.errno == errno.EINVAL and not isinstance(info.value, DiagUnavailable)


def _bulk(count_pairs: int, count_tw: int):
    """Runs in the namespace: many held pairs and TIME_WAIT sockets."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 6000))
    lst.listen(1024)
    held = [lst]
    for i in range(count_pairs + count_tw):
        c = socket.create_connection(("127.0.0.1", 6000))
        s, _ = lst.accept()
        if i < count_pairs:
            held += [c, s]
        else:
            c.close()  # client first: it ends in TIME_WAIT
            s.close()
    return held


@pytest.mark.parametrize("bufsize", [32 << 10, 200 << 10])
def test_large_dump_across_batches(bufsize):
    """Thousands of sockets, a buffer that forces many batches and sink
    growth: the dump still equals ss, socket for socket."""
    with P.Netns("bulk") as ns:
        held = ns.run(_bulk, 3000, 3000)
        try:
            with ns.run(DiagSocket, bufsize=bufsize) as diag:
                diag.capacity_hint = 16  # force RowSink growth
                table = dump(ALL, sock=diag)
                again = dump(ALL, sock=diag)
            ss = P.parse_ss(ns.exec("ss", "-tanoe"))
        finally:
            for s in held:
                s.close()
    cookies = table.rows["cookie"]
    assert len(np.unique(cookies)) == len(cookies)
    assert set(cookies.tolist()) == {line.cookie for line in ss}
    assert len(table) >= 9000
    assert (table.rows["state"] == TcpState.TIME_WAIT).sum() >= 2900
    states = {line.cookie: line.state for line in ss}
    for cookie, state in zip(cookies.tolist(), table.rows["state"].tolist()):
        assert state_name(state) == states[cookie]
    assert len(again) == len(table)


def _per_family(states_mask, tcp_info):
    """What two SOCK_DIAG_BY_FAMILY dumps give, IPv4 then IPv6."""
    with DiagSocket() as sock:
        sink = codec.RowSink(64, tcp_info=tcp_info)
        for family in (socket.AF_INET, socket.AF_INET6):
            sock.dump_into(sink, family, states_mask, tcp_info=tcp_info)
        return sink.finish()


def _both(states_mask, tcp_info):
    with DiagSocket() as sock:
        sink = codec.RowSink(64, tcp_info=tcp_info)
        sock.dump_both_into(sink, states_mask, tcp_info=tcp_info)
        assert sock.both_families  # this kernel serves TCPDIAG_GETSOCK
        return sink.finish()


def _stable(table):
    """Columns that cannot move between two dumps of a quiet population
    (tcp_info's last_* times and timer expiries do)."""
    cols = ["family", "state", "sport", "dport", "saddr", "daddr", "cookie", "inode", "uid",
            "timewait", "shutdown"]
    out = [table.rows[c].tolist() for c in cols]
    if table.info is not None:
        out += [table.info[c].tolist() for c in ("present", "state", "snd_mss", "rcv_mss")]
    return out


@pytest.mark.parametrize("tcp_info", [False, True])
def test_both_families_in_one_walk_equals_two_dumps(world, tcp_info):
    """TCPDIAG_GETSOCK (one walk, both families interleaved) gives the rows
    of the two family dumps, in their order, with the same tcp_info."""
    ns, pop = world
    for mask in (ALL, state_mask([TcpState.CLOSE_WAIT, TcpState.FIN_WAIT2])):
        one, two = ns.run(_both, mask, tcp_info), ns.run(_per_family, mask, tcp_info)
        assert {2, 10} <= set(two.rows["family"].tolist()) or mask != ALL
        assert _stable(one) == _stable(two)
    assert len(ns.run(_both, ALL, tcp_info)) == len(pop.expected)


def test_snapshot_one_dump_equals_two_dumps(world):
    """A small namespace is dumped once with tcp_info for every state
    (collect/snapshot.py ONE_DUMP_MAX); the table equals the two dumps'
    (plain states, then the tcp_info states), tcp_info cleared elsewhere."""
    from tcplinger.collect import snapshot
    from tcplinger.model.states import OWNABLE

    ns, _ = world
    wanted, info = snapshot.ALL_STATES, frozenset(OWNABLE)
    once = ns.run(snapshot._dump_once, wanted, info, info)
    twice = ns.run(snapshot._dump, wanted, info)
    assert _stable(once) == _stable(twice)
    assert twice.info["present"].any()
    est = ns.run(snapshot._dump_once, wanted, info, info | {TcpState.ESTABLISHED})
    is_est = est.rows["state"] == TcpState.ESTABLISHED
    assert est.info["present"][is_est].all() and not once.info["present"][is_est].any()
