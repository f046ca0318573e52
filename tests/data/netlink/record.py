#!/usr/bin/env python3
"""Record real sock_diag replies as readable fixtures (*.dump). Root only.

    sudo python3 tests/data/netlink/record.py [outdir]

Builds the population of population.py in a throwaway namespace, sends
each request below, and writes one ``<name>.dump`` per request: the
request, every reply datagram as an annotated hex dump, and after each
socket message the expected decode as one JSON line (``expect:``).

The expected decode comes from :func:`reference_decode`, a deliberately
plain struct-based decoder written from the uapi headers, independent of
tcplinger's vectorised codec. Before anything is written it is checked
against ``ss -tanoe`` for the same namespace (state, addresses, ports,
queues, uid, inode, cookie, timer kind, shutdown) and against the
population that was built, so a fixture cannot record a wrong answer.

File format (``#`` starts a comment; parsed by tests/unit/test_netlink_codec.py)::

    option: {"name": ..., "kind": "dump" | "lookup" | "ack", "tcp_info": bool, ...}
    request: <hex>
    datagram: <length>
    0000: 7c000000 14000200 ...    offset: 16 bytes, in 4-byte groups
    expect: {"family": 2, "state": 10, ...}   one per SOCK_DIAG_BY_FAMILY message
    result: {"done": true, "error": null, "sockets": 12}
"""

from __future__ import annotations

import errno
import os
import json
import platform
import socket
import struct
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# --- reference decoder (independent of tcplinger.collect.netlink.codec) ----

HDR = struct.Struct("=IHHII")
FIXED = struct.Struct("=BBBB")          # family state timer retrans
PORTS = struct.Struct(">HH")            # network order
TAIL = struct.Struct("=IIIIIIII")       # if cookie[0] cookie[1] expires rq wq uid inode
NLA = struct.Struct("=HH")
# struct tcp_info up to tcpi_total_retrans, in linux/tcp.h order.
TCPI = struct.Struct("=8B24I")
TCPI_NAMES = ("state ca_state retransmits probes backoff options wscale flags "
              "rto ato snd_mss rcv_mss unacked sacked lost retrans fackets "
              "last_data_sent last_ack_sent last_data_recv last_ack_recv pmtu rcv_ssthresh "
              "rtt rttvar snd_ssthresh snd_cwnd advmss reordering rcv_rtt rcv_space "
              "total_retrans").split()
#: The tcp_info subset tcplinger keeps (model/table.py TCP_INFO_FIELDS).
TCPI_KEPT = ("state ca_state retransmits probes backoff options rto ato snd_mss rcv_mss "
             "unacked sacked lost retrans last_data_sent last_ack_sent last_data_recv "
             "last_ack_recv rtt rttvar snd_cwnd total_retrans").split()

MSG_TYPES = {1: "NLMSG_NOOP", 2: "NLMSG_ERROR", 3: "NLMSG_DONE", 4: "NLMSG_OVERRUN",
             20: "SOCK_DIAG_BY_FAMILY", 21: "SOCK_DESTROY"}
ATTRS = {1: "MEMINFO", 2: "INFO", 3: "VEGASINFO", 4: "CONG", 5: "TOS", 6: "TCLASS",
         7: "SKMEMINFO", 8: "SHUTDOWN", 9: "DCTCPINFO", 10: "PROTOCOL", 11: "SKV6ONLY",
         12: "LOCALS", 13: "PEERS", 14: "PAD", 15: "MARK", 16: "BBRINFO", 17: "CLASS_ID",
         18: "MD5SIG", 19: "ULP_INFO", 20: "SK_BPF_STORAGES", 21: "CGROUP_ID", 22: "SOCKOPT"}
STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
          6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
          11: "CLOSING", 12: "NEW_SYN_RECV", 13: "BOUND_INACTIVE"}
TIMERS = {0: "off", 1: "retransmit", 2: "keepalive", 3: "timewait", 4: "probe"}


def _align(n: int) -> int:
    return (n + 3) & ~3


def reference_messages(data: bytes) -> list[dict]:
    """Every message of one datagram, one dict each (loop, struct)."""
    out = []
    pos = 0
    while pos + 16 <= len(data):
        length, mtype, flags, seq, pid = HDR.unpack_from(data, pos)
        if length < 16 or pos + length > len(data):
            raise ValueError(f"bad nlmsg_len {length} at {pos}")
        msg = {"offset": pos, "len": length, "type": mtype, "flags": flags, "seq": seq,
               "pid": pid}
        if mtype == 20:
            msg["socket"] = _reference_socket(data, pos, length)
        elif mtype in (2, 3) and length >= 20:
            msg["errno"] = -struct.unpack_from("=i", data, pos + 16)[0]
        out.append(msg)
        pos += _align(length)
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} trailing bytes")
    return out


def _reference_socket(data: bytes, pos: int, length: int) -> dict:
    p = pos + 16
    family, state, timer, retrans = FIXED.unpack_from(data, p)
    sport, dport = PORTS.unpack_from(data, p + 4)
    src, dst = data[p + 8:p + 24], data[p + 24:p + 40]
    ifindex, ck0, ck1, expires, rq, wq, uid, inode = TAIL.unpack_from(data, p + 40)
    attrs = []
    a, end = pos + 88, pos + length
    while a + 4 <= end:
        nla_len, nla_type = NLA.unpack_from(data, a)
        if nla_len < 4 or a + nla_len > end:
            break
        attrs.append((nla_type & 0x3FFF, a, nla_len))
        a += _align(nla_len)
    shutdown = -1
    info = None
    for nla_type, a, nla_len in attrs:
        if nla_type == 8 and nla_len >= 5:
            shutdown = struct.unpack_from("=b", data, a + 4)[0]
        if nla_type == 2:
            payload = data[a + 4:a + nla_len]
            full = dict(zip(TCPI_NAMES, TCPI.unpack(payload[:TCPI.size].ljust(TCPI.size, b"\0"))))
            info = {k: full[k] for k in TCPI_KEPT}
    # Full sockets always carry SHUTDOWN (inet_diag_msg_attrs_fill()); timewait-type
    # minisockets never do. On 6.18 they are not attribute-free, though: a
    # CAP_NET_ADMIN caller gets INET_DIAG_MARK (tw_mark) for them too.
    timewait = not any(t == 8 for t, _, _ in attrs)
    assert timewait == (timer == 3), "timewait rule: no SHUTDOWN <=> idiag_timer 3"
    return {
        "family": family, "state": state, "timer": timer, "retrans": retrans,
        "timewait": timewait, "shutdown": shutdown, "sport": sport, "dport": dport,
        "expires_ms": expires, "uid": uid, "inode": inode, "cookie": ck0 | (ck1 << 32),
        "recv_q": rq, "send_q": wq, "saddr": src.hex(), "daddr": dst.hex(),
        "_attrs": [(ATTRS.get(t, str(t)), ln) for t, _, ln in attrs], "_tcp_info": info,
        "_ifindex": ifindex,
    }


def address(family: int, hexraw: str) -> str:
    raw = bytes.fromhex(hexraw)
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    return socket.inet_ntop(socket.AF_INET6, raw)  # '::ffff:127.0.0.1' as ss prints it


# --- writing -------------------------------------------------------------

def _hexlines(data: bytes, start: int, end: int) -> list[str]:
    lines = []
    for off in range(start, end, 16):
        row = data[off:min(off + 16, end)]
        groups = " ".join(row[i:i + 4].hex() for i in range(0, len(row), 4))
        lines.append(f"{off:04x}: {groups}")
    return lines


def _describe(msg: dict) -> list[str]:
    flags = msg["flags"]
    head = (f"# msg @0x{msg['offset']:04x} len={msg['len']} "
            f"{MSG_TYPES.get(msg['type'], msg['type'])} flags=0x{flags:x} "
            f"seq={msg['seq']} pid={msg['pid']}")
    out = [head]
    s = msg.get("socket")
    if s:
        fam = "AF_INET" if s["family"] == 2 else "AF_INET6"
        out.append(f"#   {fam} {STATES.get(s['state'], s['state'])} "
                   f"{address(s['family'], s['saddr'])} :{s['sport']} -> "
                   f"{address(s['family'], s['daddr'])} :{s['dport']}  "
                   f"timer={TIMERS.get(s['timer'], s['timer'])} expires={s['expires_ms']}ms "
                   f"retrans={s['retrans']} rq={s['recv_q']} wq={s['send_q']}")
        out.append(f"#   uid={s['uid']} inode={s['inode']} cookie=0x{s['cookie']:x} "
                   f"shutdown={s['shutdown']} timewait-type={s['timewait']}")
        attrs = ", ".join(f"{n}({ln})" for n, ln in s["_attrs"]) or "none"
        out.append(f"#   attributes @88: {attrs}")
    elif "errno" in msg:
        e = msg["errno"]
        name = errno.errorcode.get(e, str(e)) if e else "success"
        out.append(f"#   error field: {-e} ({name})")
    return out


def expect_json(sock: dict, tcp_info: bool) -> str:
    out = {k: v for k, v in sock.items() if not k.startswith("_")}
    if tcp_info:
        out["tcp_info"] = sock["_tcp_info"]
    return json.dumps(out, separators=(", ", ": "))


def write_fixture(path: Path, *, name: str, what: str, kind: str, request: bytes,
                  datagrams: list[bytes], tcp_info: bool = False, extra: dict | None = None) -> None:
    lines = [
        f"# tcplinger sock_diag fixture: {name}",
        f"# {what}",
        f"# kernel {platform.release()} ({platform.machine()}, little-endian),"
        f" recorded {time.strftime('%Y-%m-%d', time.gmtime())}"
        " by tests/data/netlink/record.py; expected decode from its reference decoder,",
        "# cross-checked against `ss -tanoe` at recording time.",
        "option: " + json.dumps({"name": name, "kind": kind, "tcp_info": tcp_info, **(extra or {})}),
        "request: " + request.hex(),
    ]
    count, done, error = 0, False, None
    for data in datagrams:
        lines.append("")
        lines.append(f"datagram: {len(data)}")
        for msg in reference_messages(data):
            lines.extend(_describe(msg))
            lines.extend(_hexlines(data, msg["offset"], msg["offset"] + _align(msg["len"])))
            if "socket" in msg:
                count += 1
                lines.append("expect: " + expect_json(msg["socket"], tcp_info))
            if msg["type"] in (2, 3):
                done = True
                if msg.get("errno") and error is None:
                    error = msg["errno"]
    lines.append("")
    result = {"done": done, "error": error, "sockets": count}
    if kind == "ack":
        result = {"errno": error or 0}
    lines.append("result: " + json.dumps(result))
    path.write_text("\n".join(lines) + "\n")


# --- cross-checks ----------------------------------------------------------

def sockets_of(datagrams: list[bytes]) -> list[dict]:
    return [m["socket"] for d in datagrams for m in reference_messages(d) if "socket" in m]


def check_against_ss(socks: list[dict], ss_lines, population) -> None:
    """Every decoded socket equals ss's line with the same cookie."""
    by_cookie = {line.cookie: line for line in ss_lines}
    for s in socks:
        line = by_cookie.get(s["cookie"])
        assert line is not None, f"cookie {s['cookie']:x} not in ss output"
        fam = s["family"]
        got = {
            "state": STATES[s["state"]], "local": (address(fam, s["saddr"]), s["sport"]),
            "remote": (address(fam, s["daddr"]), s["dport"]), "uid": s["uid"],
            "inode": s["inode"], "timer": s["timer"], "recv_q": s["recv_q"],
            "send_q": s["send_q"], "shutdown": None if s["shutdown"] < 0 else s["shutdown"],
        }
        want = {k: getattr(line, k) for k in got}
        assert got == want, f"decode {got} != ss {want}"
    expected = {(e.family, e.local, e.remote): e for e in population.expected}
    for s in socks:
        fam = s["family"]
        key = (fam, (address(fam, s["saddr"]), s["sport"]), (address(fam, s["daddr"]), s["dport"]))
        e = expected.get(key)
        assert e is not None, f"unexpected socket {key}"
        assert STATES[s["state"]] == e.state and s["timewait"] == e.timewait, (e, s)


#: Sends one request as an unprivileged user: without CAP_NET_ADMIN the
#: kernel leaves out INET_DIAG_MARK (so timewait-type messages are 88 bytes).
UNPRIVILEGED_CODE = r"""
import socket, struct, sys
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)
s.bind((0, 0))
s.sendto(bytes.fromhex(sys.argv[1]), (0, 0))
while True:
    data = s.recv(65536)
    print(data.hex(), flush=True)
    pos, end = 0, False
    while pos < len(data):
        length, mtype = struct.unpack_from("=IH", data, pos)
        end = end or mtype in (2, 3)
        pos += (length + 3) & ~3
    if end:
        break
"""


def unprivileged_exchange(ns, request: bytes) -> list[bytes]:
    out = ns.exec("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                  sys.executable, "-c", UNPRIVILEGED_CODE, request.hex())
    return [bytes.fromhex(line) for line in out.split()]


def main(outdir: Path) -> None:
    sys.path.insert(0, str(HERE))
    import population as P
    from tcplinger.collect.netlink import codec, wire
    from tcplinger.collect.netlink.dump import ALL, DiagSocket

    if os.geteuid() != 0:
        raise SystemExit("cannot record: needs root (network namespaces)")
    outdir.mkdir(parents=True, exist_ok=True)
    with P.Netns("rec") as ns, P.Population(ns) as pop:
        diag = ns.run(DiagSocket)
        try:
            def dump(family, mask, tcp_info=False):
                req = codec.encode_dump_request(family, mask, tcp_info=tcp_info, seq=diag.next_seq())
                return req, diag.exchange(req)

            recorded = {}
            recorded["inet_all"] = (*dump(socket.AF_INET, ALL), False,
                                    "AF_INET dump, all states (ss -4 -tan)", "dump", {"family": 2, "states": ALL})
            recorded["inet6_all"] = (*dump(socket.AF_INET6, ALL), False,
                                     "AF_INET6 dump, all states (incl. a v4-mapped pair)", "dump",
                                     {"family": 10, "states": ALL})
            recorded["inet_tcp_info"] = (*dump(socket.AF_INET, ALL, True), True,
                                         "AF_INET dump, all states, with INET_DIAG_INFO (tcp_info)",
                                         "dump", {"family": 2, "states": ALL})
            recorded["inet6_tcp_info"] = (*dump(socket.AF_INET6, ALL, True), True,
                                          "AF_INET6 dump, all states, with INET_DIAG_INFO (tcp_info)",
                                          "dump", {"family": 10, "states": ALL})
            req = codec.encode_dump_request(socket.AF_INET, ALL, seq=diag.next_seq())
            recorded["inet_all_unprivileged"] = (
                req, unprivileged_exchange(ns, req), False,
                "AF_INET dump, all states, sent by uid 65534: no INET_DIAG_MARK attributes",
                "dump", {"family": 2, "states": ALL})
            mask = (1 << 5) | (1 << 8)
            recorded["inet6_fin_wait2_close_wait"] = (
                *dump(socket.AF_INET6, mask), False,
                "AF_INET6 dump of FIN_WAIT2|CLOSE_WAIT: the FIN_WAIT2 bit also matches the"
                " timewait-type orphan", "dump", {"family": 10, "states": mask})

            ss_lines = P.parse_ss(ns.exec("ss", "-tanoe"))
            for key in ("inet_all", "inet6_all", "inet_tcp_info", "inet6_tcp_info",
                        "inet_all_unprivileged"):
                check_against_ss(sockets_of(recorded[key][1]), ss_lines, pop)
            n_all = len(sockets_of(recorded["inet_all"][1]) + sockets_of(recorded["inet6_all"][1]))
            assert n_all == len(pop.expected) == len(ss_lines), (n_all, len(pop.expected))
            for s in sockets_of(recorded["inet6_fin_wait2_close_wait"][1]):
                assert STATES[s["state"]] in ("FIN_WAIT2", "CLOSE_WAIT")

            tw = next(e for e in pop.expected if e.label == "tw4_client")
            tw_sock = next(s for s in sockets_of(recorded["inet_all"][1])
                           if s["sport"] == tw.local[1] and s["timewait"])

            def exact(e, cookie, msg_type=wire.SOCK_DIAG_BY_FAMILY):
                req = codec.encode_exact_request(e.family, src=e.local[0], sport=e.local[1],
                                                 dst=e.remote[0], dport=e.remote[1],
                                                 cookie=cookie, msg_type=msg_type,
                                                 seq=diag.next_seq())
                return req, diag.exchange(req)

            recorded["lookup_timewait"] = (*exact(tw, tw_sock["cookie"]), False,
                                           "exact lookup (4-tuple + cookie) of the IPv4 TIME_WAIT socket",
                                           "lookup", {})
            orphan = next(e for e in pop.expected if e.label == "orphan4_client")
            recorded["lookup_wrong_cookie"] = (
                *exact(orphan, 12345), False,
                "exact lookup of the IPv4 orphan's 4-tuple with a wrong cookie: 6.18 answers"
                " ENOENT (inet_diag_find_one_icsk() turns the cookie check's ESTALE into"
                " ENOENT)", "lookup", {})
            gone = P.Expected("gone", socket.AF_INET, "CLOSE", ("127.0.0.1", 1), ("127.0.0.1", 2),
                              False, False)
            recorded["lookup_enoent"] = (*exact(gone, wire.NO_COOKIE), False,
                                         "exact lookup of a 4-tuple nobody has: ENOENT", "lookup", {})
            req = bytearray(codec.encode_dump_request(socket.AF_INET, ALL, seq=diag.next_seq()))
            req[17] = 255  # sdiag_protocol without a handler
            recorded["dump_done_enoent"] = (bytes(req), diag.exchange(bytes(req)), False,
                                            "dump for protocol 255: the error arrives in NLMSG_DONE",
                                            "dump", {})
            req = bytearray(codec.encode_dump_request(socket.AF_INET, ALL, seq=diag.next_seq()))
            req[16] = 3  # AF_AX25: no sock_diag handler
            recorded["dump_error_enoent"] = (bytes(req), diag.exchange(bytes(req)), False,
                                             "dump for family 3 (no handler): a lone NLMSG_ERROR",
                                             "dump", {})
            half = next(e for e in pop.expected if e.label == "half4_server")
            half_sock = next(s for s in sockets_of(recorded["inet_all"][1])
                             if STATES[s["state"]] == "CLOSE_WAIT" and s["dport"] == half.remote[1])
            recorded["destroy_close_wait"] = (*exact(half, half_sock["cookie"], wire.SOCK_DESTROY),
                                              False, "SOCK_DESTROY of a CLOSE_WAIT socket: ack 0",
                                              "ack", {})
        finally:
            diag.close()
    for name, (req, datagrams, tcp_info, what, kind, extra) in recorded.items():
        write_fixture(outdir / f"{name}.dump", name=name, what=what, kind=kind, request=req,
                      datagrams=datagrams, tcp_info=tcp_info, extra=extra)
        print(f"wrote {outdir / (name + '.dump')}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
