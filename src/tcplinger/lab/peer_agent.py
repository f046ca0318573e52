"""A lab peer: a process inside a lab namespace that owns real sockets and
does what the lab tells it, one JSON command per stdin line.

Run as ``python -m tcplinger.lab.peer_agent --parent PID`` (the lab starts it
with ``ip netns exec``). Standard library only. It dies with its parent
(prctl PR_SET_PDEATHSIG), so a lab killed with SIGKILL leaves no peer
behind; ``lab clean`` ends any that remain by pid.

Every command gets one reply line with the same ``id``, ``ok`` and the
``time.monotonic()`` just before the system call (``t0``) and when it
returned (``t``), so the lab knows when the application acted. Sockets are named by
the lab. Examples (one line each)::

    {"id": 1, "op": "listen", "name": "l", "addr": "198.19.0.2", "port": 20000}
    {"id": 2, "op": "connect", "name": "c", "addr": "198.19.0.2", "port": 20000,
     "opts": {"keepalive": 1, "keepidle": 2}}
    {"id": 3, "op": "accept", "listener": "l", "name": "s"}
    {"id": 4, "op": "shutdown", "name": "c", "how": "wr"}
    {"id": 5, "op": "watch", "name": "c", "mode": "close_on_eof"}
    {"id": 6, "op": "exit"}

Replies::

    {"id": 2, "ok": true, "t": 812.5031, "local": ["198.18.0.2", 40002],
     "remote": ["198.19.0.2", 20000]}
    {"id": 7, "ok": false, "t": 812.61, "errno": 99, "error": "EADDRNOTAVAIL"}

and, unasked, ``{"event": "eof", "name": "c", "t": ...}``,
``{"event": "closed", ...}`` (a watch closed the socket),
``{"event": "error", "name": "c", "errno": 104, "error": "ECONNRESET"}``.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import json
import os
import selectors
import socket
import struct
import sys
import time

PR_SET_PDEATHSIG = 1
TCP_LINGER2 = 8  # include/uapi/linux/tcp.h

#: Named socket options: name -> (level, option, how to pack the value).
OPTIONS = {
    "keepalive": (socket.SOL_SOCKET, socket.SO_KEEPALIVE, "int"),
    "keepidle": (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, "int"),
    "keepintvl": (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, "int"),
    "keepcnt": (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, "int"),
    "linger": (socket.SOL_SOCKET, socket.SO_LINGER, "linger"),  # [onoff, seconds]
    "linger2": (socket.IPPROTO_TCP, TCP_LINGER2, "int"),
    "reuseaddr": (socket.SOL_SOCKET, socket.SO_REUSEADDR, "int"),
    "nodelay": (socket.IPPROTO_TCP, socket.TCP_NODELAY, "int"),
}


def apply_options(sock: socket.socket, opts: dict) -> None:
    for name, value in (opts or {}).items():
        level, opt, kind = OPTIONS[name]
        if kind == "linger":
            sock.setsockopt(level, opt, struct.pack("ii", int(value[0]), int(value[1])))
        else:
            sock.setsockopt(level, opt, int(value))


def _addresses(s: socket.socket) -> dict:
    try:
        return {"local": list(s.getsockname()), "remote": list(s.getpeername())}
    except OSError:
        return {}


def _errname(code: int) -> str:
    return errno.errorcode.get(code, str(code))


class Peer:
    def __init__(self, out=sys.stdout):
        self.out = out
        self.sel = selectors.DefaultSelector()
        self.socks: dict[str, socket.socket] = {}
        self.watch: dict[str, str] = {}  # name -> mode
        self.serve: dict[str, dict] = {}  # listener -> auto-accept spec
        self.accepted = 0
        self.running = True

    # ---- output --------------------------------------------------------
    def send(self, obj: dict) -> None:
        self.out.write(json.dumps(obj) + "\n")
        self.out.flush()

    def reply(self, cmd: dict, ok: bool = True, **fields) -> None:
        self.send({"id": cmd.get("id"), "ok": ok, "t0": self.t_call, "t": time.monotonic(),
                   **fields})

    # ---- commands ------------------------------------------------------
    t_call = 0.0

    def handle(self, cmd: dict) -> None:
        self.t_call = time.monotonic()  # just before the system call
        op = cmd.get("op")
        fn = getattr(self, "op_" + str(op), None)
        if fn is None:
            self.reply(cmd, False, error=f"unknown op {op!r}")
            return
        try:
            fn(cmd)
        except OSError as exc:
            code = exc.errno or 0
            self.reply(cmd, False, errno=code, error=_errname(code))
        except (KeyError, ValueError, TypeError) as exc:
            self.reply(cmd, False, error=f"{type(exc).__name__}: {exc}")

    def _new(self, cmd: dict) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        apply_options(s, cmd.get("opts"))
        if cmd.get("bind"):
            s.bind((cmd["bind"][0], int(cmd["bind"][1])))
        return s

    def op_listen(self, cmd):
        s = self._new({**cmd, "opts": {"reuseaddr": 1, **(cmd.get("opts") or {})}})
        s.bind((cmd["addr"], int(cmd["port"])))
        s.listen(int(cmd.get("backlog", 128)))
        self.socks[cmd["name"]] = s
        self.reply(cmd, local=list(s.getsockname()))

    def op_connect(self, cmd):
        s = self._new(cmd)
        s.settimeout(float(cmd.get("timeout", 10)))
        try:
            s.connect((cmd["addr"], int(cmd["port"])))
        except OSError:
            s.close()
            raise
        s.setblocking(False)
        self.socks[cmd["name"]] = s
        self.reply(cmd, local=list(s.getsockname()), remote=list(s.getpeername()))

    def op_accept(self, cmd):
        lst = self.socks[cmd["listener"]]
        lst.settimeout(float(cmd.get("timeout", 10)))
        c, peer = lst.accept()
        lst.setblocking(False)
        c.setblocking(False)
        apply_options(c, cmd.get("opts"))
        self.socks[cmd["name"]] = c
        self.reply(cmd, local=list(c.getsockname()), remote=list(peer))

    def op_setopt(self, cmd):
        apply_options(self.socks[cmd["name"]], cmd["opts"])
        self.reply(cmd)

    def op_send(self, cmd):
        data = cmd.get("data", "").encode()
        n = self.socks[cmd["name"]].send(data)
        self.reply(cmd, sent=n)

    def op_recv(self, cmd):
        s = self.socks[cmd["name"]]
        s.settimeout(float(cmd.get("timeout", 5)))
        try:
            data = s.recv(int(cmd.get("max", 65536)))
        finally:
            s.setblocking(False)
        self.reply(cmd, data=data.decode("latin-1"), eof=not data)

    def op_shutdown(self, cmd):
        how = {"rd": socket.SHUT_RD, "wr": socket.SHUT_WR, "rdwr": socket.SHUT_RDWR}[cmd["how"]]
        self.socks[cmd["name"]].shutdown(how)
        self.reply(cmd)

    def op_close(self, cmd):
        s = self.socks.pop(cmd["name"])
        self._unwatch(cmd["name"], s)
        s.close()
        self.reply(cmd)

    def op_watch(self, cmd):
        """Read the socket in the background. Modes: ``drain`` (read and
        drop data, report EOF), ``close_on_eof`` (a correct application:
        close when the peer's FIN arrives)."""
        name, mode = cmd["name"], cmd["mode"]
        s = self.socks[name]
        self.watch[name] = mode
        self.sel.register(s, selectors.EVENT_READ, ("sock", name))
        self.reply(cmd)

    def op_serve(self, cmd):
        """Accept every connection on a listener in the background, naming
        them ``<prefix><n>``, each watched with ``mode``."""
        lst = self.socks[cmd["listener"]]
        lst.setblocking(False)
        self.serve[cmd["listener"]] = {"prefix": cmd.get("prefix", "a"),
                                      "mode": cmd.get("mode", "close_on_eof"),
                                      "opts": cmd.get("opts")}
        self.sel.register(lst, selectors.EVENT_READ, ("listen", cmd["listener"]))
        self.reply(cmd)

    def op_burst(self, cmd):
        """``count`` connections to addr:port one after the other, each
        closed at once (the client closes first: TIME_WAIT is the
        client's). Stops at the first error unless ``keep_going``; reports
        every local port and the errors."""
        ports, errors = [], []
        hold = bool(cmd.get("hold"))
        for i in range(int(cmd["count"])):
            s = self._new(cmd)
            s.settimeout(float(cmd.get("timeout", 5)))
            try:
                s.connect((cmd["addr"], int(cmd["port"])))
            except OSError as exc:
                s.close()
                errors.append({"i": i, "errno": exc.errno, "error": _errname(exc.errno or 0),
                               "t": time.monotonic()})
                if not cmd.get("keep_going"):
                    break
                continue
            ports.append(s.getsockname()[1])
            if hold:
                s.setblocking(False)
                self.socks[f"{cmd.get('prefix', 'b')}{i}"] = s
            else:
                if cmd.get("wait_eof"):
                    s.settimeout(float(cmd.get("timeout", 5)))
                    s.shutdown(socket.SHUT_WR)
                    try:
                        s.recv(1)
                    except OSError:
                        pass
                s.close()
            if cmd.get("gap"):
                time.sleep(float(cmd["gap"]))
        self.reply(cmd, ports=ports, errors=errors)

    def op_info(self, cmd):
        s = self.socks[cmd["name"]]
        self.reply(cmd, local=list(s.getsockname()))

    def op_exit(self, cmd):
        self.reply(cmd)
        self.running = False

    # ---- background work --------------------------------------------------
    def _unwatch(self, name, s):
        if name in self.watch:
            del self.watch[name]
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass

    def on_readable(self, kind: str, name: str) -> None:
        if kind == "listen":
            spec = self.serve[name]
            lst = self.socks[name]
            while True:
                try:
                    c, peer = lst.accept()
                except BlockingIOError:
                    return
                c.setblocking(False)
                apply_options(c, spec.get("opts"))
                cname = f"{spec['prefix']}{self.accepted}"
                self.accepted += 1
                self.socks[cname] = c
                self.watch[cname] = spec["mode"]
                self.sel.register(c, selectors.EVENT_READ, ("sock", cname))
                self.send({"event": "accepted", "name": cname, "t": time.monotonic(),
                           "local": list(c.getsockname()), "remote": list(peer)})
            return
        s = self.socks.get(name)
        if s is None:
            return
        try:
            data = s.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self._unwatch(name, s)
            self.send({"event": "error", "name": name, "t": time.monotonic(),
                       "errno": exc.errno, "error": _errname(exc.errno or 0)})
            return
        if data:
            return
        mode = self.watch.get(name)
        self._unwatch(name, s)
        where = _addresses(s)
        self.send({"event": "eof", "name": name, "t": time.monotonic(), **where})
        if mode == "close_on_eof":
            self.socks.pop(name, None)
            s.close()
            self.send({"event": "closed", "name": name, "t": time.monotonic(), **where})

    def loop(self, stdin) -> None:
        os.set_blocking(stdin.fileno(), False)
        self.sel.register(stdin, selectors.EVENT_READ, ("stdin", None))
        buf = b""
        while self.running:
            for key, _ in self.sel.select(1.0):
                kind, name = key.data
                if kind == "stdin":
                    chunk = os.read(stdin.fileno(), 65536)
                    if not chunk:  # the lab went away
                        self.running = False
                        break
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        if line.strip():
                            self.handle(json.loads(line))
                else:
                    self.on_readable(kind, name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parent", type=int, required=True)
    args = ap.parse_args(argv)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, 9)  # SIGKILL when the lab dies (prctl(2))
    if os.getppid() != args.parent:  # the parent died before prctl
        return 1
    peer = Peer()
    peer.send({"event": "ready", "pid": os.getpid(), "t": time.monotonic()})
    peer.loop(sys.stdin.buffer)
    for s in peer.socks.values():
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
