"""Build and hold a known TCP socket population (run inside a namespace).

Run as ``ip netns exec NAME python3 holder.py SPEC_JSON``. The script

1. builds every connection of the spec over loopback in one process, doing
   the closes that make the teardown states while it still holds every fd
   (so a close() really is the last reference);
2. forks one child per owner; each child renames itself (PR_SET_NAME, so
   ``/proc/PID/stat`` and ``ss -p`` show that comm), optionally drops to a
   uid, keeps only its own fds (plus dups) and sleeps;
3. closes its own copies, prints one JSON line describing every socket it
   expects the kernel to show (state, endpoints, owners with pid and fd),
   and waits until stdin reaches EOF or SIGTERM, then ends its children.

It never waits for the kernel to *settle* (the harness polls ``ss`` for
that); it only waits where the build order needs it (a FIN has arrived
before the peer closes).

Spec (JSON)::

    {"name": "tl-holder",
     "owners": [{"name": "tl-web", "uid": 0}, {"name": "tl-cli", "uid": 65534}],
     "items": [{"kind": "close_wait", "family": "ipv6",
                "client": ["tl-cli"], "server": ["tl-web"],
                "uid": 0, "dup": 0, "keepidle": null}]}

Kinds and what they leave (client side / server side):

=============  ===========================  ==============================
kind           client                       server (+ its listener)
=============  ===========================  ==============================
listen         -                            LISTEN only
established    ESTABLISHED                  ESTABLISHED
close_wait     orphan FIN_WAIT2 (closed)    CLOSE_WAIT (never closes)
fin_wait2      FIN_WAIT2 (shutdown SHUT_WR) CLOSE_WAIT
time_wait      TIME_WAIT (closed first)     gone (closed after the FIN)
fin_wait1      orphan FIN_WAIT1, FIN stuck  ESTABLISHED, never reads
               behind a zero window
last_ack       FIN_WAIT2, never reads       orphan LAST_ACK, FIN stuck
syn_sent       one ESTABLISHED + one        listen(0) LISTEN with a full
               SYN_SENT (SYN dropped)       accept queue; ESTABLISHED
                                            unaccepted child (inode 0)
mapped         IPv4 ESTABLISHED             dual-stack ``[::]`` LISTEN
                                            (IPV6_V6ONLY=0, ss prints
                                            ``*``); IPv6 ESTABLISHED with
                                            ``::ffff:127.0.0.1`` addresses
bound          -                            LISTEN with SO_BINDTODEVICE lo
                                            (ss prints ``addr%lo``)
=============  ===========================  ==============================

``family`` is the listener's; ``mapped`` needs ``ipv6``.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import socket
import sys
import time

PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h
PR_SET_NAME = 15
_libc = ctypes.CDLL(None, use_errno=True)

LOOPBACK = {"ipv4": (socket.AF_INET, "127.0.0.1"), "ipv6": (socket.AF_INET6, "::1")}


def _prctl(option: int, arg) -> None:
    if _libc.prctl(option, arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _endpoint(addr) -> dict:
    return {"address": addr[0], "port": addr[1]}


class Builder:
    """Creates the sockets of a spec and remembers who must keep which fd."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.sockets: list[dict] = []  # expected kernel view, one per socket
        self.keep: dict[int, list[str]] = {}  # fd -> owner names keeping it
        self.fin_timeout = int(open("/proc/sys/net/ipv4/tcp_fin_timeout").read())
        self._uid_of = {o["name"]: o.get("uid", 0) for o in spec["owners"]}

    # -- socket creation ---------------------------------------------------
    def _socket(self, family: str, uid: int) -> socket.socket:
        # sk_uid is the creator's fsuid (sock_init_data() in net/core/sock.c),
        # so switch the effective uid around socket() only.
        af = LOOPBACK[family][0]
        if uid:
            os.seteuid(uid)
        try:
            return socket.socket(af, socket.SOCK_STREAM)
        finally:
            if uid:
                os.seteuid(0)

    def _listener(self, item: dict, backlog: int = 16, rcvbuf: int | None = None,
                  sndbuf: int | None = None) -> socket.socket:
        family = item["family"]
        uid = item.get("uid", 0) if item["kind"] == "listen" else 0
        lst = self._socket(family, uid)
        # Accepted sockets inherit the listener's buffers (sk_clone_lock),
        # which is how a small window is set before the handshake.
        if rcvbuf:
            lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf:
            lst.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        lst.bind((LOOPBACK[family][1], 0))
        lst.listen(backlog)
        self._record(item, "listener", lst, "LISTEN", item["server"], uid=uid, remote=None)
        return lst

    def _record(self, item, side, sock, state, owners, *, uid, remote="peer",
                timewait_type=False, laddr=None, raddr=None):
        laddr = laddr or sock.getsockname()
        if remote is None:
            raddr = ("0.0.0.0", 0) if item["family"] == "ipv4" else ("::", 0)
        elif raddr is None:
            raddr = sock.getpeername()
        fd = sock.fileno() if owners else -1
        self.sockets.append({
            "item": item["index"], "kind": item["kind"], "side": side,
            "family": item["family"], "state": state,
            "local": _endpoint(laddr), "remote": _endpoint(raddr),
            "uid": 0 if timewait_type else uid,
            "timewait_type": timewait_type,
            "owner_names": list(owners), "fd": fd, "owners": [],
        })
        if owners:
            self.keep[fd] = list(owners)
        return self.sockets[-1]

    def _pair(self, item, lst=None, *, client_rcvbuf=None, client_sndbuf=None):
        lst = lst or self._listener(item)
        cli = self._socket(item["family"], item.get("uid", 0))
        if client_rcvbuf:
            cli.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, client_rcvbuf)
        if client_sndbuf:
            cli.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, client_sndbuf)
        cli.connect(lst.getsockname()[:2])
        srv, _ = lst.accept()
        return lst, cli, srv

    @staticmethod
    def _wait_eof(sock: socket.socket, timeout: float = 5.0) -> None:
        sock.settimeout(timeout)
        if sock.recv(1) != b"":
            raise RuntimeError("expected EOF (peer FIN)")
        sock.settimeout(None)

    @staticmethod
    def _fill(sender: socket.socket, deadline: float = 5.0) -> int:
        """Send until the peer's window and our send buffer are both full."""
        sender.setblocking(False)
        sent, idle_since = 0, None
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                sent += sender.send(b"x" * 65536)
                idle_since = None
            except BlockingIOError:
                # EAGAIN once can be a buffer briefly full while loopback
                # still delivers; 200 ms without progress is a closed window.
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 0.2:
                    return sent
                time.sleep(0.01)
        raise RuntimeError("send never blocked")

    # -- kinds -------------------------------------------------------------
    def build(self, item: dict) -> list[socket.socket]:
        kind, uid = item["kind"], item.get("uid", 0)
        cown, sown = item.get("client") or [], item.get("server") or []
        tw_fin2 = self.fin_timeout <= 60  # tcp_close(), net/ipv4/tcp.c
        if kind == "listen":
            return [self._listener(item, backlog=item.get("backlog", 16))]
        if kind == "bound":
            lst = self._socket(item["family"], 0)
            lst.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
            lst.bind((LOOPBACK[item["family"]][1], 0))
            lst.listen(16)
            self._record(item, "listener", lst, "LISTEN", sown, uid=0, remote=None)
            return [lst]
        if kind == "mapped":
            lst = self._socket("ipv6", 0)
            lst.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            lst.bind(("::", 0))
            lst.listen(16)
            self._record(item, "listener", lst, "LISTEN", sown, uid=0, remote=None)
            cli = self._socket("ipv4", uid)
            cli.connect(("127.0.0.1", lst.getsockname()[1]))
            srv, _ = lst.accept()
            self._record(dict(item, family="ipv4"), "client", cli, "ESTABLISHED", cown, uid=uid)
            self._record(item, "server", srv, "ESTABLISHED", sown, uid=0)
            return [lst, cli, srv]
        if kind == "syn_sent":
            lst = self._listener(item, backlog=0)
            lst, cli, srv_unaccepted = self._pair_unaccepted(item, lst)
            second = self._socket(item["family"], uid)
            second.setblocking(False)
            err = second.connect_ex(lst.getsockname()[:2])
            if err != errno.EINPROGRESS:
                raise RuntimeError(f"connect: {os.strerror(err)}")
            self._record(item, "client", second, "SYN_SENT", cown, uid=uid,
                         raddr=lst.getsockname()[:2])
            return [lst, cli, second]
        if kind == "fin_wait1":
            lst, cli, srv = self._pair(item, self._listener(item, rcvbuf=4096),
                                       client_sndbuf=4096)
            self._fill(cli)
            laddr, raddr = cli.getsockname(), cli.getpeername()
            self._record(item, "server", srv, "ESTABLISHED", sown, uid=0)
            cli.close()  # FIN queued behind unsent data: FIN_WAIT1, orphan
            self._record(item, "client", cli, "FIN_WAIT1", [], uid=uid,
                         laddr=laddr, raddr=raddr)
            return [lst, srv]
        if kind == "last_ack":
            lst, cli, srv = self._pair(item, self._listener(item, sndbuf=4096),
                                       client_rcvbuf=4096)
            cli.shutdown(socket.SHUT_WR)
            self._wait_eof(srv)
            self._fill(srv)
            laddr, raddr = srv.getsockname(), srv.getpeername()
            self._record(item, "client", cli, "FIN_WAIT2", cown, uid=uid)
            srv.close()  # CLOSE_WAIT + close with unsent data: LAST_ACK orphan
            self._record(item, "server", srv, "LAST_ACK", [], uid=0,
                         laddr=laddr, raddr=raddr)
            return [lst, cli]
        lst, cli, srv = self._pair(item)
        if item.get("keepidle"):
            cli.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            cli.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, item["keepidle"])
        laddr, raddr = cli.getsockname(), cli.getpeername()
        if kind == "established":
            self._record(item, "client", cli, "ESTABLISHED", cown, uid=uid)
            self._record(item, "server", srv, "ESTABLISHED", sown, uid=0)
            return [lst, cli, srv]
        if kind == "fin_wait2":
            cli.shutdown(socket.SHUT_WR)
            self._wait_eof(srv)
            self._record(item, "client", cli, "FIN_WAIT2", cown, uid=uid)
            self._record(item, "server", srv, "CLOSE_WAIT", sown, uid=0)
            return [lst, cli, srv]
        if kind == "close_wait":
            cli.close()
            self._wait_eof(srv)
            self._record(item, "client", cli, "FIN_WAIT2", [], uid=uid,
                         timewait_type=tw_fin2, laddr=laddr, raddr=raddr)
            self._record(item, "server", srv, "CLOSE_WAIT", sown, uid=0)
            return [lst, srv]
        if kind == "time_wait":
            cli.close()
            self._wait_eof(srv)
            srv.close()
            self._record(item, "client", cli, "TIME_WAIT", [], uid=uid,
                         timewait_type=True, laddr=laddr, raddr=raddr)
            return [lst]
        raise ValueError(f"unknown kind {kind!r}")

    def _pair_unaccepted(self, item, lst):
        """Connect without accept(): the child waits in the accept queue."""
        uid = item.get("uid", 0)
        cli = self._socket(item["family"], uid)
        cli.connect(lst.getsockname()[:2])
        self._record(item, "client", cli, "ESTABLISHED", item.get("client") or [], uid=uid)
        # The server half has no file yet (inode 0) and no owner.
        self._record(item, "server", cli, "ESTABLISHED", [], uid=0,
                     laddr=cli.getpeername(), raddr=cli.getsockname())
        return lst, cli, None


def _child(owner: dict, fds: list[int], keep: dict[int, list[str]], dups: dict[int, int],
           report_w: int, master: int) -> None:
    """Runs in a forked owner: rename, keep own fds, report, sleep."""
    try:
        _prctl(PR_SET_NAME, owner["name"].encode()[:15])
        if owner.get("uid"):
            os.setgroups([])
            os.setresgid(owner["uid"], owner["uid"], owner["uid"])
            os.setresuid(owner["uid"], owner["uid"], owner["uid"])
        # After setresuid: a credential change clears the death signal
        # (prctl(2), PR_SET_PDEATHSIG).
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != master:
            os._exit(1)
        held: dict[int, list[int]] = {}
        for fd in fds:
            if owner["name"] in keep.get(fd, ()):
                held[fd] = [fd] + [os.dup(fd) for _ in range(dups.get(fd, 0))]
            else:
                os.close(fd)
        os.write(report_w, (json.dumps({"name": owner["name"], "pid": os.getpid(),
                                        "fds": held}) + "\n").encode())
        os.close(report_w)
        while True:
            signal.pause()
    finally:
        os._exit(0)


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    _prctl(PR_SET_NAME, spec.get("name", "tl-holder").encode()[:15])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    builder = Builder(spec)
    held: list[socket.socket] = []
    for index, item in enumerate(spec["items"]):
        held += [s for s in builder.build(dict(item, index=index)) if s is not None]
    fds = [s.detach() for s in held]
    dups = {}
    for rec in builder.sockets:
        if rec["fd"] >= 0:
            dups[rec["fd"]] = spec["items"][rec["item"]].get("dup", 0)
    children: dict[str, int] = {}
    reports = {}
    try:
        for owner in spec["owners"]:
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                _child(owner, fds, builder.keep, dups, w, os.getppid())
            os.close(w)
            children[owner["name"]] = pid
            with os.fdopen(r) as f:
                line = f.readline()
            if not line:
                raise RuntimeError(f"owner {owner['name']} died")
            reports[owner["name"]] = json.loads(line)
        for fd in fds:
            os.close(fd)
        for rec in builder.sockets:
            for name in rec.pop("owner_names"):
                rep = reports[name]
                for fd in rep["fds"][str(rec["fd"])]:
                    rec["owners"].append({"comm": name[:15], "pid": rep["pid"], "fd": fd})
        print(json.dumps({"pid": os.getpid(), "fin_timeout": builder.fin_timeout,
                          "owners": {n: r["pid"] for n, r in reports.items()},
                          "sockets": builder.sockets}), flush=True)
        while sys.stdin.buffer.read1(1024):
            pass
        return 0
    finally:
        for pid in children.values():
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


if __name__ == "__main__":
    sys.exit(main(sys.argv))
