"""Captured segments (tests/data/lab/record_pcap.py, a real tcpdump -w
capture on both router interfaces) parse and are attributed: dropped by
the router, retransmitted, forged by a middlebox, keepalive, reset."""

import json
import struct
from pathlib import Path

import pytest

from tcplinger.lab import packets
from tcplinger.lab.pcap import Segment, flag_letters, read_segments

DATA = Path(__file__).resolve().parents[1] / "data" / "lab"


def recorded():
    exp = json.loads((DATA / "fin_dropped.expected.json").read_text())
    segs = {s: read_segments((DATA / f"fin_dropped.{s}.pcap").read_bytes())
            for s in ("client", "server")}
    return exp, segs


def test_recorded_capture_attributes_as_recorded():
    exp, segs = recorded()
    t0 = min(x.t for v in segs.values() for x in v)
    caps = packets.split(segs["client"], segs["server"], exp["client"], exp["server"])
    got = packets.attribute(caps, {exp["client"]: "client", exp["server"]: "server"}, t0=t0,
                            router="nftables")
    assert [p.to_json() for p in got] == exp["packets"]


def test_recorded_capture_story():
    exp, segs = recorded()
    # the client-side interface saw everything; the server side never saw a FIN
    assert [s.flags for s in segs["client"]].count("F.") == 4
    assert all("F" not in s.flags for s in segs["server"])
    pk = exp["packets"]
    fins = [p for p in pk if p["flags"] == "F."]
    assert all(p.get("dropped_by") == "nftables" for p in fins)
    assert [p.get("tag", "") for p in fins] == ["", "retransmission", "retransmission",
                                                "retransmission"]
    gaps = [round(b["t_s"] - a["t_s"], 1) for a, b in zip(fins, fins[1:])]
    assert gaps == [0.2, 0.2, 0.4]  # loss probe, then RTO backing off


def _seg(t, src, dst, seq, ack, flags, length=0, sport=None, dport=None):
    ports = {"10.0.0.1": 40000, "10.0.1.1": 80}
    return Segment(t, src, sport or ports[src], dst, dport or ports[dst], seq, ack, flags, 500,
                   length)


C, S = "10.0.0.1", "10.0.1.1"
NAMES = {C: "client", S: "server"}


def test_forged_segments_are_the_middleboxes():
    fwd = _seg(1.0, C, S, 100, 200, 0x10)
    forged = _seg(5.0, S, C, 199, 100, 0x10)  # leaves the router, never arrived
    caps = packets.Captures(client_side_in=[fwd], server_side_out=[fwd],
                            client_side_out=[forged])
    out = packets.attribute(caps, NAMES, t0=0.0, forger="ipfw")
    assert [(p.src, p.dst, p.tag, p.dropped_by) for p in out] == [
        ("client", "server", "", None), ("ipfw", "client", "forged-keepalive", None)]


def test_keepalive_and_reset_tags():
    data = _seg(1.0, C, S, 100, 200, 0x18, length=10)  # bytes 100..109
    ka = _seg(3.0, C, S, 109, 200, 0x10)  # snd_nxt - 1, no data: a keepalive probe
    dup = _seg(3.1, C, S, 110, 200, 0x10)  # a plain ACK
    rst = _seg(4.0, S, C, 200, 0, 0x04)
    caps = packets.Captures(client_side_in=[data, ka, dup], server_side_out=[data, ka, dup],
                            server_side_in=[rst], client_side_out=[rst])
    out = packets.attribute(caps, NAMES, t0=0.0)
    assert [p.tag for p in out] == ["", "keepalive", "", "reset"]


def test_drops_need_the_same_tcp_header_on_both_sides():
    a = _seg(1.0, C, S, 100, 200, 0x11)
    b = _seg(1.0005, C, S, 100, 201, 0x11)  # another ack: not the same segment
    caps = packets.Captures(client_side_in=[a], server_side_out=[b])
    out = packets.attribute(caps, NAMES, t0=0.0, router="conntrack", forger="router")
    assert out[0].dropped_by == "conntrack" and out[1].src == "router"


def test_nothing_is_judged_after_the_observation_ends():
    """The captures are stopped after the run's end: a keepalive probe
    that crossed then was seen arriving on the server side while the
    client side's capture had stopped. It is out of the timeline, not a
    drop (cw-alive once showed such a probe "dropped" with a live peer);
    a drop before the end still is one."""
    data = _seg(1.0, S, C, 100, 200, 0x18, length=10)
    ka1 = _seg(3.0, S, C, 109, 200, 0x10)
    ack1 = _seg(3.0001, C, S, 200, 110, 0x10)
    lost = _seg(5.0, S, C, 109, 200, 0x10)  # dropped by the router, in the run
    ka3 = _seg(7.0, S, C, 109, 200, 0x10)   # after the end: its copy was not captured
    caps = packets.Captures(server_side_in=[data, ka1, lost, ka3], client_side_out=[data, ka1],
                            client_side_in=[ack1], server_side_out=[ack1])
    out = packets.attribute(caps, NAMES, t0=0.0, router="nftables", until=6.0)
    assert [(p.t_s, p.tag, p.dropped_by) for p in out] == [
        (1.0, "", None), (3.0, "keepalive", None), (3.0001, "", None),
        (5.0, "keepalive", "nftables")]
    late = packets.attribute(caps, NAMES, t0=0.0, router="nftables")
    assert late[-1].t_s == 7.0 and late[-1].dropped_by == "nftables"  # without the cut


def test_flags_and_pcap_formats():
    assert flag_letters(0x02) == "S" and flag_letters(0x14) == "R."
    with pytest.raises(ValueError):
        read_segments(b"\x0a\x0d\x0d\x0a" + bytes(40))  # pcapng
    assert read_segments(b"") == []
    # a nanosecond, big-endian, Linux-cooked capture of an IPv6 RST
    tcp = struct.pack("!HHIIBBHHH", 80, 5000, 7, 0, 5 << 4, 0x04, 0, 0, 0)
    ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(tcp), 6, 64,
                      bytes(15) + b"\x01", bytes(15) + b"\x02")
    frame = struct.pack("!HHH8sH", 0, 1, 6, bytes(8), 0x86DD) + ip6 + tcp
    blob = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 113)
    blob += struct.pack(">IIII", 10, 500_000_000, len(frame), len(frame)) + frame
    [seg] = read_segments(blob)
    assert (seg.t, seg.src, seg.dst, seg.flags, seg.seq) == (10.5, "::1", "::2", "R", 7)
