"""A userspace stateful firewall in the router namespace: every IPv4
frame between the two router interfaces passes through lab/ipfw.py's
dynamic-rule logic, which passes it, drops it, and forges keepalives.

Run as ``python -m tcplinger.lab.bridge ARGS`` inside the router namespace
(lab/scenarios/firewall_keepalive.py starts it). Why this shape:

* ipfw sits in the IP path and can forge segments with the endpoints'
  addresses. Netfilter's userspace hook (NFQUEUE) is not reachable from
  the Python standard library, and a TCP relay (a proxy) would terminate
  TCP itself, so its endpoints' keepalives and FINs would never be the
  other side's. AF_PACKET sockets on both veths, with the router's own
  forwarding off, see every frame before the kernel's IP layer and can
  send any frame: a faithful place for a packet filter.
* The router's kernel still answers ARP for its addresses (the endpoints'
  gateways), and an nftables ``prerouting`` drop keeps it from answering
  IPv4 itself (with forwarding off it would send ICMP host unreachable,
  net/ipv4/route.c ip_route_input_slow() and ip_error()); AF_PACKET taps
  sit before netfilter, so the bridge still sees everything.
* Forwarded frames get the next hop's MAC, TTL-1 and fresh IP and TCP
  checksums (the endpoints' veths leave TCP checksums to "hardware",
  CHECKSUM_PARTIAL, so received frames may carry a partial sum).

Emits JSON lines on stdout: ``ready``, ``state`` (installed or flags
changed), ``refresh`` (expiry pushed), ``keepalive`` (forged), ``drop``,
``expire`` (removed by the tick), each with ``t`` = time.monotonic().
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import select
import socket
import struct
import sys
import time

from .ipfw import ACK, Ipfw, IpfwParams, label, tcp_state_of

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
IPTOS_LOWDELAY = 0x10


def checksum(data: bytes) -> int:
    """RFC 1071 one's-complement sum (the IPv4 header example of RFC 1071's
    usual illustration: 192.168.0.1 -> 192.168.0.199, UDP).

    >>> hex(checksum(bytes.fromhex("450000730000400040110000c0a80001c0a800c7")))
    '0xb861'
    """
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_checksum(src: bytes, dst: bytes, segment: bytes) -> int:
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(segment))
    return checksum(pseudo + segment[:16] + b"\0\0" + segment[18:])


def build_ip_tcp(src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int,
                 flags: int = ACK, window: int = 0, ttl: int = 64) -> bytes:
    """An IPv4 packet with a bare TCP header, as dyn_make_keepalive_ipv4()
    builds it: TOS lowdelay, DF, the default TTL, window 0, no options."""
    s, d = socket.inet_aton(src[0]), socket.inet_aton(dst[0])
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, ack, 5 << 4, flags, window, 0, 0)
    tcp = tcp[:16] + struct.pack("!H", tcp_checksum(s, d, tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, IPTOS_LOWDELAY, 20 + len(tcp), 0, 0x4000, ttl, 6,
                     0, s, d)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def forward_ip(ip: bytes) -> bytes | None:
    """The packet as a router sends it on: TTL-1, checksums recomputed;
    None when the TTL runs out."""
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack_from("!H", ip, 2)[0]
    ip = bytearray(ip[:total])
    if ip[8] <= 1:
        return None
    ip[8] -= 1
    ip[10:12] = b"\0\0"
    ip[10:12] = struct.pack("!H", checksum(bytes(ip[:ihl])))
    if ip[9] == 6:
        seg = bytes(ip[ihl:])
        ip[ihl + 16:ihl + 18] = struct.pack("!H", tcp_checksum(bytes(ip[12:16]),
                                                               bytes(ip[16:20]), seg))
    return bytes(ip)


def _mac(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


class Bridge:
    def __init__(self, args):
        self.fw = Ipfw(IpfwParams(**json.loads(args.params)))
        self.start = time.monotonic()
        self.side = {}
        # side: (socket, this interface's MAC, the endpoint's MAC, endpoint address)
        for name, iface, own, peer, addr in (("client", args.client_if, args.client_if_mac,
                                              args.client_mac, args.client_addr),
                                             ("server", args.server_if, args.server_if_mac,
                                              args.server_mac, args.server_addr)):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
            s.bind((iface, ETH_P_IP))
            self.side[name] = (s, _mac(own), _mac(peer), addr)
        self.by_addr = {v[3]: k for k, v in self.side.items()}
        self.last_uptime = self.uptime()

    def uptime(self) -> int:
        """time_uptime: whole seconds (from 1, so no expiry is 0)."""
        return int(time.monotonic() - self.start) + 1

    def emit(self, **obj) -> None:
        sys.stdout.write(json.dumps({"t": time.monotonic(), **obj}) + "\n")
        sys.stdout.flush()

    def send_to(self, side: str, ip: bytes) -> None:
        s, own, peer, _ = self.side[side]
        s.send(peer + own + struct.pack("!H", ETH_P_IP) + ip)

    def on_frame(self, came_from: str, frame: bytes) -> None:
        ip = frame[14:]
        if len(ip) < 20 or ip[0] >> 4 != 4:
            return
        ihl = (ip[0] & 0x0F) * 4
        src_a, dst_a = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
        to = self.by_addr.get(dst_a)
        if to is None or to == came_from:
            return  # for the router itself (nothing is), or hairpin
        if ip[9] != 6:
            self.emit(event="drop", reason="not tcp", src=src_a, dst=dst_a)
            return
        sport, dport, seq, ack, _off, flags = struct.unpack_from("!HHIIBB", ip, ihl)
        before = {k: (v.state, v.expire) for k, v in self.fw.states.items()}
        verdict = self.fw.packet(self.uptime(), (src_a, sport), (dst_a, dport), flags, ack)
        if not verdict.passed:
            self.emit(event="drop", src=[src_a, sport], dst=[dst_a, dport], flags=flags,
                      seq=seq)
            return
        out = forward_ip(ip)
        if out is not None:
            self.send_to(to, out)
        self._report(before)

    def _report(self, before: dict) -> None:
        for key, st in self.fw.states.items():
            old = before.get(key)
            if old is None or (old[0] & 0xFFFF) != (st.state & 0xFFFF):
                self.emit(event="state", flow=[list(st.src), list(st.dst)], label=label(st.state),
                          tcp_state=tcp_state_of(st.state), expire=st.expire,
                          uptime=self.uptime())
            elif st.expire > old[1]:
                self.emit(event="refresh", flow=[list(st.src), list(st.dst)], expire=st.expire,
                          uptime=self.uptime())

    def on_tick(self, uptime: int) -> None:
        for st in self.fw.expired(uptime):
            self.emit(event="expire", flow=[list(st.src), list(st.dst)], label=label(st.state),
                      uptime=uptime)
        for k in self.fw.tick(uptime):
            to = self.by_addr.get(k.dst[0])
            if to is None:
                continue
            self.send_to(to, build_ip_tcp(k.src, k.dst, k.seq, k.ack))
            self.emit(event="keepalive", src=list(k.src), dst=list(k.dst), seq=k.seq, ack=k.ack,
                      uptime=uptime)

    def run(self) -> None:
        socks = {v[0].fileno(): k for k, v in self.side.items()}
        poller = select.poll()
        for fd in socks:
            poller.register(fd, select.POLLIN)
        poller.register(sys.stdin.fileno(), select.POLLIN)
        self.emit(event="ready", pid=os.getpid(), uptime=self.uptime())
        while True:
            nxt = self.start + self.last_uptime  # the next whole second
            timeout = max(0.0, nxt - time.monotonic())
            for fd, _ in poller.poll(timeout * 1000):
                if fd == sys.stdin.fileno():
                    if not os.read(fd, 4096):
                        return  # the lab closed our stdin: stop
                    continue
                side = socks[fd]
                s = self.side[side][0]
                while True:
                    try:
                        frame, addr = s.recvfrom(65535, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        break
                    if addr[2] == PACKET_OUTGOING:
                        continue
                    self.on_frame(side, frame)
            now = self.uptime()
            while self.last_uptime < now:
                self.last_uptime += 1
                self.on_tick(self.last_uptime)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="ipfw-like userspace firewall for the lab")
    for name in ("client-if", "server-if", "client-if-mac", "server-if-mac", "client-mac",
                 "server-mac", "client-addr", "server-addr", "params"):
        ap.add_argument("--" + name, required=True)
    ap.add_argument("--parent", type=int, required=True)
    args = ap.parse_args(argv)
    ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL: die with the lab
    if os.getppid() != args.parent:
        return 1
    Bridge(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
