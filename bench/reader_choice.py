"""Which pcap reader for wire/: dpkt (a well-kept library) against the
hand-written block decoder (wire/pcapfile.py + wire/decode.py), on the same
file, measured in the same run: time to get, for every TCP packet, the
fields the connection engine needs (timestamp, addresses, ports, seq, ack,
flags, window, payload length, IP length, TTL).

    python bench/reader_choice.py FILE.pcap      # pip install dpkt first
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def with_dpkt(path: str) -> int:
    import dpkt

    n = 0
    with open(path, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                continue
            tcp = ip.data
            if not isinstance(tcp, dpkt.tcp.TCP):
                continue
            fields = (ts, ip.src, ip.dst, tcp.sport, tcp.dport, tcp.seq, tcp.ack, tcp.flags,
                      tcp.win, len(tcp.data), ip.len, ip.ttl)
            n += fields is not None
    return n


def with_blocks(path: str) -> int:
    from tcplinger.wire.decode import decode
    from tcplinger.wire.pcapfile import read_blocks

    n = 0
    with open(path, "rb") as f:
        for b in read_blocks(f, []):
            p = decode(b.data, b.start, b.caplen, b.linktype, b.ts, b.interface).packets
            # the engine then walks the columns as Python lists
            cols = [c.tolist() for c in (p.ts, p.sport, p.dport, p.seq, p.ack, p.flags, p.win,
                                         p.plen, p.iplen, p.ttl)]
            n += len(cols[0])
    return n


def main() -> int:
    path = sys.argv[1]
    for name, fn in (("blocks+numpy", with_blocks), ("dpkt", with_dpkt)):
        t0 = time.monotonic()
        c0 = time.process_time()
        n = fn(path)
        print(f"{name}: {n} TCP packets, {time.monotonic() - t0:.2f} s wall, "
              f"{time.process_time() - c0:.2f} s CPU")
    print("peak RSS (both) MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    return 0


if __name__ == "__main__":
    sys.exit(main())
