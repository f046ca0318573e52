"""/proc/net/tcp{,6} decoding against recorded kernel output.

tests/data/proc/netns-mix was recorded by tests/data/proc/record.py in a
namespace holding a known mix; its expected_sockets.json comes from a
decoder that shares no code with tcplinger and was checked against ``ss``
(sock_diag) at recording time.
"""

from __future__ import annotations

import json
import shutil
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tcplinger.collect import procfs
from tcplinger.collect.procfs import ProcFormatError, parse_proc_net_tcp, read_sockets
from tcplinger.model.states import TcpState

MIX = Path(__file__).resolve().parents[1] / "data" / "proc" / "netns-mix"
RECORDED = {"byteorder": "little", "user_hz": 100}  # the recording machine's


def _recorded_table():
    v4 = parse_proc_net_tcp((MIX / "net" / "tcp").read_text(), socket.AF_INET, **RECORDED)
    v6 = parse_proc_net_tcp((MIX / "net" / "tcp6").read_text(), socket.AF_INET6, **RECORDED)
    return procfs.SocketTable.concat([v4, v6])


def _as_expected(rec) -> dict:
    out = rec.to_json()
    return {k: out[k] for k in ("family", "state", "local", "remote", "timer", "uid",
                                "inode", "recv_q", "send_q", "timewait_type")}


def assert_is_the_recorded_mix(table):
    """Row by row, the independent decode in expected_sockets.json."""
    expected = json.loads((MIX / "expected_sockets.json").read_text())
    assert len(table) == len(expected) == 39
    for i, want in enumerate(expected):
        want = {k: v for k, v in want.items() if k != "role"}
        assert _as_expected(table.record(i)) == want, f"row {i}"


def test_recorded_mix_decodes_as_expected():
    assert_is_the_recorded_mix(_recorded_table())


def test_recorded_mix_matches_what_the_holder_created():
    """Independent of any decoder: what record.py knew about each socket."""
    manifest = json.loads((MIX / "manifest.json").read_text())
    table = _recorded_table()
    recs = [table.record(i) for i in range(len(table))]
    for m in manifest:
        hits = [r for r in recs
                if (r.state_name, r.local.to_json(), r.remote.to_json())
                == (m["state"], m["local"], m["remote"])]
        assert len(hits) == 1, m["role"]
        r = hits[0]
        assert (r.inode, r.uid, r.timewait_type) == (m["inode"], m["uid"], m["timewait_type"]), m
        if m["timer"]:
            assert r.timer.kind.name.lower() == m["timer"], m
    # the edge cases the mix exists for
    by_role = {}
    for m in manifest:
        by_role.setdefault(m["role"], []).append(m)
    assert len(by_role["orphan-finwait2-tw"]) == len(by_role["orphan-finwait2-full"]) == 2
    orphans = [r for r in recs if r.orphan]
    assert sorted(r.state_name for r in orphans) == ["FIN_WAIT2"] * 4 + ["TIME_WAIT"] * 2
    # an orphan FIN_WAIT2 that is still a full socket runs the keepalive timer
    assert {r.timer.kind.name for r in orphans if not r.timewait_type} == {"KEEPALIVE"}
    # ESTABLISHED with inode 0 (accept queue) is not an orphan
    unaccepted = [r for r in recs if r.state == TcpState.ESTABLISHED and r.inode == 0]
    assert len(unaccepted) == 2 and not any(r.orphan for r in unaccepted)


def test_columns_that_ss_and_proc_order_differently():
    table = _recorded_table()
    recs = [table.record(i) for i in range(len(table))]
    client = [r for r in recs if r.family == socket.AF_INET and r.local.port != 8000
              and r.remote.port == 8000 and r.recv_q == 1000]
    assert len(client) == 1  # rx_queue is the Recv-Q: 1000 unread bytes
    sender = [r for r in recs if r.timer.kind.name == "PROBE"]
    assert len(sender) == 2 and all(r.send_q > 0 and r.recv_q == 0 for r in sender)
    listen = [r for r in recs if r.state == TcpState.LISTEN]
    assert all(r.send_q == 0 for r in listen)  # not the backlog, unlike sock_diag
    assert sorted(r.recv_q for r in listen) == [0] * 5 + [1] * 2  # accept backlog
    assert sorted(r.uid for r in listen if r.uid) == [65534, 65534]


def test_ipv6_words_and_mapped_addresses():
    table = _recorded_table()
    addrs = {table.record(i).local.address for i in range(len(table))}
    assert {"fd77::1", "fd77::2", "::ffff:10.77.0.1", "10.77.0.1", "10.77.0.2", "::"} <= addrs


def test_cookie_and_shutdown_are_absent():
    rows = _recorded_table().rows
    assert (rows["cookie"] == 0).all() and (rows["shutdown"] == -1).all()


@pytest.mark.skipif(procfs.sys.byteorder != "little" or procfs.USER_HZ != 100,
                    reason="the recording is from a little-endian, USER_HZ=100 host")
def test_read_sockets_reads_both_files():
    assert_is_the_recorded_mix(read_sockets(MIX / "net"))


def test_read_sockets_without_ipv6(tmp_path):
    shutil.copy(MIX / "net" / "tcp", tmp_path / "tcp")
    table = read_sockets(tmp_path)
    assert len(table) == 19 and set(table.rows["family"]) == {socket.AF_INET}


def test_read_sockets_needs_tcp(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_sockets(tmp_path)


def test_header_only_and_empty_text():
    header = (MIX / "net" / "tcp").read_text().splitlines()[0]
    assert len(parse_proc_net_tcp(header + "\n", socket.AF_INET)) == 0
    assert len(parse_proc_net_tcp("", socket.AF_INET6)) == 0


@pytest.mark.parametrize("line", [
    "   0: 0100007F:1F41 00000000:0000 0A 00000000:00000000",  # truncated
    "   0: 0100007F1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1",
    "   0: 0100007F:1F41 00000000:0000 0A 00000000:0000000G 00:00000000 00000000 0 0 1",
    "garbage line that is long enough to have ten tokens in it yes",
])
def test_malformed_rows_raise(line):
    with pytest.raises(ProcFormatError):
        parse_proc_net_tcp(line + "\n", socket.AF_INET)


def test_wrong_family_is_an_error():
    with pytest.raises(ValueError):
        parse_proc_net_tcp("", socket.AF_UNIX)


def test_big_endian_printer():
    """A big-endian kernel prints the same address without the swap."""
    line = ("   0: 0A4D0002:8C37 0A4D0001:1F40 01 00000000:000003E8 00:00000000 "
            "00000000     0        0 253958 1 0000000000000000 20 4 33 11 -1\n")
    r = parse_proc_net_tcp(line, socket.AF_INET, byteorder="big").record(0)
    assert (str(r.local), str(r.remote)) == ("10.77.0.2:35895", "10.77.0.1:8000")


def test_small_chunks_give_the_same_table(monkeypatch):
    monkeypatch.setattr(procfs, "_CHUNK", 200)  # a row or two per chunk
    assert_is_the_recorded_mix(_recorded_table())


# --------------------------------------------------------------------------
# round trip through the kernel's own format strings (net/ipv4/tcp_ipv4.c)

def _kernel_line(sl, family, src, sport, dst, dport, state, tx, rx, tr, when, retr, uid,
                 probes, inode):
    def addr(raw: bytes) -> str:
        words = struct.unpack(f"<{len(raw) // 4}I", raw)  # host-order u32 words
        return "".join(f"{w:08X}" for w in words)
    if tr == 3:  # get_timewait4_sock
        return (f"{sl:4d}: {addr(src)}:{sport:04X} {addr(dst)}:{dport:04X} {state:02X} "
                f"{0:08X}:{0:08X} {3:02X}:{when:08X} {0:08X} {0:5d} {0:8d} {0:d} 3 "
                f"{0:016x}")
    return (f"{sl:4d}: {addr(src)}:{sport:04X} {addr(dst)}:{dport:04X} {state:02X} "
            f"{tx:08X}:{rx:08X} {tr:02X}:{when:08X} {retr:08X} {uid:5d} {probes:8d} "
            f"{inode:d} 1 {0:016x} 20 4 30 10 -1")


_rows = st.fixed_dictionaries({
    "sl": st.integers(0, 200000),
    "sport": st.integers(0, 65535), "dport": st.integers(0, 65535),
    "state": st.sampled_from([int(s) for s in TcpState if s != TcpState.NEW_SYN_RECV]),
    "tx": st.integers(0, 2**32 - 1), "rx": st.integers(0, 2**31 - 1),
    "tr": st.sampled_from([0, 1, 2, 3, 4]), "when": st.integers(0, 2**32 - 1),
    "retr": st.integers(0, 255), "uid": st.integers(0, 2**32 - 2),
    "probes": st.integers(0, 255), "inode": st.integers(0, 2**63),
})


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([socket.AF_INET, socket.AF_INET6]), st.lists(_rows, max_size=6),
       st.randoms(use_true_random=False))
def test_round_trip_through_kernel_format(family, rows, rnd):
    size = 4 if family == socket.AF_INET else 16
    lines, want = ["  sl  local_address rem_address   st tx_queue rx_queue tr"], []
    for r in rows:
        src, dst = rnd.randbytes(size), rnd.randbytes(size)
        lines.append(_kernel_line(r["sl"], family, src, r["sport"], dst, r["dport"],
                                  r["state"], r["tx"], r["rx"], r["tr"], r["when"],
                                  r["retr"], r["uid"], r["probes"], r["inode"]))
        tw = r["tr"] == 3
        want.append((src, dst, r["sport"], r["dport"], r["state"],
                     0 if tw else r["tx"], 0 if tw else r["rx"], r["tr"],
                     r["when"] * 10, 0 if tw else r["probes"] if r["tr"] in (2, 4) else r["retr"],
                     0 if tw else r["uid"], 0 if tw else r["inode"], tw))
    table = parse_proc_net_tcp("\n".join(lines) + "\n", family, byteorder="little",
                               user_hz=100)
    got = [(bytes(x["saddr"].tobytes()[:size]), bytes(x["daddr"].tobytes()[:size]),
            int(x["sport"]), int(x["dport"]), int(x["state"]), int(x["send_q"]),
            int(x["recv_q"]), int(x["timer"]), int(x["expires_ms"]), int(x["retrans"]),
            int(x["uid"]), int(x["inode"]), bool(x["timewait"])) for x in table.rows]
    assert got == want
    assert np.all(table.rows["family"] == family)
