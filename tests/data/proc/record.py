"""Record real /proc trees for the procfs and kernel-context tests.

Run as root from the repository root::

    python tests/data/proc/record.py            # writes tests/data/proc/{netns-mix,host}/

``netns-mix`` is a network namespace (``tl-pk-rec-<pid>``, deleted
afterwards) populated with a known mix of sockets over IPv4 and IPv6 (see
:func:`build_mix`); ``host`` is the init namespace, recorded for its
sysctls and counters only (its sockets belong to whoever else runs here).

Each tree holds the files as the kernel printed them (``net/tcp``,
``net/tcp6``, ``net/sockstat``, ``net/sockstat6``, ``net/netstat``,
``sys/net/...``), ``ss.txt`` (``ss -tanoeH`` taken right after reading
``net/tcp*``), ``manifest.json`` (what the holder created) and the
expected decode:

* ``expected_sockets.json``: one object per row of ``net/tcp`` and
  ``net/tcp6``, in file order. It is produced by a decoder in this file that
  shares no code with tcplinger (``struct`` + ``inet_ntop``) and is checked,
  at recording time, against ``ss`` (sock_diag, so not /proc at all) on
  state, addresses, ports, queues, inode, uid and timer, and against the
  manifest; recording stops if they disagree.
* ``expected_kernel.json``: sysctls as ``sysctl -n`` printed them, the
  ``TcpExt`` counters as ``nstat -asz`` printed them, and the sockstat
  fields read by hand-written splitting.

:func:`build_mix` is also used by tests/privileged/test_procfs_agrees.py,
which runs this file with ``--hold`` inside a namespace it creates.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

SERVER = {socket.AF_INET: "10.77.0.1", socket.AF_INET6: "fd77::1"}
CLIENT = {socket.AF_INET: "10.77.0.2", socket.AF_INET6: "fd77::2"}
BASE_PORT = {socket.AF_INET: 8000, socket.AF_INET6: 8100}
NOBODY = 65534

#: Sysctls recorded (the paths of tcplinger.model.kernel.SYSCTLS, repeated
#: here so the recording does not depend on the code it checks).
SYSCTL_PATHS = (
    "net/ipv4/tcp_fin_timeout", "net/ipv4/tcp_keepalive_time",
    "net/ipv4/tcp_keepalive_intvl", "net/ipv4/tcp_keepalive_probes",
    "net/ipv4/tcp_max_tw_buckets", "net/ipv4/tcp_max_orphans",
    "net/ipv4/tcp_orphan_retries", "net/ipv4/tcp_retries2", "net/ipv4/tcp_tw_reuse",
    "net/ipv4/ip_local_port_range", "net/ipv4/tcp_mem",
    "net/netfilter/nf_conntrack_max", "net/netfilter/nf_conntrack_count",
    "net/netfilter/nf_conntrack_tcp_timeout_fin_wait",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
    "net/netfilter/nf_conntrack_tcp_timeout_time_wait",
    "net/netfilter/nf_conntrack_tcp_timeout_last_ack",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
)
NET_FILES = ("tcp", "tcp6", "sockstat", "sockstat6", "netstat")


# --------------------------------------------------------------------------
# namespace setup (run outside)

def netns_setup(name: str) -> None:
    """Create ``name`` with lo up carrying the mix's addresses.

    (lo, not a dummy link: this kernel has no dummy driver.)
    """
    def ip(*args):
        subprocess.run(["ip", "-n", name, *args], check=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    ip("link", "set", "lo", "up")
    for fam in (socket.AF_INET, socket.AF_INET6):
        for addr in (SERVER[fam], CLIENT[fam]):
            if fam == socket.AF_INET:
                ip("addr", "add", f"{addr}/32", "dev", "lo")
            else:
                ip("-6", "addr", "add", f"{addr}/128", "dev", "lo", "nodad")


def netns_delete(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], check=False,
                   stderr=subprocess.DEVNULL)


# --------------------------------------------------------------------------
# the mix (run inside the namespace)

def _ep(addr) -> dict:
    return {"address": _norm(addr[0]), "port": addr[1]}


def _norm(text: str) -> str:
    fam = socket.AF_INET6 if ":" in text else socket.AF_INET
    return socket.inet_ntop(fam, socket.inet_pton(fam, text))


def _ino(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


def build_mix() -> tuple[list[socket.socket], list[dict]]:
    """Create the mix in the calling process's namespace.

    Returns the sockets to keep open and a manifest: one entry per socket
    the kernel will list, with what is known for certain about it (role,
    family, state, endpoints, inode, uid, timewait_type, timer kind).

    Per family: a LISTEN socket; a LISTEN socket owned by uid 65534; an
    ESTABLISHED pair with unread data both ways; an ESTABLISHED pair with
    keepalive armed; an ESTABLISHED pair whose receiver's window is full
    (sender: zero-window probe timer and a send queue); a CLOSE_WAIT whose
    peer is an orphan FIN_WAIT2 handed to a timewait-type socket (fin
    timeout <= 60 s); a CLOSE_WAIT whose peer is an orphan FIN_WAIT2 still
    a full socket (TCP_LINGER2=120: keepalive timer, tcp_rcv_state_process
    in net/ipv4/tcp_input.c); a half-closed FIN_WAIT2 (shutdown(SHUT_WR),
    fd kept) with its CLOSE_WAIT; a TIME_WAIT; a connection left in the
    accept queue (ESTABLISHED, inode 0). IPv6 only: a dual-stack listener
    with an IPv4 client (v4-mapped addresses in tcp6).
    """
    keep: list[socket.socket] = []
    manifest: list[dict] = []

    def add(role, sock_or_none, fam, state, local, remote, *, inode=None, uid=0,
            timewait=False, timer=None):
        manifest.append({
            "role": role, "family": "ipv6" if fam == socket.AF_INET6 else "ipv4",
            "state": state, "local": _ep(local), "remote": _ep(remote),
            "inode": _ino(sock_or_none) if inode is None else inode,
            "uid": uid, "timewait_type": timewait, "timer": timer})

    for fam in (socket.AF_INET, socket.AF_INET6):
        srv, cli, base = SERVER[fam], CLIENT[fam], BASE_PORT[fam]
        any_ep = ("0.0.0.0", 0) if fam == socket.AF_INET else ("::", 0)

        def listener(port, *, rcvbuf=None, v6only=True):
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
            if rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.bind((srv if v6only else "::", port))
            s.listen(16)
            keep.append(s)
            return s

        def client(lst, *, opts=(), cfam=fam, caddr=cli):
            c = socket.socket(cfam, socket.SOCK_STREAM)
            for level, opt, val in opts:
                c.setsockopt(level, opt, val)
            c.bind((caddr, 0))
            c.connect(lst.getsockname()[:2] if lst.getsockname()[0] not in ("::",)
                      else (SERVER[socket.AF_INET], lst.getsockname()[1]))
            a, _ = lst.accept() if lst is not None else (None, None)
            return c, a

        lst = listener(base)
        add("listen", lst, fam, "LISTEN", (srv, base), any_ep)

        os.seteuid(NOBODY)  # sk_uid is the creator's fsuid
        try:
            lnb = socket.socket(fam, socket.SOCK_STREAM)
        finally:
            os.seteuid(0)
        if fam == socket.AF_INET6:
            lnb.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        lnb.bind((srv, base + 9))
        lnb.listen(4)
        keep.append(lnb)
        add("listen-uid-nobody", lnb, fam, "LISTEN", (srv, base + 9), any_ep, uid=NOBODY)

        # ESTABLISHED with unread data: the client has 1000 bytes to read,
        # the server 500 (recv_q on each side; send_q 0 once acked).
        c, a = client(lst)
        a.sendall(b"s" * 1000)
        c.sendall(b"c" * 500)
        keep += [c, a]
        add("estab-data-client", c, fam, "ESTABLISHED", c.getsockname(), c.getpeername())
        add("estab-data-server", a, fam, "ESTABLISHED", a.getsockname(), a.getpeername())

        c, a = client(lst, opts=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
                                 (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 600)])
        keep += [c, a]
        add("estab-keepalive-client", c, fam, "ESTABLISHED", c.getsockname(),
            c.getpeername(), timer="keepalive")
        add("estab-keepalive-server", a, fam, "ESTABLISHED", a.getsockname(), a.getpeername())

        # Zero window: a small receive buffer that is never read, and a
        # sender that writes until EAGAIN.
        lzw = listener(base + 1, rcvbuf=4096)
        c, a = client(lzw, opts=[(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)])
        c.setblocking(False)
        try:
            while True:
                c.send(b"z" * 4096)
        except BlockingIOError:
            pass
        keep += [lzw, c, a]
        add("listen-zerowindow", lzw, fam, "LISTEN", (srv, base + 1), any_ep)
        add("zerowindow-sender", c, fam, "ESTABLISHED", c.getsockname(), c.getpeername())
        add("zerowindow-receiver", a, fam, "ESTABLISHED", a.getsockname(), a.getpeername())

        # Orphan FIN_WAIT2, timewait-type (tcp_fin_timeout 60 <= TCP_TIMEWAIT_LEN).
        c, a = client(lst)
        local, remote = c.getsockname(), c.getpeername()
        c.close()
        keep.append(a)
        add("orphan-finwait2-tw", None, fam, "FIN_WAIT2", local, remote, inode=0,
            timewait=True, timer="timewait")
        add("closewait-of-orphan-tw", a, fam, "CLOSE_WAIT", a.getsockname(), a.getpeername())

        # Orphan FIN_WAIT2 that stays a full socket: TCP_LINGER2 = 120 s >
        # TCP_TIMEWAIT_LEN, so tcp_rcv_state_process arms the keepalive
        # timer for tmo - TCP_TIMEWAIT_LEN instead of calling tcp_time_wait.
        c, a = client(lst, opts=[(socket.IPPROTO_TCP, socket.TCP_LINGER2, 120)])
        local, remote = c.getsockname(), c.getpeername()
        c.close()
        keep.append(a)
        add("orphan-finwait2-full", None, fam, "FIN_WAIT2", local, remote, inode=0,
            timer="keepalive")
        add("closewait-of-orphan-full", a, fam, "CLOSE_WAIT", a.getsockname(), a.getpeername())

        # Half-closed: FIN sent, fd kept; no timer (the socket is not dead).
        c, a = client(lst)
        c.shutdown(socket.SHUT_WR)
        keep += [c, a]
        add("halfclosed-finwait2", c, fam, "FIN_WAIT2", c.getsockname(), c.getpeername())
        add("closewait-of-halfclosed", a, fam, "CLOSE_WAIT", a.getsockname(), a.getpeername())

        # TIME_WAIT on the client: it closes first, then the server.
        c, a = client(lst)
        local, remote = c.getsockname(), c.getpeername()
        c.close()
        time.sleep(0.05)
        a.close()
        add("timewait", None, fam, "TIME_WAIT", local, remote, inode=0, timewait=True,
            timer="timewait")

        if fam == socket.AF_INET6:
            # A dual-stack listener with an IPv4 client: the server side is
            # in tcp6 with v4-mapped addresses, the client in tcp.
            ld = listener(base + 2, v6only=False)
            add("listen-dualstack", ld, fam, "LISTEN", ("::", base + 2), ("::", 0))
            c, a = client(ld, cfam=socket.AF_INET, caddr=CLIENT[socket.AF_INET])
            keep += [c, a]
            add("mapped-client", c, socket.AF_INET, "ESTABLISHED", c.getsockname(),
                c.getpeername())
            add("mapped-server", a, fam, "ESTABLISHED", a.getsockname(), a.getpeername())

        # Last: a connection nobody accepts (in the accept queue: ESTABLISHED
        # with inode 0; the listener's recv_q counts it).
        c = socket.socket(fam, socket.SOCK_STREAM)
        c.bind((cli, 0))
        c.connect((srv, base))
        keep.append(c)
        add("unaccepted-client", c, fam, "ESTABLISHED", c.getsockname(), c.getpeername())
        add("unaccepted-server", None, fam, "ESTABLISHED", c.getpeername(),
            c.getsockname(), inode=0)

    time.sleep(0.5)  # FIN/ACK exchanges and the zero-window probe timer settle
    return keep, manifest


# --------------------------------------------------------------------------
# an independent decoder and ss parser (no tcplinger code)

def decode_proc_line(line: str, family: int) -> dict:
    """One /proc/net/tcp{,6} row, decoded with struct + inet_ntop."""
    f = line.split()
    def addr(field):
        hexaddr, port = field.split(":")
        words = [int(hexaddr[i:i + 8], 16) for i in range(0, len(hexaddr), 8)]
        raw = struct.pack(f"={len(words)}I", *words)  # host-order u32 words
        fam = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
        return {"address": socket.inet_ntop(fam, raw), "port": int(port, 16)}
    tx, rx = (int(x, 16) for x in f[4].split(":"))
    tr, when = (int(x, 16) for x in f[5].split(":"))
    retrnsmt, probes = int(f[6], 16), int(f[8])
    return {
        "family": "ipv6" if family == socket.AF_INET6 else "ipv4",
        "state": STATE_NAMES[int(f[3], 16)],
        "local": addr(f[1]), "remote": addr(f[2]),
        "timer": {"kind": TIMER_NAMES[tr], "expires_ms": when * 1000 // os.sysconf("SC_CLK_TCK"),
                  "retransmits": probes if tr in (2, 4) else retrnsmt},
        "uid": int(f[7]), "inode": int(f[9]),
        "recv_q": rx, "send_q": tx, "timewait_type": tr == 3,
    }


STATE_NAMES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1",
               5: "FIN_WAIT2", 6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT",
               9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING", 12: "NEW_SYN_RECV"}
TIMER_NAMES = {0: "off", 1: "retransmit", 2: "keepalive", 3: "timewait", 4: "probe"}
SS_STATES = {"ESTAB": "ESTABLISHED", "LISTEN": "LISTEN", "TIME-WAIT": "TIME_WAIT",
             "FIN-WAIT-2": "FIN_WAIT2", "FIN-WAIT-1": "FIN_WAIT1",
             "CLOSE-WAIT": "CLOSE_WAIT", "LAST-ACK": "LAST_ACK", "CLOSING": "CLOSING",
             "SYN-RECV": "SYN_RECV", "SYN-SENT": "SYN_SENT"}
SS_TIMERS = {"on": "retransmit", "keepalive": "keepalive", "timewait": "timewait",
             "persist": "probe"}


def ss_ms(text: str) -> tuple[int, int]:
    """ss's print_ms_timer text -> (ms, resolution in ms)."""
    m = re.fullmatch(r"(?:(\d+)min)?(?:(\d+)(?:sec|\.))?(?:(\d+)ms)?", text)
    mins, secs, ms = (int(g) if g else 0 for g in m.groups())
    res = 60_000 if mins > 9 else 1000 if (mins or secs > 9 or "sec" in text) else 1
    return (mins * 60 + secs) * 1000 + ms, res


def parse_ss(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        row = {"state": SS_STATES[f[0]], "recv_q": int(f[1]), "send_q": int(f[2]),
               "local": _ss_ep(f[3]), "remote": _ss_ep(f[4]), "uid": 0, "inode": 0,
               "timer": None}
        for extra in f[5:]:
            if extra.startswith("timer:("):
                kind, exp, retr = extra[len("timer:("):-1].split(",")
                ms, res = ss_ms(exp)
                row["timer"] = {"kind": SS_TIMERS[kind], "ms": ms, "res": res,
                                "retransmits": int(retr)}
            elif extra.startswith("uid:"):
                row["uid"] = int(extra[4:])
            elif extra.startswith("ino:"):
                row["inode"] = int(extra[4:])
        out.append(row)
    return out


def _ss_ep(text: str) -> dict:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if host == "*":  # ss prints the wildcard of a dual-stack (v6only=0) socket so
        host = "::"
    host = host.split("%")[0]
    return {"address": _norm(host), "port": 0 if port == "*" else int(port)}


def _key(row) -> tuple:
    return (row["state"], row["local"]["address"], row["local"]["port"],
            row["remote"]["address"], row["remote"]["port"])


def check_against_ss(rows: list[dict], ss_rows: list[dict], elapsed_ms: float) -> list[str]:
    """Differences between the decoded /proc rows and ss, as messages."""
    problems = []
    by_key = {}
    for r in ss_rows:
        by_key.setdefault(_key(r), []).append(r)
    for row in rows:
        cands = by_key.get(_key(row), [])
        cands = [c for c in cands if c["inode"] == row["inode"]]
        if len(cands) != 1:
            problems.append(f"no unique ss row for {row}")
            continue
        s = cands[0]
        for col in ("uid", "recv_q") + (("send_q",) if row["state"] != "LISTEN" else ()):
            if s[col] != row[col]:
                problems.append(f"{col}: ss {s[col]} /proc {row[col]} for {row}")
        kind = row["timer"]["kind"]
        if kind == "off":
            if s["timer"] is not None:
                problems.append(f"timer: ss {s['timer']} /proc off for {row}")
            continue
        if s["timer"] is None or s["timer"]["kind"] != kind:
            problems.append(f"timer kind: ss {s['timer']} /proc {kind} for {row}")
            continue
        if kind != "probe":  # the probe timer re-arms between the two reads
            slack = s["timer"]["res"] + 20 + elapsed_ms
            if abs(s["timer"]["ms"] - row["timer"]["expires_ms"]) > slack:
                problems.append(f"expires: ss {s['timer']} /proc {row['timer']} for {row}")
            if s["timer"]["retransmits"] != row["timer"]["retransmits"]:
                problems.append(f"retransmits: ss {s['timer']} /proc {row['timer']}")
    if len(rows) != len(ss_rows):
        problems.append(f"/proc has {len(rows)} rows, ss {len(ss_rows)}")
    return problems


def check_against_manifest(rows: list[dict], manifest: list[dict]) -> list[str]:
    problems = []
    for m in manifest:
        hits = [r for r in rows if _key(r) == _key(m) and r["family"] == m["family"]]
        if len(hits) != 1:
            problems.append(f"{m['role']}: {len(hits)} rows match {_key(m)}")
            continue
        r = hits[0]
        m["matched"] = True
        for col in ("inode", "uid", "timewait_type"):
            if r[col] != m[col]:
                problems.append(f"{m['role']}: {col} {r[col]} != {m[col]}")
        if m["timer"] and r["timer"]["kind"] != m["timer"]:
            problems.append(f"{m['role']}: timer {r['timer']['kind']} != {m['timer']}")
        r["role"] = m["role"]
    return problems


# --------------------------------------------------------------------------
# recording

def read_net(proc_net: Path, out: Path) -> None:
    (out / "net").mkdir(parents=True, exist_ok=True)
    for name in NET_FILES:
        src = proc_net / name
        if src.exists():
            (out / "net" / name).write_bytes(src.read_bytes())


def read_sys(proc_sys: Path, out: Path) -> dict:
    values = {}
    for rel in SYSCTL_PATHS:
        src = proc_sys / rel
        if not src.exists():
            continue
        dst = out / "sys" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
        printed = subprocess.run(["sysctl", "-n", rel.replace("/", ".")],
                                 capture_output=True, text=True, check=True).stdout
        nums = [int(x) for x in printed.split()]
        values[rel.rsplit("/", 1)[1]] = nums[0] if len(nums) == 1 else nums
    return values


def expected_kernel(out: Path, sysctls: dict, proc_net: Path) -> dict:
    # nstat reads /proc/net/netstat itself: take its view between two reads of
    # the file and insist all three agree on TcpExt (nothing moves when idle).
    for _ in range(10):
        before = (proc_net / "netstat").read_text()
        nstat = subprocess.run(["nstat", "-asz", "--json"], capture_output=True,
                               text=True, check=True).stdout
        after = (proc_net / "netstat").read_text()
        if before == after:
            break
    else:
        raise SystemExit("netstat kept moving")
    (out / "net" / "netstat").write_text(after)
    kernel = json.loads(nstat)["kernel"]
    tcpext = {k[len("TcpExt"):]: v for k, v in kernel.items() if k.startswith("TcpExt")}
    sock = {}
    for name in ("sockstat", "sockstat6"):
        path = out / "net" / name
        if path.exists():
            for line in path.read_text().splitlines():
                label, _, rest = line.partition(":")
                words = rest.split()
                sock[label] = dict(zip(words[::2], (int(w) for w in words[1::2])))
    return {"sysctls": sysctls, "tcpext": tcpext, "sockstat": sock}


def record_inside(out: Path) -> None:
    """Runs inside the namespace: build the mix, copy /proc, check, write."""
    keep, manifest = build_mix()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    proc_net = Path("/proc/net")  # this process's namespace (ip netns exec)
    t0 = time.monotonic()
    read_net(proc_net, out)
    ss_text = subprocess.run(["ss", "-tanoeH"], capture_output=True, text=True,
                             check=True).stdout
    elapsed = (time.monotonic() - t0) * 1000
    (out / "ss.txt").write_text(ss_text)
    rows = []
    for name, fam in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        lines = (out / "net" / name).read_text().splitlines()[1:]
        rows += [decode_proc_line(ln, fam) for ln in lines if ln.strip()]
    problems = check_against_ss(rows, parse_ss(ss_text), elapsed)
    problems += check_against_manifest(rows, manifest)
    if problems:
        raise SystemExit("recording does not check out:\n  " + "\n  ".join(problems))
    sysctls = read_sys(Path("/proc/sys"), out)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (out / "expected_sockets.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "expected_kernel.json").write_text(
        json.dumps(expected_kernel(out, sysctls, proc_net), indent=1) + "\n")
    for s in keep:
        s.close()
    print(f"recorded {len(rows)} sockets into {out}")


def record_host(out: Path) -> None:
    """The init namespace: kernel context only."""
    if out.exists():
        shutil.rmtree(out)
    (out / "net").mkdir(parents=True)
    for name in ("sockstat", "sockstat6"):
        (out / "net" / name).write_bytes(Path("/proc/net", name).read_bytes())
    sysctls = read_sys(Path("/proc/sys"), out)
    (out / "expected_kernel.json").write_text(
        json.dumps(expected_kernel(out, sysctls, Path("/proc/net")), indent=1) + "\n")
    print(f"recorded host context into {out}")


def hold() -> None:
    """Build the mix, print the manifest as one JSON line, wait for stdin EOF."""
    keep, manifest = build_mix()
    print(json.dumps({"pid": os.getpid(), "manifest": manifest}), flush=True)
    sys.stdin.read()
    for s in keep:
        s.close()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--inside", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--hold", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.hold:
        return hold()
    if args.inside:
        return record_inside(args.inside)
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    ns = f"tl-pk-rec-{os.getpid()}"
    try:
        netns_setup(ns)
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__,
                        "--inside", str(args.out / "netns-mix")], check=True)
        record_host(args.out / "host")
    finally:
        netns_delete(ns)


if __name__ == "__main__":
    main()
