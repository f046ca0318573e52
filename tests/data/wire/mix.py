"""A large capture of many interleaved connections, plain and odd, for the
test that runs the columnar fast path and the per-packet engine on the
same packets (tests/unit/test_wire_fastpath.py): ``mixed(seed, n)``
returns pcap bytes.

Each connection is a script of packets in the vocabulary of build.py
(sequence numbers relative to each side's ISN); the scripts cover what the
fast path takes (handshake, in-order data both ways, either side closing
first, a FIN with data, a FIN acknowledging the other's FIN, several
requests, duplicate ACKs, half-close with data after the peer's FIN,
sequence numbers that wrap) and what it must leave to the engine or stop
at (retransmitted data and SYNs, keepalives, zero windows and window
probes, RSTs, a foreign TTL, data after a FIN, ACKs of data never seen,
segments out of order, no SYN, a rejected or unanswered SYN, a SYN-ACK
acknowledging the wrong number, simultaneous close). Client ports come
from a small pool so that 4-tuples are reused, within Zeek's 5 s close
delay and after it; times spread so that connections span blocks and the
close delay.
"""

from __future__ import annotations

import random
import struct

def _tcp_ip(src: bytes, sport: int, dst: bytes, dport: int, seq: int, ack: int, flags: int,
            win: int, plen: int, ttl: int, csum=None) -> bytes:
    """IPv4 or IPv6 (by address length) with one TCP segment; the TCP
    checksum left 0 (tcplinger checks none by default, as ``zeek -C``) or,
    with ``csum`` (True: right, False: wrong), filled in."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4,
                      flags, win, 0, 0) + b"x" * plen
    if csum is not None:
        from tcplinger.lab.bridge import checksum
        pseudo = src + dst + (struct.pack("!IxxxB", len(tcp), 6) if len(src) == 16
                              else struct.pack("!BBH", 0, 6, len(tcp)))
        tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp) ^ (0 if csum else 0x0F0F)) \
            + tcp[18:]
    if len(src) == 16:
        return struct.pack("!IHBB", 6 << 28, len(tcp), 6, ttl) + src + dst + tcp
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, ttl, 6, 0, src,
                       dst) + tcp


F, S, R, P, A = 0x01, 0x02, 0x04, 0x08, 0x10


def _script(rng: random.Random, kind: str):
    """(dt, sender 'C'/'S', flags, rel seq, rel ack, length, win, ttl delta) rows."""
    c, s = 1, 1  # next relative sequence numbers (the SYN is 0)
    rows = [(0.0, "C", S, 0, 0, 0, 64240, 0)]
    if kind == "syn-only":
        return rows + ([(1.0, "C", S, 0, 0, 0, 64240, 0)] if rng.random() < 0.5 else [])
    if kind == "rej":
        return rows + [(0.0001, "S", R | A, 0, 1, 0, 0, 0)]
    if kind == "syn-retransmit":
        rows.append((1.0, "C", S, 0, 0, 0, 64240, 0))
    rows.append((0.0001, "S", S | A, 0, 2 if kind == "bad-synack" else 1, 0, 65160, 0))
    rows.append((0.0001, "C", A, 1, 1, 0, 502, 0))
    if kind == "no-syn":
        rows = rows[2:]
    for _ in range(rng.choice((1, 1, 2, 5))):  # requests
        q = rng.choice((80, 120, 700))
        rows.append((rng.choice((0.0002, 0.001, 0.3)), "C", P | A, c, s, q, 502, 0))
        c += q
        if rng.random() < 0.5:
            rows.append((0.0001, "S", A, s, c, 0, 509, 0))
        for _ in range(rng.choice((1, 2, 4))):
            n = rng.choice((1448, 2283, 32768, 65483))
            rows.append((0.0001, "S", P | A, s, c, n, 509, 0))
            s += n
            if rng.random() < 0.2:
                rows.append((0.00005, "C", A, c, s, 0, 502, 0))  # duplicate ACK
            rows.append((0.00005, "C", A, c, s, 0, 502, 0))
    odd = {
        "retransmit": lambda: rows.append((0.2, "S", P | A, s - 100, c, 100, 509, 0)),
        "keepalive": lambda: rows.extend([(7.0, "C", A, c - 1, s, 0, 502, 0),
                                          (0.0001, "S", A, s, c, 0, 509, 0)]),
        "zero-window": lambda: rows.extend([(0.001, "C", A, c, s, 0, 0, 0),
                                            (0.2, "S", A, s - 1, c, 0, 509, 0),
                                            (0.0001, "C", A, c, s, 0, 0, 0),
                                            (0.5, "C", A, c, s, 0, 502, 0)]),
        "rst": lambda: rows.append((0.001, rng.choice("CS"), R, c, 0, 0, 0, 0)),
        "foreign": lambda: rows.append((0.001, "S", A, s, c, 0, 509, 3)),
        "gap": lambda: rows.append((0.001, "C", A, c, s + 500, 0, 502, 0)),
        "out-of-order": lambda: rows.extend([(0.001, "S", P | A, s + 100, c, 50, 509, 0),
                                             (0.0001, "S", P | A, s, c, 100, 509, 0)]),
    }
    if kind in odd:
        odd[kind]()
        if kind == "gap":
            s += 500
        if kind == "out-of-order":
            s += 150
        if kind == "rst":
            return rows
    if kind == "open":
        return rows
    closer = rng.choice("CS")
    first, second = (("C", c, s), ("S", s, c)) if closer == "C" else (("S", s, c), ("C", c, s))
    extra = rng.choice((0, 0, 40))  # a FIN carrying data
    rows.append((0.001, first[0], F | A | (P if extra else 0), first[1], first[2], extra,
                 502, 0))
    fin1_end = first[1] + extra + 1
    if kind == "simultaneous":
        rows.append((0.00001, second[0], F | A, second[1], second[2], 0, 502, 0))
        rows.append((0.0001, first[0], A, fin1_end, second[1] + 1, 0, 502, 0))
        rows.append((0.00001, second[0], A, second[1] + 1, fin1_end, 0, 502, 0))
        return rows
    if rng.random() < 0.4:
        rows.append((0.0001, second[0], A, second[1], fin1_end, 0, 502, 0))
    late = second[1]
    if rng.random() < 0.2:  # half-close: more data after the peer's FIN
        rows.append((0.001, second[0], P | A, late, fin1_end, 300, 502, 0))
        late += 300
    if kind == "half-open":
        return rows
    rows.append((rng.choice((0.0001, 0.04, 6.0)), second[0], F | A, late, fin1_end, 0, 502,
                 0))
    rows.append((0.0001, first[0], A, fin1_end, late + 1, 0, 502, 0))
    if kind == "data-after-fin":
        rows.append((0.001, first[0], P | A, fin1_end, late + 1, 10, 502, 0))
    return rows


KINDS = (["plain"] * 12 + ["syn-only", "rej", "syn-retransmit", "bad-synack", "no-syn",
                           "retransmit", "keepalive", "zero-window", "rst", "foreign", "gap",
                           "out-of-order", "open", "simultaneous", "half-open",
                           "data-after-fin"])


def mixed(seed: int = 1, n: int = 1500, span_s: float = 60.0,
          bad_sums: float | None = None) -> bytes:
    """pcap bytes (Ethernet) of ``n`` connections started over ``span_s`` s;
    ``bad_sums``: checksums filled in, this fraction of them wrong."""
    rng = random.Random(seed)
    spoil = random.Random(seed + 1)  # the same connections with or without
    records = []
    v4 = (bytes([10, 1, 0, 1]), bytes([10, 2, 0, 1]))
    v6 = (bytes(15) + b"\x01", bytes(15) + b"\x02")
    for i in range(n):
        kind = rng.choice(KINDS)
        cli, srv = v6 if rng.random() < 0.1 else v4
        cport, sport = rng.randrange(40000, 40150), rng.choice((80, 8080, 5432))
        isn = {"C": rng.choice((rng.randrange(1 << 32), 0xFFFFFFFF - 3000)),
               "S": rng.randrange(1 << 32)}
        ttl = {"C": 64, "S": 63}
        t = rng.uniform(0, span_s)
        for dt, who, flags, seq, ack, plen, win, dttl in _script(rng, kind):
            t += dt
            other = "S" if who == "C" else "C"
            src, dst = (cli, srv) if who == "C" else (srv, cli)
            ports = (cport, sport) if who == "C" else (sport, cport)
            l3 = _tcp_ip(src, ports[0], dst, ports[1], isn[who] + seq,
                         isn[other] + ack if flags & A else 0, flags, win, plen,
                         ttl[who] + dttl,
                         None if bad_sums is None else spoil.random() >= bad_sums)
            frame = (b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01"
                     + struct.pack("!H", 0x86DD if len(src) == 16 else 0x0800) + l3)
            records.append((t, i, frame))
    records.sort(key=lambda r: (r[0], r[1]))
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for t, _, frame in records:
        sec = int(t)
        cap = frame[:128]  # a snap length, as the benchmark's tcpdump -s 128
        out.append(struct.pack("<IIII", 1_700_000_000 + sec, int((t - sec) * 1e6), len(cap),
                               len(frame)) + cap)
    return b"".join(out)
