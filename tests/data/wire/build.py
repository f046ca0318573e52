"""Hand-built captures for the corner cases of tests/unit/test_wire_cases.py.

Run ``python tests/data/wire/build.py`` to (re)write, for each case in
CASES, ``NAME.pcap`` (or ``.pcapng``) and ``NAME.expected.json``. The
expectations are written here by hand, from Zeek's documented rules and
RFC 793's state diagram (docs/wire.md), next to the packets they are about;
they are never produced by tcplinger.

A case is a list of packets ``P(t, sender, flags, seq, ack, ...)`` between
a client ``C`` (10.1.0.1:40000 unless said) and a server ``S``
(10.2.0.1:8080): sequence numbers are relative to each side's ISN (1000 for
the client, 5000 for the server) as tcpdump prints them, and turned into
absolute numbers by the builder. Expected states are lists of
``[STATE, start_s, end_s]`` with times relative to the first packet.
"""

from __future__ import annotations

import json
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

from tcplinger.lab.bridge import checksum  # RFC 1071, the lab's own

HERE = Path(__file__).resolve().parent
ISN = {"C": 1000, "S": 5000}
T0 = 1_700_000_000.0
FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, ".": 0x10}


@dataclass
class P:
    t: float
    sender: str  # "C" or "S"
    flags: str  # tcpdump letters, e.g. "S", "S.", "P.", "F.", "R"
    seq: int = 0  # relative
    ack: int = 0  # relative to the other side's ISN
    length: int = 0
    win: int = 500
    ttl: int | None = None  # default: 64 from the client, 63 from the server
    iface: int = 0
    bad_sum: bool = False  # a wrong TCP checksum (a corrupt packet)


def tcp_ip(src, sport, dst, dport, seq, ack, flags, win, payload, ttl, v6=False,
           bad_sum=False) -> bytes:
    """An IPv4 (or IPv6) packet holding one TCP segment, checksums filled
    (the TCP one off by 0x5555 when ``bad_sum``)."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4,
                      flags, win, 0, 0) + payload
    spoil = 0x5555 if bad_sum else 0
    if v6:
        pseudo = src + dst + struct.pack("!IxxxB", len(tcp), 6)
        tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp) ^ spoil) + tcp[18:]
        return struct.pack("!IHBB", 6 << 28, len(tcp), 6, ttl) + src + dst + tcp
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp) ^ spoil) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, ttl, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def ether(l3: bytes, v6=False, tags=()) -> bytes:
    """Ethernet II with 802.1Q/802.1ad tags given as (tpid, vid)."""
    out = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01"
    for tpid, vid in tags:
        out += struct.pack("!HH", tpid, vid)
    return out + struct.pack("!H", 0x86DD if v6 else 0x0800) + l3


def sll2(l3: bytes, v6=False) -> bytes:
    """Linux cooked v2: protocol, reserved, ifindex, ARPHRD, packet type, address."""
    return struct.pack("!HHIHBB8s", 0x86DD if v6 else 0x0800, 0, 1, 1, 0, 6,
                       b"\x02\0\0\0\0\x01\0\0") + l3


def frames(pkts, client=("10.1.0.1", 40000), server=("10.2.0.1", 8080), link="ether",
           tags=(), v6=False):
    import ipaddress
    addr = {"C": (ipaddress.ip_address(client[0]).packed, client[1]),
            "S": (ipaddress.ip_address(server[0]).packed, server[1])}
    out = []
    for p in pkts:
        other = "S" if p.sender == "C" else "C"
        bits = sum(FLAGS[c] for c in p.flags)
        seq = ISN[p.sender] + p.seq
        ack = ISN[other] + p.ack if "." in p.flags else 0
        ttl = p.ttl if p.ttl is not None else (64 if p.sender == "C" else 63)
        l3 = tcp_ip(addr[p.sender][0], addr[p.sender][1], addr[other][0], addr[other][1], seq,
                    ack, bits, p.win, b"x" * p.length, ttl, v6, p.bad_sum)
        frame = sll2(l3, v6) if link == "sll2" else l3 if link == "raw" else ether(l3, v6, tags)
        out.append((T0 + p.t, frame, p.iface))
    return out


def pcap(records, linktype=1, snaplen=65535) -> bytes:
    blob = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)
    for t, frame, _ in records:
        sec = int(t)
        usec = round((t - sec) * 1e6)
        cap = frame[:snaplen]
        blob += struct.pack("<IIII", sec, usec, len(cap), len(frame)) + cap
    return blob


def pcapng(records, interfaces) -> bytes:
    """``interfaces``: [(linktype, tsresol exponent of 10, if_name or None)]."""
    def block(btype, body):
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    for linktype, res, name in interfaces:
        opts = struct.pack("<HHB3x", 9, 1, res) + struct.pack("<HH", 0, 0)
        if name:  # if_name, padded to 4 bytes
            raw = name.encode()
            opts = struct.pack("<HH", 2, len(raw)) + raw + b"\0" * (-len(raw) % 4) + opts
        out += block(1, struct.pack("<HHI", linktype, 0, 0) + opts)
    for t, frame, iface in records:
        ticks = round(t * 10 ** interfaces[iface][1])
        out += block(6, struct.pack("<IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF,
                                    len(frame), len(frame)) + frame)
    return out


def handshake(t=0.0):
    return [P(t, "C", "S"), P(t + 0.001, "S", "S.", 0, 1), P(t + 0.002, "C", ".", 1, 1)]


# ---- the cases: packets and what Zeek and RFC 793 say of them -------------------
CASES = {}


def case(name, kind="pcap", **options):
    """``options``: the PcapOptions the case is analysed with (e.g.
    checksums=True), next to the packets they are about."""
    def deco(fn):
        CASES[name] = (fn, kind, options)
        return fn
    return deco


@case("retransmitted_fin")
def retransmitted_fin():
    pk = handshake() + [P(1.0, "C", "F.", 1, 1), P(1.2, "C", "F.", 1, 1), P(1.6, "C", "F.", 1, 1),
                        P(2.4, "C", "F.", 1, 1)]
    # the same FIN (same sequence number) is logged once: S h A F
    return frames(pk), {"C1": {"conn_state": "S2", "history": "ShAF",
                               "orig": [["SYN_SENT", 0, 0.001], ["ESTABLISHED", 0.001, 1.0],
                                        ["FIN_WAIT1", 1.0, None]],
                               "resp": [["SYN_RECV", 0.001, 0.002], ["ESTABLISHED", 0.002, None]],
                               "findings": ["fin-unacked"]}}


@case("simultaneous_close")
def simultaneous_close():
    pk = handshake() + [P(1.0, "C", "F.", 1, 1), P(1.0001, "S", "F.", 1, 1),
                        P(1.001, "C", ".", 2, 2), P(1.0011, "S", ".", 2, 2)]
    # both FINs cross: each side goes FIN_WAIT1 -> CLOSING (the other's FIN,
    # proven by its ACK) -> TIME_WAIT (its own FIN acknowledged)
    return frames(pk), {"C1": {"conn_state": "SF", "history": "ShAFfa",
                               "orig": [["SYN_SENT", 0, 0.001], ["ESTABLISHED", 0.001, 1.0],
                                        ["FIN_WAIT1", 1.0, 1.0001], ["CLOSING", 1.0001, 1.0011],
                                        ["TIME_WAIT", 1.0011, None]],
                               # the server's FIN (ack 1) did not acknowledge the
                               # client's: it left before that FIN arrived
                               "resp": [["SYN_RECV", 0.001, 0.002],
                                        ["ESTABLISHED", 0.002, 1.0001],
                                        ["FIN_WAIT1", 1.0001, 1.0001],
                                        ["CLOSING", 1.0001, 1.001], ["TIME_WAIT", 1.001, None]],
                               "findings": []}}


@case("no_syn_server_port")
def no_syn_server_port():
    # first packet from the likely server port 80: Zeek flips (^); the
    # client becomes the originator. Then a normal close.
    pk = [P(0.0, "S", "P.", 1, 1, length=100), P(0.001, "C", ".", 1, 101),
          P(0.5, "C", "F.", 1, 101), P(0.501, "S", ".", 101, 2), P(0.6, "S", "F.", 101, 2),
          P(0.601, "C", ".", 2, 102)]
    return frames(pk, server=("10.2.0.1", 80)), {
        "C1": {"conn_state": "SF", "history": "^dAFaf", "orig_p": 40000, "resp_p": 80,
               "orig": [["ESTABLISHED", 0.0, 0.5], ["FIN_WAIT1", 0.5, 0.501],
                        ["FIN_WAIT2", 0.501, 0.6], ["TIME_WAIT", 0.6, None]],
               "resp": [["ESTABLISHED", 0.0, 0.5], ["CLOSE_WAIT", 0.5, 0.6],
                        ["LAST_ACK", 0.6, 0.601]],
               "findings": []}}


@case("no_syn_midstream")
def no_syn_midstream():
    # neither port is a likely server port: the first sender originates;
    # no SYN, no close: both sides PARTIAL, Zeek's OTH
    pk = [P(0.0, "C", "P.", 1, 1, length=10), P(0.01, "S", "P.", 1, 11, length=20),
          P(0.02, "C", ".", 11, 21)]
    return frames(pk, server=("10.2.0.1", 9999)), {
        "C1": {"conn_state": "OTH", "history": "DdA", "orig_bytes": 10, "resp_bytes": 20,
               "orig": [["ESTABLISHED", 0.0, None]], "resp": [["ESTABLISHED", 0.0, None]],
               "findings": []}}


@case("third_party_rst")
def third_party_rst():
    # a RST "from the server" with another TTL than the server's packets:
    # a middlebox (or an attacker) ended the connection
    pk = handshake() + [P(0.5, "C", "P.", 1, 1, length=10), P(0.501, "S", ".", 1, 11),
                        P(3.0, "S", "R", 1, 0, ttl=250)]
    return frames(pk), {"C1": {"conn_state": "RSTR", "history": "ShADar",
                               "orig": [["SYN_SENT", 0, 0.001], ["ESTABLISHED", 0.001, 3.0]],
                               "resp": [["SYN_RECV", 0.001, 0.002], ["ESTABLISHED", 0.002, 3.0]],
                               "findings": ["reset-foreign"]}}


@case("keepalive_one_byte")
def keepalive_one_byte():
    # a keepalive with one garbage byte (seq = next - 1, 1 byte): Zeek sees
    # payload at an old sequence number, a retransmission (T); the answer
    # is a pure ACK. A zero-byte keepalive adds no letter.
    pk = handshake() + [P(0.1, "C", "P.", 1, 1, length=10), P(0.101, "S", ".", 1, 11),
                        P(30.0, "C", ".", 10, 1, length=1), P(30.001, "S", ".", 1, 11),
                        P(60.0, "C", ".", 10, 1), P(60.001, "S", ".", 1, 11)]
    return frames(pk), {"C1": {"conn_state": "S1", "history": "ShADaT",
                               "keepalives": {"orig": 2, "answered": 2},
                               "notable": [[0, "orig", "S", ""], [0.001, "resp", "S.", ""],
                                           [30.0, "orig", ".", "keepalive"],
                                           [30.001, "resp", ".", "keepalive-ack"],
                                           [60.0, "orig", ".", "keepalive"],
                                           [60.001, "resp", ".", "keepalive-ack"]],
                               "findings": []}}


@case("window_probes")
def window_probes():
    # the server's window closes (w), the client probes it (Linux:
    # seq = snd_una - 1, no data), then closes with the window still shut
    pk = handshake() + [P(0.1, "C", "P.", 1, 1, length=1000), P(0.101, "S", ".", 1, 1001, win=0),
                        P(0.3, "C", ".", 1000, 1), P(0.301, "S", ".", 1, 1001, win=0),
                        P(0.7, "C", ".", 1000, 1), P(0.701, "S", ".", 1, 1001, win=0),
                        P(1.0, "C", "F.", 1001, 1), P(1.001, "S", ".", 1, 1002, win=0)]
    return frames(pk), {"C1": {"conn_state": "S2", "history": "ShADawF",
                               "notable": [[0, "orig", "S", ""], [0.001, "resp", "S.", ""],
                                           [0.101, "resp", ".", "zero-window"],
                                           [0.3, "orig", ".", "window-probe"],
                                           [0.7, "orig", ".", "window-probe"],
                                           [1.0, "orig", "F.", ""]],
                               "orig": [["SYN_SENT", 0, 0.001], ["ESTABLISHED", 0.001, 1.0],
                                        ["FIN_WAIT1", 1.0, 1.001], ["FIN_WAIT2", 1.001, None]],
                               "resp": [["SYN_RECV", 0.001, 0.002], ["ESTABLISHED", 0.002, 1.0],
                                        ["CLOSE_WAIT", 1.0, None]],
                               "findings": ["half-close-unanswered", "zero-window-at-close"]}}


@case("seed000_ipfw_keepalives")
def seed000_ipfw_keepalives():
    # seed 000: the server closed (FIN acked), the client never closes; a
    # firewall forges keepalives both ways (TTL 200, not the parties' own):
    # the server answers, the client ignores them
    pk = handshake() + [P(1.0, "S", "F.", 1, 1), P(1.001, "C", ".", 1, 2),
                        P(280.0, "C", ".", 0, 2, ttl=200), P(280.0001, "S", ".", 1, 1, ttl=200),
                        P(280.001, "S", ".", 2, 1),
                        P(285.0, "C", ".", 0, 2, ttl=200), P(285.0001, "S", ".", 1, 1, ttl=200),
                        P(285.001, "S", ".", 2, 1)]
    return frames(pk), {"C1": {"conn_state": "S3", "history": "ShAfa",
                               "orig": [["SYN_SENT", 0, 0.001], ["ESTABLISHED", 0.001, 1.0],
                                        ["CLOSE_WAIT", 1.0, None]],
                               "resp": [["SYN_RECV", 0.001, 0.002], ["ESTABLISHED", 0.002, 1.0],
                                        ["FIN_WAIT1", 1.0, 1.001], ["FIN_WAIT2", 1.001, None]],
                               "findings": ["half-close-unanswered", "keepalive-foreign",
                                            "keepalive-foreign", "keepalive-one-sided"]}}


@case("vlan_qinq_ipv6")
def vlan_qinq_ipv6():
    pk = handshake() + [P(0.1, "C", "F.", 1, 1), P(0.101, "S", "F.", 1, 2),
                        P(0.102, "C", ".", 2, 2)]
    return frames(pk, client=("2001:db8::1", 40000), server=("2001:db8::2", 8080),
                  tags=((0x88A8, 100), (0x8100, 200)), v6=True), {
        "C1": {"conn_state": "SF", "history": "ShAFf", "orig_h": "2001:db8::1",
               "resp_h": "2001:db8::2", "findings": []}}


@case("sll2", kind="pcap-sll2")
def sll2_case():
    pk = handshake() + [P(0.1, "C", "R", 1, 0)]
    return frames(pk, link="sll2"), {"C1": {"conn_state": "RSTO", "history": "ShAR",
                                            "findings": []}}


@case("pcapng_two_interfaces", kind="pcapng")
def two_interfaces():
    # interface 0: Ethernet, microseconds; interface 1: raw IP, nanoseconds
    a = frames(handshake() + [P(0.2, "C", "F.", 1, 1), P(0.201, "S", "F.", 1, 2),
                              P(0.202, "C", ".", 2, 2)])
    b = frames([P(0.05, "C", "S"), P(0.050123456, "S", "R.", 0, 1)], client=("10.1.0.9", 41000),
               link="raw")
    b = [(t, f, 1) for t, f, _ in b]
    recs = sorted(a + b, key=lambda r: r[0])
    return recs, {"C1": {"conn_state": "SF", "history": "ShAFf", "interface": 0, "findings": []},
                  "C2": {"conn_state": "REJ", "history": "Sr", "interface": 1,
                         "orig_h": "10.1.0.9", "duration": 0.000123456, "findings": []}}


@case("bad_checksums", checksums=True)
def bad_checksums():
    # verified as Zeek does without -C: a packet with a bad TCP checksum is
    # history C (c from the responder) and nothing else: not counted, no
    # state, no sequence number. So the good copy of the data is D, not T.
    pk = handshake() + [P(0.1, "C", "P.", 1, 1, length=10, bad_sum=True),
                        P(0.3, "C", "P.", 1, 1, length=10), P(0.301, "S", ".", 1, 11, bad_sum=True),
                        P(0.302, "S", ".", 1, 11), P(0.5, "C", "F.", 11, 1),
                        P(0.501, "S", "F.", 1, 12), P(0.502, "C", ".", 12, 2)]
    # C2: ten corrupt pure ACKs from the client: C at the 1st and the 10th
    # (Zeek's scaled letters, like T, W and G)
    c2 = handshake(1.0) + [P(1.1 + k / 100, "C", ".", 1, 1, bad_sum=True) for k in range(10)]
    recs = frames(pk) + frames(c2, client=("10.1.0.2", 40001))
    return sorted(recs, key=lambda r: r[0]), {
        "C1": {"conn_state": "SF", "history": "ShACDcaFf", "orig_pkts": 5, "resp_pkts": 3,
               "orig_bytes": 10, "resp_bytes": 0, "duration": 0.501, "findings": []},
        # corrupt packets are no activity either: C2 was last active at its
        # handshake's ACK, 0.19 s before the end (too short for open-at-end)
        "C2": {"conn_state": "S1", "history": "ShACC", "orig_pkts": 2, "resp_pkts": 1,
               "duration": 0.002, "findings": []}}


@case("pcapng_one_link_twice", kind="pcapng", by_interface=False)
def one_link_twice():
    # the same packets seen on two interfaces of one capture (a bridge and
    # its port, 10 us apart), merged into one connection as Zeek does
    # (--merge-interfaces): each copy counts, the copy of the data is a
    # retransmission (T), other copies repeat a sequence number and add no
    # letter
    one = handshake() + [P(0.1, "C", "P.", 1, 1, length=100), P(0.101, "S", ".", 1, 101),
                         P(0.2, "C", "F.", 101, 1), P(0.201, "S", "F.", 1, 102),
                         P(0.202, "C", ".", 102, 2)]
    two = [P(p.t + 0.00001, p.sender, p.flags, p.seq, p.ack, p.length, iface=1) for p in one]
    recs = frames(one) + [(t, f, 1) for t, f, _ in frames(two, link="raw")]
    return sorted(recs, key=lambda r: r[0]), {
        "C1": {"conn_state": "SF", "history": "ShADTaFf", "orig_pkts": 10, "resp_pkts": 6,
               "orig_bytes": 100, "interface": 0, "findings": []}}


@case("idle_split", inactivity_s=300.0)
def idle_split():
    # idle for 400 s: with --inactivity 5m (Zeek's tcp_inactivity_timeout)
    # the connection ends there (S1) and the close starts a new one without
    # a SYN: both sides' FINs from INACTIVE, Zeek's SF with history FfA
    pk = handshake() + [P(0.1, "C", "P.", 1, 1, length=10), P(0.101, "S", ".", 1, 11),
                        P(400.0, "C", "F.", 11, 1), P(400.001, "S", "F.", 1, 12),
                        P(400.002, "C", ".", 12, 2)]
    return frames(pk), {
        "C1": {"conn_state": "S1", "history": "ShADa", "duration": 0.101,
               "findings": ["open-at-end"]},
        "C2": {"conn_state": "SF", "history": "FfA", "duration": 0.001, "findings": []}}


@case("content_gaps")
def content_gaps():
    # data the capture lost, found as Zeek's reassembler finds it: when the
    # peer acknowledges past a hole. The client's 101-200 is missing while
    # 201-300 arrived: the server's ACK of 301 reveals it (G; the old rule,
    # "acknowledged above the highest sequence number seen", did not).
    # 301-400 missing, then the ACK of 501: a 2nd gap, logged at the 10th
    # only. The server's 51-100 missing: g. The client's data 501-600 never
    # seen and acknowledged (ack 601): a 3rd gap. The FINs' own numbers are
    # no data: acknowledging them reveals nothing.
    pk = handshake() + [
        P(0.1, "C", "P.", 1, 1, length=100), P(0.3, "C", "P.", 201, 1, length=100),
        P(0.301, "S", ".", 1, 301), P(0.4, "C", "P.", 401, 1, length=100),
        P(0.401, "S", ".", 1, 501), P(0.5, "S", "P.", 1, 501, length=50),
        P(0.6, "S", "P.", 101, 501, length=50), P(0.601, "C", ".", 501, 151),
        P(0.7, "S", ".", 151, 601), P(0.8, "C", "F.", 601, 151), P(0.801, "S", "F.", 151, 602),
        P(0.802, "C", ".", 602, 152)]
    return frames(pk), {"C1": {"conn_state": "SF", "history": "ShADaGdgFf",
                               "orig_bytes": 600, "resp_bytes": 150, "findings": []}}


def build(name: str) -> tuple[bytes, dict]:
    fn, kind, _ = CASES[name]
    recs, expected = fn()
    if kind == "pcapng":
        blob = pcapng(recs, [(1, 6, "eth0"), (101, 9, None)])
    elif kind == "pcap-sll2":
        blob = pcap(recs, linktype=276)
    else:
        blob = pcap(recs)
    return blob, expected


def path_of(name: str) -> Path:
    return HERE / (name + (".pcapng" if CASES[name][1] == "pcapng" else ".pcap"))


def main() -> None:
    for name in (sys.argv[1:] or CASES):
        blob, expected = build(name)
        path_of(name).write_bytes(blob)
        (HERE / f"{name}.expected.json").write_text(json.dumps(expected, indent=1) + "\n")
        print(path_of(name).name, len(blob), "bytes")


if __name__ == "__main__":
    main()
