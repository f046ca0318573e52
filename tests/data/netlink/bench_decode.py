#!/usr/bin/env python3
"""Decode speed and memory on a synthetic 1M-socket reply.

    python3 tests/data/netlink/bench_decode.py [--sockets N] [--tcp-info]

The reply is built from the recorded messages of inet_all.dump and
inet6_all.dump (or the tcp_info fixtures) repeated until N sockets, with
one seq/pid as a real dump has, cut into ~32 KiB datagrams exactly as the
kernel does, and ended with NLMSG_DONE. It is decoded (a) as one buffer
and (b) in batches of several sizes, the way DiagSocket.dump_family does.
Prints CPU microseconds per socket (best of --repeat) and the peak resident
memory the decode adds.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
HDR = struct.Struct("=IHHII")
SKB = 32 * 1024 - 320  # SKB_WITH_OVERHEAD(32768): the kernel's dump skb size


def recorded_messages(names) -> list[bytes]:
    out = []
    for name in names:
        data = bytearray()
        for line in (HERE / f"{name}.dump").read_text().splitlines():
            key, _, rest = line.partition(":")
            if line and not line.startswith("#") and all(c in "0123456789abcdef" for c in key):
                data += bytes.fromhex(rest.replace(" ", ""))
        pos = 0
        while pos < len(data):
            length, mtype = HDR.unpack_from(data, pos)[:2]
            if mtype == 20:
                out.append(bytes(data[pos:pos + length]))
            pos += (length + 3) & ~3
    return out


def synthetic_datagrams(n: int, tcp_info: bool, seq=0x5EED1234, pid=4242) -> list[bytes]:
    names = ("inet_tcp_info", "inet6_tcp_info") if tcp_info else ("inet_all", "inet6_all")
    msgs = []
    for m in recorded_messages(names):
        m = bytearray(m)
        struct.pack_into("=II", m, 8, seq, pid)
        msgs.append(bytes(m))
    datagrams, cur = [], bytearray()
    cookie = 1
    for i in range(n):
        m = bytearray(msgs[i % len(msgs)])
        struct.pack_into("=II", m, 60, cookie & 0xFFFFFFFF, cookie >> 32)  # unique cookies
        cookie += 1
        if len(cur) + len(m) > SKB:
            datagrams.append(bytes(cur))
            cur = bytearray()
        cur += m
    done = HDR.pack(20, 3, 2, seq, pid) + bytes(4)
    if len(cur) + len(done) > SKB:
        datagrams.append(bytes(cur))
        cur = bytearray()
    datagrams.append(bytes(cur + done))
    return datagrams


def batched(datagrams, bufsize):
    """Group datagrams as dump_family fills its buffer."""
    batch, size = [], 0
    for d in datagrams:
        if bufsize - size < min(32 << 10, bufsize):
            yield b"".join(batch)
            batch, size = [], 0
        batch.append(d)
        size += len(d)
    yield b"".join(batch)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sockets", type=int, default=1_000_000)
    ap.add_argument("--tcp-info", action="store_true")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE.parents[2] / "src"))
    from tcplinger.collect.netlink import codec, frames

    grams = synthetic_datagrams(args.sockets, args.tcp_info)
    whole = b"".join(grams)
    print(f"{args.sockets} sockets, {len(grams)} datagrams, {len(whole) / 1e6:.1f} MB"
          f" ({len(whole) / args.sockets:.1f} B/socket), tcp_info={args.tcp_info}")
    # Peak resident memory first, while the process is fresh (VmHWM, reset
    # through /proc/self/clear_refs): what decoding adds, as dump() runs it.
    batches = list(batched(grams, 4 << 20))
    room = np.zeros((4 << 20) + (64 << 10), np.uint8)
    base = _reset_peak()
    sink = codec.RowSink(1 << 20, tcp_info=args.tcp_info)
    for b in batches:
        room[:len(b)] = np.frombuffer(b, np.uint8)
        codec.decode_into(room, len(b), sink, tcp_info=args.tcp_info)
    table = sink.finish()
    peak = _peak() - base
    kept = table.rows.nbytes + (table.info.nbytes if table.info is not None else 0)
    print(f"  peak RSS added by decoding in 4 MiB batches: {peak / 1e6:.0f} MB"
          f" (the table itself: {kept / 1e6:.0f} MB for {len(table)} rows)")

    del sink, table

    def best(fn):
        # CPU time of this process, best of N: the machine may be shared.
        times = []
        for _ in range(args.repeat):
            t = time.process_time()
            fn()
            times.append(time.process_time() - t)
        return min(times)

    buf = np.frombuffer(whole, np.uint8)
    t = best(lambda: codec.message_starts(buf))
    print(f"  message walk (vectorised)   {t * 1e6 / args.sockets:.3f} us/socket  ({t * 1e3:.1f} ms)")
    t = best(lambda: frames.scalar_starts(buf))
    print(f"  message walk (scalar loop)  {t * 1e6 / args.sockets:.3f} us/socket  ({t * 1e3:.1f} ms)")
    t = best(lambda: codec.decode_dump(whole, tcp_info=args.tcp_info))
    print(f"  decode, one buffer          {t * 1e6 / args.sockets:.3f} us/socket  ({t * 1e3:.1f} ms)")
    for bufsize in (32 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20):
        batches = list(batched(grams, bufsize))
        room = np.zeros(bufsize + (64 << 10), np.uint8)  # the DiagSocket buffer

        def run():
            sink = codec.RowSink(1 << 20)
            for b in batches:
                room[:len(b)] = np.frombuffer(b, np.uint8)  # what recv_into does
                codec.decode_into(room, len(b), sink)
            return sink.finish()

        t = best(run)
        print(f"  decode, {bufsize >> 10:6d} KiB batches  {t * 1e6 / args.sockets:.3f} us/socket"
              f"  ({t * 1e3:.1f} ms, incl. copying into the buffer)")
    assert len(codec.decode_dump(whole).table) == args.sockets


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_peak() -> int:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    return _status("VmRSS")


def _peak() -> int:
    return _status("VmHWM")

if __name__ == "__main__":
    main()
