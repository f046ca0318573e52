"""A known socket population in a throwaway network namespace, and `ss`.

Shared by tests/data/netlink/record.py (fixtures) and the privileged
netlink tests. Namespaces are named ``tl-nl-<tag>-<pid>`` and always
deleted. Root only.

Per family (IPv4 on 127.0.0.1, IPv6 on ::1) the population holds:

* ``listen``       LISTEN on port 5000 (uid 0), and ``listen_nobody`` on
  5100 owned by uid 65534 (a child process, so uid is not 0);
* ``est_client``/``est_server``  ESTABLISHED; the client has SO_KEEPALIVE
  (keepalive timer) and 100 unread bytes (recv_q 100);
* ``half_client``  FIN_WAIT2 full socket: shutdown(SHUT_WR), fd kept;
  ``half_server`` CLOSE_WAIT, the peer of it;
* ``orphan_client`` orphaned FIN_WAIT2: close()d while the server never
  closes; tcp_fin_timeout is 30 s in the namespace, so the kernel turns it
  into a timewait-type minisocket (tcp_time_wait(sk, TCP_FIN_WAIT2, tmo),
  net/ipv4/tcp_input.c); ``orphan_server`` CLOSE_WAIT;
* ``tw_client``    TIME_WAIT: the client closes first, then the server.

Plus a dual-stack ``[::]:5001`` listener (``dual_listen``) accepting an
IPv4 client: the accepted socket is AF_INET6 with ``::ffff:127.0.0.1``.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import re
import socket
import subprocess
import sys
import threading
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

FIN_TIMEOUT = 30
PORT = 5000
PORT_NOBODY = 5100
PORT_DUAL = 5001
LOOPBACK = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}


class Netns:
    """``ip netns add`` on enter, ``ip netns del`` on exit (always)."""

    def __init__(self, tag: str, *, fin_timeout: int = FIN_TIMEOUT):
        self.name = f"tl-nl-{tag}-{os.getpid()}"
        self.fin_timeout = fin_timeout

    def __enter__(self) -> "Netns":
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        try:
            subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
            self.sysctl("net.ipv4.tcp_fin_timeout", self.fin_timeout)
        except BaseException:
            self.delete()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.delete()

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def sysctl(self, key: str, value) -> None:
        subprocess.run(["ip", "netns", "exec", self.name, "sysctl", "-qw", f"{key}={value}"],
                       check=True)

    def run(self, fn, *args, **kwargs):
        """``fn(*args)`` in a fresh thread that entered this namespace."""
        return run_in_netns(f"/run/netns/{self.name}", fn, *args, **kwargs)

    def exec(self, *argv: str) -> str:
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], check=True,
                              capture_output=True, text=True).stdout


def run_in_netns(path: str, fn, *args, **kwargs):
    """setns() switches only the calling thread, so use a throwaway one."""
    box: dict = {}

    def target():
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({path}): {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    worker = threading.Thread(target=target, name="netns-worker")
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


@dataclasses.dataclass(frozen=True)
class Expected:
    label: str
    family: int
    state: str  # kernel name, as model.states
    local: tuple[str, int]
    remote: tuple[str, int]
    timewait: bool
    owned: bool  # held by this process (has an fd here)


_NOBODY_CODE = r"""
import socket, sys
socks = []
for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((addr, %d))
    s.listen(4)
    socks.append(s)
print("ready", flush=True)
sys.stdin.read()
""" % PORT_NOBODY


class Population:
    """Builds the population inside ``ns``; :meth:`close` ends it all."""

    def __init__(self, ns: Netns):
        self.ns = ns
        self.socks: dict[str, socket.socket] = {}
        self.expected: list[Expected] = []
        self._nobody: subprocess.Popen | None = None

    def __enter__(self) -> "Population":
        try:
            self._start_nobody()
            self.ns.run(self._build)
            time.sleep(0.3)  # loopback FIN/ACK exchanges settle
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for s in self.socks.values():
            s.close()
        self.socks.clear()
        if self._nobody is not None:
            self._nobody.stdin.close()
            self._nobody.wait(timeout=10)
            self._nobody = None

    def _start_nobody(self) -> None:
        self._nobody = subprocess.Popen(
            ["ip", "netns", "exec", self.ns.name, "setpriv", "--reuid=65534", "--regid=65534",
             "--clear-groups", sys.executable, "-c", _NOBODY_CODE],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self._nobody.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError("uid-65534 listener did not start")
        for fam, addr in LOOPBACK.items():
            self._expect(f"listen_nobody{_sfx(fam)}", fam, "LISTEN", (addr, PORT_NOBODY),
                         (_any(fam), 0), owned=False)

    def _expect(self, label, fam, state, local, remote, *, timewait=False, owned=True):
        self.expected.append(Expected(label, fam, state, local, remote, timewait, owned))

    def _keep(self, label: str, s: socket.socket) -> socket.socket:
        self.socks[label] = s
        return s

    def _pair(self, fam: int, lst: socket.socket, label: str, connect_to=None):
        cli = socket.socket(fam, socket.SOCK_STREAM)
        cli.connect(connect_to or lst.getsockname()[:2])
        srv, _ = lst.accept()
        return self._keep(f"{label}_client", cli), self._keep(f"{label}_server", srv)

    def _build(self) -> None:
        for fam, addr in LOOPBACK.items():
            sfx = _sfx(fam)
            lst = self._keep(f"listen{sfx}", socket.socket(fam, socket.SOCK_STREAM))
            lst.bind((addr, PORT))
            lst.listen(16)
            self._expect(f"listen{sfx}", fam, "LISTEN", (addr, PORT), (_any(fam), 0))

            cli, srv = self._pair(fam, lst, f"est{sfx}")
            cli.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            srv.sendall(b"x" * 100)
            self._expect_pair("est" + sfx, cli, srv, "ESTABLISHED", "ESTABLISHED")

            cli, srv = self._pair(fam, lst, f"half{sfx}")
            cli.shutdown(socket.SHUT_WR)
            self._expect_pair("half" + sfx, cli, srv, "FIN_WAIT2", "CLOSE_WAIT")

            cli, srv = self._pair(fam, lst, f"orphan{sfx}")
            local, remote = cli.getsockname()[:2], cli.getpeername()[:2]
            self.socks.pop(f"orphan{sfx}_client").close()
            self._expect(f"orphan{sfx}_client", fam, "FIN_WAIT2", local, remote,
                         timewait=True, owned=False)
            self._expect(f"orphan{sfx}_server", fam, "CLOSE_WAIT", remote, local)

            cli, srv = self._pair(fam, lst, f"tw{sfx}")
            local, remote = cli.getsockname()[:2], cli.getpeername()[:2]
            self.socks.pop(f"tw{sfx}_client").close()
            time.sleep(0.05)
            self.socks.pop(f"tw{sfx}_server").close()
            self._expect(f"tw{sfx}_client", fam, "TIME_WAIT", local, remote,
                         timewait=True, owned=False)

        dual = self._keep("dual_listen", socket.socket(socket.AF_INET6, socket.SOCK_STREAM))
        dual.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        dual.bind(("::", PORT_DUAL))
        dual.listen(4)
        self._expect("dual_listen", socket.AF_INET6, "LISTEN", ("::", PORT_DUAL), ("::", 0))
        cli = self._keep("dual_client", socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        cli.connect(("127.0.0.1", PORT_DUAL))
        srv, _ = dual.accept()
        self._keep("dual_server", srv)
        self._expect_pair("dual", cli, srv, "ESTABLISHED", "ESTABLISHED")

    def _expect_pair(self, label, cli, srv, cstate, sstate):
        local, remote = cli.getsockname()[:2], cli.getpeername()[:2]
        self._expect(f"{label}_client", cli.family, cstate, local, remote)
        self._expect(f"{label}_server", srv.family, sstate,
                     srv.getsockname()[:2], srv.getpeername()[:2])


def _sfx(fam: int) -> str:
    return "4" if fam == socket.AF_INET else "6"


def _any(fam: int) -> str:
    return "0.0.0.0" if fam == socket.AF_INET else "::"


# --- ss -tanoe ------------------------------------------------------------

SS_TIMERS = {"off": 0, "on": 1, "keepalive": 2, "timewait": 3, "persist": 4}
SS_STATES = {"ESTAB": "ESTABLISHED", "SYN-SENT": "SYN_SENT", "SYN-RECV": "SYN_RECV",
             "FIN-WAIT-1": "FIN_WAIT1", "FIN-WAIT-2": "FIN_WAIT2", "TIME-WAIT": "TIME_WAIT",
             "UNCONN": "CLOSE", "CLOSE-WAIT": "CLOSE_WAIT", "LAST-ACK": "LAST_ACK",
             "LISTEN": "LISTEN", "CLOSING": "CLOSING"}
SS_SHUTDOWN = {"<->": 0, "-->": 1, "<--": 2, "---": 3}


@dataclasses.dataclass(frozen=True)
class SsLine:
    state: str
    recv_q: int
    send_q: int
    local: tuple[str, int]
    remote: tuple[str, int]
    timer: int
    uid: int
    inode: int
    cookie: int
    shutdown: int | None


def _endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if "%" in host:
        host = host.split("%")[0]
    if host == "*":
        host = "::"  # ss's unspecified (dual-stack) address
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.inet_ntop(fam, socket.inet_pton(fam, host)), 0 if port == "*" else int(port)


def parse_ss(text: str) -> list[SsLine]:
    """``ss -tanoe`` output as records (header line skipped).

    >>> parse_ss("State Recv-Q Send-Q Local Peer\\n"
    ...   "TIME-WAIT 0 0 127.0.0.1:40000 127.0.0.1:5000 timer:(timewait,29sec,0) ino:0 sk:3e9\\n"
    ...   "LISTEN 0 16 [::]:5001 *:* uid:65534 ino:77 sk:1f cgroup:/ <->")[1]
    SsLine(state='LISTEN', recv_q=0, send_q=16, local=('::', 5001), remote=('::', 0), timer=0, uid=65534, inode=77, cookie=31, shutdown=0)
    """
    out = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 5:
            continue
        extra = " ".join(parts[5:])
        timer = re.search(r"timer:\((\w+),", extra)
        uid = re.search(r"\buid:(\d+)", extra)
        ino = re.search(r"\bino:(\d+)", extra)
        sk = re.search(r"\bsk:([0-9a-f]+)", extra)
        shut = re.search(r"(?:^|\s)(<->|-->|<--|---)(?:\s|$)", extra)
        out.append(SsLine(
            state=SS_STATES[parts[0]], recv_q=int(parts[1]), send_q=int(parts[2]),
            local=_endpoint(parts[3]), remote=_endpoint(parts[4]),
            timer=SS_TIMERS[timer.group(1)] if timer else 0,
            uid=int(uid.group(1)) if uid else 0,
            inode=int(ino.group(1)) if ino else 0,
            cookie=int(sk.group(1), 16) if sk else -1,
            shutdown=SS_SHUTDOWN[shut.group(1)] if shut else None))
    return out
