"""sock_diag codec: recorded kernel replies and synthetic messages.

The fixtures in tests/data/netlink/*.dump were recorded from a real kernel
by tests/data/netlink/record.py; their ``expect:`` lines come from a plain
struct-based reference decoder that was checked against ``ss -tanoe``.
"""

from __future__ import annotations

import errno
import json
import socket
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcplinger.collect.netlink import codec, frames, wire
from tcplinger.model.table import SOCKET_DTYPE, TCP_INFO_FIELDS

DATA = Path(__file__).resolve().parent.parent / "data" / "netlink"
FIXTURES = sorted(DATA.glob("*.dump"))

pytestmark = pytest.mark.skipif(sys.byteorder != "little",
                                reason="fixtures were recorded on a little-endian host")


# --- fixture files ---------------------------------------------------------

class Fixture:
    def __init__(self, path: Path):
        self.path = path
        self.option: dict = {}
        self.request = b""
        self.datagrams: list[bytearray] = []
        self.expect: list[dict] = []
        self.result: dict = {}
        self.declared: list[int] = []
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, _, rest = line.partition(":")
            rest = rest.strip()
            if key == "option":
                self.option = json.loads(rest)
            elif key == "request":
                self.request = bytes.fromhex(rest)
            elif key == "datagram":
                self.datagrams.append(bytearray())
                self.declared.append(int(rest))
            elif key == "expect":
                self.expect.append(json.loads(rest))
            elif key == "result":
                self.result = json.loads(rest)
            else:  # "0010: 7c000000 ..." hex line; the offset is checked
                assert int(key, 16) == len(self.datagrams[-1]), f"{path}: offset {key}"
                self.datagrams[-1] += bytes.fromhex(rest.replace(" ", ""))
        for data, size in zip(self.datagrams, self.declared):
            # Hex lines cover whole aligned messages: the datagram length matches.
            assert len(data) == size, path

    @property
    def data(self) -> bytes:
        return b"".join(self.datagrams)


def _fixture_ids():
    return [p.stem for p in FIXTURES]


@pytest.fixture(params=FIXTURES, ids=_fixture_ids())
def fixture(request) -> Fixture:
    return Fixture(request.param)


def test_fixtures_recorded():
    names = {p.stem for p in FIXTURES}
    assert {"inet_all", "inet6_all", "inet_tcp_info", "destroy_close_wait"} <= names


def _check_rows(table, expected: list[dict], tcp_info: bool):
    assert len(table) == len(expected)
    rows = table.rows
    for i, want in enumerate(expected):
        got = {name: rows[name][i] for name in SOCKET_DTYPE.names}
        for name in SOCKET_DTYPE.names:
            value = got[name]
            if name in ("saddr", "daddr"):
                assert value.tobytes().hex() == want[name], (i, name)
            else:
                assert value == want[name], (i, name, value, want[name])
        if tcp_info:
            info = table.info[i]
            if want["tcp_info"] is None:
                assert not info["present"]
            else:
                assert info["present"]
                for name, _ in TCP_INFO_FIELDS:
                    assert info[name] == want["tcp_info"][name], (i, name)


def test_fixture_decodes_to_expected(fixture: Fixture):
    kind = fixture.option["kind"]
    if kind == "ack":
        assert codec.decode_ack(fixture.data) == fixture.result["errno"]
        return
    tcp_info = fixture.option["tcp_info"]
    chunk = codec.decode_dump(fixture.data, tcp_info=tcp_info)
    _check_rows(chunk.table, fixture.expect, tcp_info)
    assert chunk.done == fixture.result["done"]
    assert chunk.error == fixture.result["error"]
    assert (chunk.table.info is not None) == tcp_info


def test_fixture_datagram_by_datagram(fixture: Fixture):
    """Decoding each datagram alone and concatenating gives the same table."""
    if fixture.option["kind"] == "ack":
        return
    tcp_info = fixture.option["tcp_info"]
    whole = codec.decode_dump(fixture.data, tcp_info=tcp_info).table
    parts = [codec.decode_dump(d, tcp_info=tcp_info).table for d in fixture.datagrams]
    joined = np.concatenate([p.rows for p in parts])
    assert joined.tobytes() == whole.rows.tobytes()


def test_fixture_request_reencodes(fixture: Fixture):
    """The encoder produces byte for byte the request the kernel answered."""
    req = np.frombuffer(fixture.request[16:], wire.INET_DIAG_REQ_V2)[0]
    length, msg_type, flags, seq, _ = struct.unpack_from("=IHHII", fixture.request)
    assert length == len(fixture.request) == 72
    if fixture.option["kind"] == "dump":
        if "family" not in fixture.option:
            return  # deliberately broken requests (error fixtures)
        again = codec.encode_dump_request(fixture.option["family"], fixture.option["states"],
                                          tcp_info=fixture.option["tcp_info"], seq=seq)
    else:
        fam = int(req["family"])
        size = 4 if fam == socket.AF_INET else 16
        again = codec.encode_exact_request(
            fam, src=socket.inet_ntop(fam, req["src"].tobytes()[:size]), sport=int(req["sport"]),
            dst=socket.inet_ntop(fam, req["dst"].tobytes()[:size]), dport=int(req["dport"]),
            cookie=int(req["cookie_lo"]) | int(req["cookie_hi"]) << 32, msg_type=msg_type,
            seq=seq)
    assert again == fixture.request


def test_timewait_rule_on_recorded_replies():
    """Timewait-type rows: idiag_timer 3, no SHUTDOWN, inode 0, uid 0; as
    root they still carry INET_DIAG_MARK (96-byte messages), unprivileged
    they carry nothing (88 bytes)."""
    seen = 0
    for name in ("inet_all", "inet_all_unprivileged"):
        fx = Fixture(DATA / f"{name}.dump")
        rows = codec.decode_dump(fx.data).table.rows
        tw = rows["timewait"]
        assert tw.any()
        assert (rows["timer"][tw] == 3).all() and (rows["shutdown"][tw] == -1).all()
        assert (rows["inode"][tw] == 0).all() and (rows["uid"][tw] == 0).all()
        assert (rows["shutdown"][~tw] >= 0).all()
        assert set(rows["state"][tw].tolist()) == {5, 6}  # orphan FIN_WAIT2, TIME_WAIT
        seen += 1
        starts = frames.message_starts(np.frombuffer(fx.data, np.uint8))
        lens = np.frombuffer(fx.data, "=u4")[starts // 4]
        types = np.frombuffer(fx.data, "=u2")[starts // 2 + 2]
        tw_len = set(lens[types == 20][tw].tolist())
        assert tw_len == ({96} if name == "inet_all" else {88})
    assert seen == 2


def test_states_mask_fixture_holds_timewait_fin_wait2():
    fx = Fixture(DATA / "inet6_fin_wait2_close_wait.dump")
    rows = codec.decode_dump(fx.data).table.rows
    assert set(rows["state"].tolist()) == {5, 8}
    assert rows["timewait"][rows["state"] == 5].any()


def test_v4_mapped_addresses_in_inet6_dump():
    rows = codec.decode_dump(Fixture(DATA / "inet6_all.dump").data).table.rows
    mapped = bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1])
    assert any(r["saddr"].tobytes() == mapped for r in rows)


# --- synthetic messages ----------------------------------------------------

HDR = struct.Struct("=IHHII")


def _nla(nla_type: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), nla_type) + payload
    return raw + bytes(-len(raw) % 4)


def _sock_msg(seq: int, pid: int, s: dict, attrs: bytes) -> bytes:
    body = (struct.pack("=BBBB", s["family"], s["state"], s["timer"], s["retrans"])
            + struct.pack(">HH", s["sport"], s["dport"]) + s["saddr"] + s["daddr"]
            + struct.pack("=IIIIIIII", s["ifindex"], s["cookie"] & 0xFFFFFFFF, s["cookie"] >> 32,
                          s["expires_ms"], s["recv_q"], s["send_q"], s["uid"], s["inode"]))
    return HDR.pack(16 + len(body) + len(attrs), 20, 2, seq, pid) + body + attrs


def _done(seq: int, pid: int, err: int = 0) -> bytes:
    return HDR.pack(20, 3, 2, seq, pid) + struct.pack("=i", -err)


def _error(seq: int, pid: int, err: int) -> bytes:
    echoed = HDR.pack(72, 20, 0x301, seq, 0)
    return HDR.pack(36, 2, 0x100, seq, pid) + struct.pack("=i", -err) + echoed


u32 = st.integers(0, 2**32 - 1)
attr_noise = st.lists(st.tuples(st.sampled_from([11, 15, 21, 22, 4, 99]),
                                st.binary(max_size=12)), max_size=3)


@st.composite
def sockets(draw):
    family = draw(st.sampled_from([socket.AF_INET, socket.AF_INET6]))
    size = 4 if family == socket.AF_INET else 16

    def addr():
        return draw(st.binary(min_size=size, max_size=size)) + bytes(16 - size)

    timer = draw(st.integers(0, 4))
    s = {
        "family": family, "state": draw(st.integers(1, 12)), "timer": timer,
        "retrans": draw(st.integers(0, 255)), "sport": draw(st.integers(0, 65535)),
        "dport": draw(st.integers(0, 65535)), "saddr": addr(), "daddr": addr(),
        "ifindex": draw(u32), "cookie": draw(st.integers(0, 2**64 - 1)),
        "expires_ms": draw(u32), "recv_q": draw(u32), "send_q": draw(u32),
        "uid": draw(u32), "inode": draw(u32),
        "shutdown": draw(st.none() | st.integers(0, 3)),
        "info": draw(st.none() | st.binary(min_size=0, max_size=280)),
        "before": draw(attr_noise), "after": draw(attr_noise),
        "truncate": draw(st.booleans()),
    }
    return s


def _attrs(s: dict) -> tuple[bytes, int, bytes | None]:
    """Attribute bytes, and the shutdown/info the decoder must find."""
    out = b"".join(_nla(t, p) for t, p in s["before"])
    shutdown, info = -1, None
    if s["shutdown"] is not None:
        out += _nla(8, bytes([s["shutdown"]]))
        shutdown = s["shutdown"]
    if s["info"] is not None:
        out += _nla(2, s["info"])
        info = s["info"]
    out += b"".join(_nla(t, p) for t, p in s["after"])
    if s["truncate"]:
        # A last attribute claiming more bytes than the message has: the
        # walk must stop there (nla_ok()) without reading past the message.
        out += struct.pack("=HH", 200, 8) + b"\x03\0\0\0"
    return out, shutdown, info


#: struct tcp_info as include/uapi/linux/tcp.h declares it, up to
#: tcpi_total_retrans (struct module codes: B = __u8, I = __u32). The two
#: bitfield bytes after tcpi_options are "wscale" and "flags" here.
LINUX_TCP_INFO = (
    ("state", "B"), ("ca_state", "B"), ("retransmits", "B"), ("probes", "B"),
    ("backoff", "B"), ("options", "B"), ("wscale", "B"), ("flags", "B"),
    ("rto", "I"), ("ato", "I"), ("snd_mss", "I"), ("rcv_mss", "I"),
    ("unacked", "I"), ("sacked", "I"), ("lost", "I"), ("retrans", "I"), ("fackets", "I"),
    ("last_data_sent", "I"), ("last_ack_sent", "I"), ("last_data_recv", "I"),
    ("last_ack_recv", "I"),
    ("pmtu", "I"), ("rcv_ssthresh", "I"), ("rtt", "I"), ("rttvar", "I"),
    ("snd_ssthresh", "I"), ("snd_cwnd", "I"), ("advmss", "I"), ("reordering", "I"),
    ("rcv_rtt", "I"), ("rcv_space", "I"), ("total_retrans", "I"),
)


def _header_layout() -> dict[str, tuple[int, int]]:
    """name -> (offset, size), laid out by struct from the declaration."""
    out, fmt = {}, "="
    for name, code in LINUX_TCP_INFO:
        out[name] = (struct.calcsize(fmt), struct.calcsize("=" + code))
        fmt += code
    return out


TCP_INFO_LAYOUT = _header_layout()


def test_tcp_info_layout_written_out():
    """The written-out header against offsets known by heart (the fixed
    part the kernel has sent since 2.6 is 104 bytes)."""
    assert TCP_INFO_LAYOUT["rto"] == (8, 4) and TCP_INFO_LAYOUT["last_ack_recv"] == (56, 4)
    assert TCP_INFO_LAYOUT["total_retrans"] == (100, 4)
    assert set(name for name, _ in TCP_INFO_FIELDS) <= set(TCP_INFO_LAYOUT)


def _expected_info(raw: bytes) -> dict:
    """The fields tcplinger keeps, read from ``raw`` at the header's
    offsets (little-endian); 0 where the attribute is too short."""
    out = {}
    for name, _ in TCP_INFO_FIELDS:
        off, size = TCP_INFO_LAYOUT[name]
        if off + size <= len(raw):
            out[name] = int.from_bytes(raw[off:off + size], "little")
        else:
            out[name] = 0
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(socks=st.lists(sockets(), max_size=12), seq=u32, pid=u32,
       ending=st.sampled_from(["done", "done_err", "error", "none"]),
       err=st.integers(1, 133), tcp_info=st.booleans())
def test_synthetic_round_trip(socks, seq, pid, ending, err, tcp_info):
    data = b""
    expected = []
    for s in socks:
        attrs, shutdown, info = _attrs(s)
        data += _sock_msg(seq, pid, s, attrs)
        expected.append((s, shutdown, info))
    if ending == "done":
        data += _done(seq, pid)
    elif ending == "done_err":
        data += _done(seq, pid, err)
    elif ending == "error":
        data += _error(seq, pid, err)
    chunk = codec.decode_dump(data, tcp_info=tcp_info)
    assert chunk.done == (ending != "none")
    assert chunk.error == (err if ending in ("done_err", "error") else None)
    rows = chunk.table.rows
    assert len(rows) == len(socks)
    for i, (s, shutdown, info) in enumerate(expected):
        r = rows[i]
        for key in ("family", "state", "timer", "retrans", "sport", "dport", "expires_ms",
                    "recv_q", "send_q", "uid", "inode", "cookie"):
            assert int(r[key]) == s[key], key
        assert r["saddr"].tobytes() == s["saddr"] and r["daddr"].tobytes() == s["daddr"]
        assert bool(r["timewait"]) == (s["timer"] == 3)
        assert int(r["shutdown"]) == shutdown
        if tcp_info:
            got = chunk.table.info[i]
            # An empty INFO attribute counts as absent.
            assert bool(got["present"]) == bool(info)
            if info:
                want = _expected_info(info)
                assert {k: int(got[k]) for k in want} == want
        else:
            assert chunk.table.info is None


@settings(max_examples=100, deadline=None)
@given(socks=st.lists(sockets(), min_size=1, max_size=6), seq=st.integers(0, 3),
       pid=st.integers(0, 3))
def test_walk_survives_lookalike_headers(socks, seq, pid):
    """Addresses and attributes that contain the seq/pid words (tiny seq and
    pid make them common) must not derail the message walk."""
    data = b""
    for s in socks:
        s = dict(s, daddr=HDR.pack(88, 20, 2, seq, pid)[:16], truncate=False)
        data += _sock_msg(seq, pid, s, _attrs(s)[0] + _nla(15, struct.pack("=II", seq, pid)))
    buf = np.frombuffer(data, np.uint8)
    assert codec.message_starts(buf).tolist() == frames.scalar_starts(buf).tolist()
    assert len(codec.decode_dump(data).table) == len(socks)


def test_short_tcp_info_fields_are_zero_beyond_length():
    s = {"family": 2, "state": 1, "timer": 0, "retrans": 0, "sport": 1, "dport": 2,
         "saddr": bytes(16), "daddr": bytes(16), "ifindex": 0, "cookie": 5, "expires_ms": 0,
         "recv_q": 0, "send_q": 0, "uid": 0, "inode": 9}
    info = bytes(range(1, 61))  # ends after last_ack_recv (offset 56..60)
    data = _sock_msg(1, 0, s, _nla(8, b"\0") + _nla(2, info)) + _done(1, 0)
    got = codec.decode_dump(data, tcp_info=True).table.info[0]
    assert got["present"]
    assert int(got["rto"]) == int.from_bytes(info[8:12], "little")
    assert int(got["last_ack_recv"]) == int.from_bytes(info[56:60], "little")
    assert int(got["rtt"]) == 0 and int(got["total_retrans"]) == 0


def test_tcp_info_at_buffer_end_is_read_safely():
    """The last message's short tcp_info ends the buffer: no over-read."""
    s = {"family": 2, "state": 1, "timer": 0, "retrans": 0, "sport": 1, "dport": 2,
         "saddr": bytes(16), "daddr": bytes(16), "ifindex": 0, "cookie": 5, "expires_ms": 0,
         "recv_q": 0, "send_q": 0, "uid": 0, "inode": 9}
    data = _sock_msg(1, 0, s, _nla(8, b"\x01") + _nla(2, b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x00\x00\x00"))
    got = codec.decode_dump(data, tcp_info=True).table
    assert int(got.info[0]["state"]) == 1 and int(got.info[0]["rto"]) == 9
    assert int(got.rows[0]["shutdown"]) == 1


@given(family=st.sampled_from([2, 10]), mask=u32, tcp_info=st.booleans(), seq=u32)
def test_dump_request_round_trip(family, mask, tcp_info, seq):
    raw = codec.encode_dump_request(family, mask, tcp_info=tcp_info, seq=seq)
    length, msg_type, flags, got_seq, pid = HDR.unpack_from(raw)
    assert (length, msg_type, flags, got_seq, pid) == (72, 20, 0x301, seq, 0)
    req = np.frombuffer(raw[16:], wire.INET_DIAG_REQ_V2)[0]
    assert (int(req["family"]), int(req["protocol"]), int(req["states"])) == (family, 6, mask)
    assert int(req["ext"]) == (2 if tcp_info else 0)


@given(v6=st.booleans(), src=st.binary(min_size=16, max_size=16),
       dst=st.binary(min_size=16, max_size=16), sport=st.integers(0, 65535),
       dport=st.integers(0, 65535), cookie=st.integers(0, 2**64 - 1),
       destroy=st.booleans(), seq=u32)
def test_exact_request_round_trip(v6, src, dst, sport, dport, cookie, destroy, seq):
    family = socket.AF_INET6 if v6 else socket.AF_INET
    size = 16 if v6 else 4
    src_text = socket.inet_ntop(family, src[:size])
    dst_text = socket.inet_ntop(family, dst[:size])
    msg_type = wire.SOCK_DESTROY if destroy else wire.SOCK_DIAG_BY_FAMILY
    raw = codec.encode_exact_request(family, src=src_text, sport=sport, dst=dst_text,
                                     dport=dport, cookie=cookie, msg_type=msg_type, seq=seq)
    length, got_type, flags, got_seq, _ = HDR.unpack_from(raw)
    assert (length, got_type, got_seq) == (72, msg_type, seq)
    assert flags == (wire.NLM_F_REQUEST | (wire.NLM_F_ACK if destroy else 0))
    req = np.frombuffer(raw[16:], wire.INET_DIAG_REQ_V2)[0]
    assert req["src"].tobytes() == src[:size] + bytes(16 - size)
    assert req["dst"].tobytes() == dst[:size] + bytes(16 - size)
    assert (int(req["sport"]), int(req["dport"])) == (sport, dport)
    assert raw[20:24] == b"\xff\xff\xff\xff"
    # The kernel reads the cookie as two host-order u32 halves, low first.
    assert struct.unpack_from("=II", raw, 64) == (cookie & 0xFFFFFFFF, cookie >> 32)


@pytest.mark.parametrize("err", [0, errno.ENOENT, errno.EOPNOTSUPP, errno.EPERM])
def test_decode_ack(err):
    assert codec.decode_ack(_error(7, 1, err)) == err


def test_decode_ack_without_error_message():
    with pytest.raises(codec.DecodeError):
        codec.decode_ack(_done(1, 1))


@pytest.mark.parametrize("data", [
    HDR.pack(12, 20, 2, 1, 1),                        # nlmsg_len below the header size
    HDR.pack(200, 20, 2, 1, 1) + bytes(84),           # nlmsg_len beyond the data
    HDR.pack(40, 20, 2, 1, 1) + bytes(24),            # inet_diag message too short
    HDR.pack(20, 3, 2, 1, 1) + bytes(4) + bytes(8),   # trailing bytes that are no message
])
def test_malformed_framing_raises(data):
    with pytest.raises(codec.DecodeError):
        codec.decode_dump(data)


def test_empty_input():
    chunk = codec.decode_dump(b"", tcp_info=True)
    assert (len(chunk.table), chunk.done, chunk.error) == (0, False, None)
    assert chunk.table.info is not None and len(chunk.table.info) == 0


@pytest.mark.parametrize("name", ["inet_all", "inet6_tcp_info", "inet_all_unprivileged"])
def test_batches_into_one_sink_equal_whole_decode(name):
    """dump() decodes datagram batches into one growing sink, reading from
    a receive buffer whose bytes past the batch are stale: same table."""
    fx = Fixture(DATA / f"{name}.dump")
    tcp_info = fx.option["tcp_info"]
    whole = codec.decode_dump(fx.data, tcp_info=tcp_info).table
    room = np.full(1 << 16, 0xFF, np.uint8)  # stale bytes after every batch
    sink = codec.RowSink(2, tcp_info=tcp_info)  # forces growth
    for datagram in fx.datagrams:
        room[:len(datagram)] = np.frombuffer(bytes(datagram), np.uint8)
        codec.decode_into(room, len(datagram), sink, tcp_info=tcp_info)
    table = sink.finish()
    assert table.rows.tobytes() == whole.rows.tobytes()
    if tcp_info:
        assert table.info.tobytes() == whole.info.tobytes()


def test_many_messages_span_blocks():
    """More messages than one decode block, mixed lengths (96/124/132)."""
    msgs = []
    for name in ("inet_all", "inet6_all"):
        data = Fixture(DATA / f"{name}.dump").data
        buf = np.frombuffer(data, np.uint8)
        for start in frames.scalar_starts(buf):
            length, mtype = HDR.unpack_from(data, int(start))[:2]
            if mtype == 20:
                m = bytearray(data[start:start + length])
                struct.pack_into("=II", m, 8, 77, 88)  # one seq and port id, as in one dump
                msgs.append(bytes(m))
    count = 3 * 8192 + 17
    body = bytearray()
    for i in range(count):
        m = bytearray(msgs[i % len(msgs)])
        struct.pack_into("=Q", m, 60, i + 1)  # cookie = position
        body += m
    chunk = codec.decode_dump(bytes(body) + _done(77, 88))
    rows = chunk.table.rows
    assert chunk.done and len(rows) == count
    assert rows["cookie"].tolist() == list(range(1, count + 1))
    per = codec.decode_dump(b"".join(msgs[:len(msgs)])).table.rows
    assert rows["state"][:len(per)].tolist() == per["state"].tolist()
    assert (rows["shutdown"][~rows["timewait"]] >= 0).all()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(template=sockets(), variants=st.lists(st.tuples(sockets(), st.booleans()), max_size=10),
       seq=u32, pid=u32)
def test_messages_sharing_the_first_layout(template, variants, seq, pid):
    """Most messages of a real dump share the first one's attribute layout;
    the decoder reads INFO at that offset for them (columns.py
    _info_where_first_is) and walks the others.  Both must give what the
    attributes say, whether a message copies the layout or not."""
    socks = [template] + [dict(s, before=template["before"], after=template["after"],
                               shutdown=template["shutdown"], truncate=template["truncate"],
                               info=None if template["info"] is None or s["info"] is None
                               else s["info"][:len(template["info"])].ljust(len(template["info"]), b"\x07"))
                          if copy else s for s, copy in variants]
    data = b""
    expected = []
    for s in socks:
        attrs, shutdown, info = _attrs(s)
        data += _sock_msg(seq, pid, s, attrs)
        expected.append((shutdown, info))
    table = codec.decode_dump(data + _done(seq, pid), tcp_info=True).table
    for i, (shutdown, info) in enumerate(expected):
        assert int(table.rows["shutdown"][i]) == shutdown
        assert bool(table.info["present"][i]) == bool(info)
        if info:
            want = _expected_info(info)
            assert {k: int(table.info[i][k]) for k in want} == want


def test_layout_shortcut_checks_types_and_shutdown():
    """Two messages that look like the first one by their attribute lengths
    but are not: INFO elsewhere (same lengths, other types), and SHUTDOWN
    after INFO where the first message had none before it."""
    base = {"family": 2, "state": 8, "timer": 0, "retrans": 0, "sport": 1, "dport": 2,
            "saddr": bytes(16), "daddr": bytes(16), "ifindex": 0, "cookie": 5,
            "expires_ms": 0, "recv_q": 0, "send_q": 0, "uid": 0, "inode": 9}
    info = bytes(range(104))
    mark = _nla(15, b"\x01\x00\x00\x00")
    first = _sock_msg(1, 1, base, _nla(8, b"\x01") + mark + _nla(2, info))
    # same lengths at the same offsets (8, 8, 108): INFO is the 8-byte one
    swapped = _sock_msg(1, 1, base, _nla(8, b"\x02") + _nla(2, b"\x05\x00\x00\x00")
                        + _nla(15, info))
    no_shutdown_first = _sock_msg(1, 1, base, mark + _nla(2, info))
    shutdown_after = _sock_msg(1, 1, base, mark + _nla(2, info) + _nla(8, b"\x03"))
    for data, want in ((first + swapped, [(1, info), (2, b"\x05\x00\x00\x00")]),
                       (no_shutdown_first + shutdown_after, [(-1, info), (3, info)])):
        table = codec.decode_dump(data + _done(1, 1), tcp_info=True).table
        for i, (shutdown, raw) in enumerate(want):
            assert int(table.rows["shutdown"][i]) == shutdown
            expected = _expected_info(raw)
            assert {k: int(table.info[i][k]) for k in expected} == expected


def _rss_kb(array: np.ndarray) -> int:
    """Rss (kB) of the mappings holding ``array``'s bytes (/proc/self/smaps;
    numpy's madvise(MADV_HUGEPAGE) splits one allocation into several)."""
    start = array.ctypes.data
    end = start + array.nbytes
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo < end and start < hi
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


def test_rows_dumped_without_tcp_info_cost_no_tcp_info_memory():
    """A sink with tcp_info takes a plain dump (700k of 1M sockets on the
    bench population) and a dump with tcp_info: the plain rows read as
    absent (zeroes) and their tcp_info pages are never written, so they
    stay off the process's RSS; the rows with tcp_info decode as always."""
    s = {"family": 2, "state": 1, "timer": 0, "retrans": 0, "sport": 1, "dport": 2,
         "saddr": bytes(16), "daddr": bytes(16), "ifindex": 0, "cookie": 5, "expires_ms": 0,
         "recv_q": 0, "send_q": 0, "uid": 0, "inode": 9}
    plain = _sock_msg(1, 0, s, _nla(8, b"\0"))
    n = 520_000
    # 37 MB of tcp_info: above glibc's largest mmap threshold (32 MiB), so
    # a mapping of its own whatever the test process allocated before
    sink = codec.RowSink(n + 1, tcp_info=True)
    room = np.frombuffer(plain * 8192, np.uint8).copy()
    for _ in range(n // 8192):
        codec.decode_into(room, room.size, sink)
    info = bytes(range(1, 105))
    with_info = _sock_msg(1, 0, dict(s, state=8), _nla(8, b"\x01") + _nla(2, info)) + _done(1, 0)
    done, err = codec.decode_into(np.frombuffer(with_info, np.uint8).copy(), len(with_info), sink,
                                  tcp_info=True)
    assert done and err is None
    table = sink.finish()
    rows = n // 8192 * 8192
    assert len(table) == rows + 1
    assert not table.info["present"][:rows].any() and table.info["present"][rows]
    assert int(table.info["rto"][rows]) == int.from_bytes(info[8:12], "little")
    assert not table.info.view(np.uint8).reshape(len(table), -1)[:rows].any()
    # 516k rows x 71 bytes = 37 MB had they been written; reading them
    # (above) maps the kernel's zero page, which is not RSS. The one row
    # written may fault in a whole transparent huge page (2 MiB): numpy
    # madvises its large arrays MADV_HUGEPAGE (THP is "madvise" here). A
    # full run measured 2,052 kB; without the change 13,636 kB: hence 4 MiB.
    assert _rss_kb(table.info) < 4096
    assert _rss_kb(table.rows) > 10_000  # the measure sees written pages
