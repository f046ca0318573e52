"""Network namespaces with known TCP socket populations, and ss as oracle.

- :func:`netns` creates ``tl-t-<random>`` with loopback (127.0.0.1 and ::1)
  up, sets per-namespace sysctls, and on exit ends every process it started
  (by PID) and deletes the namespace, also when the body raised.
- :func:`populate` runs ``holder.py`` inside a namespace to build a socket
  population (see its docstring for the kinds) and polls ``ss`` until the
  kernel shows exactly the expected sockets.
- :func:`ss` runs ``ss -N NAME -t -a -n ...`` and parses it with
  :mod:`ssparse`.

Pure helpers (no privileges) are doctested here; everything else needs root.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from ssparse import SS_STATES, key, parse_ss

#: kernel state name -> ss's filter word (ss(8), STATE-FILTER).
SS_FILTER_STATES = {
    "ESTABLISHED": "established", "SYN_SENT": "syn-sent", "SYN_RECV": "syn-recv",
    "FIN_WAIT1": "fin-wait-1", "FIN_WAIT2": "fin-wait-2", "TIME_WAIT": "time-wait",
    "CLOSE": "closed", "CLOSE_WAIT": "close-wait", "LAST_ACK": "last-ack",
    "LISTEN": "listening", "CLOSING": "closing",
}
SS_COLUMN_STATES = {v: k for k, v in SS_STATES.items()}

HERE = Path(__file__).resolve().parent
HOLDER = HERE / "holder.py"
NETNS_DIR = Path("/run/netns")
PREFIX = "tl-t-"


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 180)  # `ss -p` walks every /proc/*/fd: slow on a busy host
    proc = subprocess.run(argv, **kw)
    if kw.get("check", True) and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> {proc.returncode}: {proc.stderr.strip()}")
    return proc


@dataclass
class Netns:
    """A namespace this process created; :meth:`close` undoes everything."""

    name: str
    inode: int = 0
    _procs: list[subprocess.Popen] = field(default_factory=list)

    def exec_argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        """Run a command inside the namespace and wait for it."""
        return _run(self.exec_argv(argv), **kw)

    def spawn(self, argv: list[str], **kw) -> subprocess.Popen:
        """Start a command inside the namespace; ended by :meth:`close`.

        ``ip netns exec`` execs the command in place (no fork unless in
        batch mode: ``cmd_exec()`` in iproute2 lib/exec.c), so the Popen
        pid is the command's pid.
        """
        proc = subprocess.Popen(self.exec_argv(argv), **kw)
        self._procs.append(proc)
        return proc

    def sysctl(self, name: str, value: int | str | None = None) -> str:
        """Read, or set then read back, a sysctl as seen in this namespace.

        /proc/sys/net resolves to the netns of the process that opens it,
        so the write has to come from inside the namespace.
        """
        path = "/proc/sys/" + name.replace(".", "/")
        if value is not None:
            self.run(["sh", "-c", 'printf "%s\\n" "$1" > "$2"', "sh", str(value), path])
        return self.run(["cat", path]).stdout.strip()

    def ss(self, options: str = "tanoe", *filter_expr: str,
           states: tuple[str, ...] = ()) -> list[dict]:
        """``ss -N NAME -<options> [state S ...] [filter]`` parsed (ssparse).

        ``states`` are kernel names (``CLOSE_WAIT``); ss's filter spells
        them its own way.
        """
        argv = ["ss", "-N", self.name, "-" + options]
        for state in states:
            argv += ["state", SS_FILTER_STATES[state]]
        proc = _run(argv + list(filter_expr))
        # stderr only carries ss's "Failed to find cgroup2 mount" chatter.
        one = SS_COLUMN_STATES[states[0]] if len(states) == 1 else None
        return parse_ss(proc.stdout, options, state=one)

    def end_processes(self) -> None:
        """End what we started, by pid, children first (see Population.stop)."""
        for proc in reversed(self._procs):
            stop = getattr(proc, "_tl_stop", None)
            if stop is not None:
                stop()
            elif proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._procs.clear()

    def close(self) -> None:
        try:
            self.end_processes()
        finally:
            _run(["ip", "netns", "del", self.name], check=False)


def _ensure_loopback(ns: Netns) -> None:
    _run(["ip", "-n", ns.name, "link", "set", "lo", "up"])
    # A new namespace copies net.ipv6.conf.default; make sure ::1 exists.
    ns.sysctl("net.ipv6.conf.lo.disable_ipv6", 0)
    addrs = _run(["ip", "-n", ns.name, "-6", "addr", "show", "dev", "lo"]).stdout
    if "::1/128" not in addrs:
        _run(["ip", "-n", ns.name, "addr", "add", "::1/128", "dev", "lo"])


@contextlib.contextmanager
def netns(sysctls: dict[str, int | str] | None = None, prefix: str = PREFIX) -> Iterator[Netns]:
    """A fresh namespace ``tl-t-<random>``; always deleted afterwards."""
    ns = Netns(prefix + secrets.token_hex(4))
    _run(["ip", "netns", "add", ns.name])
    try:
        ns.inode = os.stat(NETNS_DIR / ns.name).st_ino
        _ensure_loopback(ns)
        for name, value in (sysctls or {}).items():
            got = ns.sysctl(name, value)
            if got != str(value):
                raise RuntimeError(f"{name}: set {value}, reads {got}")
        yield ns
    finally:
        ns.close()


# ---- populations ---------------------------------------------------------

@dataclass(frozen=True)
class Owner:
    """A holder child: its comm (<= 15 bytes) and the uid it runs as."""

    name: str
    uid: int = 0


@dataclass(frozen=True)
class Item:
    """One connection scenario of holder.py (kind, family, who keeps what)."""

    kind: str
    family: str = "ipv4"
    client: tuple[str, ...] = ()
    server: tuple[str, ...] = ()
    uid: int = 0  # euid the client (or a bare listener) socket is created with
    dup: int = 0  # extra fds each owner dups for every kept socket of the item
    keepidle: int | None = None  # SO_KEEPALIVE + TCP_KEEPIDLE on the client


@dataclass
class Population:
    """A running holder and the sockets it promised."""

    ns: Netns
    proc: subprocess.Popen
    owners: dict[str, int]  # comm -> pid
    sockets: list[dict]  # expected: state, local, remote, owners, uid, ...
    fin_timeout: int
    started: float  # time.monotonic() when the holder reported

    def expected_keys(self) -> set[tuple]:
        return {key(s) for s in self.sockets}

    def by_key(self) -> dict[tuple, dict]:
        return {key(s): s for s in self.sockets}

    def diff(self, rows: list[dict]) -> tuple[set, set]:
        """(missing, unexpected) socket keys of an ss listing."""
        seen = [key(r) for r in rows]
        return self.expected_keys() - set(seen), set(seen) - self.expected_keys()

    def wait_settled(self, timeout: float = 10.0, options: str = "tanoe") -> list[dict]:
        """Poll ss until it lists exactly the expected sockets; return that listing."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.ns.ss(options)
            missing, unexpected = self.diff(rows)
            if not missing and not unexpected:
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.ns.name}: population did not settle in {timeout}s\n"
                    f"missing: {sorted(missing)}\nunexpected: {sorted(unexpected)}")
            time.sleep(0.05)

    def stop(self) -> None:
        """End the owners (by pid, after checking they are still the
        holder's children), then the holder."""
        if self.proc.poll() is None:
            for pid in self.owners.values():
                if _ppid(pid) == self.proc.pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(BrokenPipeError, OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces or parentheses: split after the last ")".
    return int(stat.rpartition(")")[2].split()[1])


def populate(ns: Netns, owners: list[Owner], items: list[Item], *,
             name: str = "tl-holder", timeout: float = 15.0) -> Population:
    """Start holder.py in ``ns`` and wait until ss shows its sockets."""
    spec = {"name": name, "owners": [asdict(o) for o in owners],
            "items": [dict(asdict(i), client=list(i.client), server=list(i.server))
                      for i in items]}
    proc = ns.spawn([sys.executable, str(HOLDER), json.dumps(spec)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([proc.stdout], [], [], max(left, 0))
        if not ready:
            break
        chunk = os.read(proc.stdout.fileno(), 1 << 20)
        if not chunk:
            break
        line += chunk
    if not line.endswith(b"\n"):
        proc.kill()
        err = proc.stderr.read().decode(errors="replace")
        raise RuntimeError(f"holder in {ns.name} gave no report: {err}")
    report = json.loads(line)
    pop = Population(ns, proc, report["owners"], report["sockets"], report["fin_timeout"],
                     time.monotonic())
    proc._tl_stop = pop.stop  # Netns.close ends owners before the holder
    if report["pid"] != proc.pid:
        raise RuntimeError(f"holder pid {report['pid']} != spawned pid {proc.pid}")
    pop.wait_settled(max(deadline - time.monotonic(), 1.0))
    return pop


class Fresh:
    """Hands out a population with enough life left, rebuilding when not.

    The shortest-lived sockets of a population (orphan FIN_WAIT2 with
    tcp_fin_timeout <= 60 s) disappear ``lifetime_s`` after the build, and
    a rebuild needs a new namespace (ending the old holders closes their
    sockets into new teardown states). Sharing one population between the
    tests of a module keeps the suite fast; :meth:`get` replaces it once a
    test could outlive it.
    """

    def __init__(self, owners: list[Owner], items: list[Item],
                 sysctls: dict[str, int | str] | None = None):
        self.owners, self.items, self.sysctls = owners, items, dict(sysctls or {})
        fin = int(self.sysctls.get("net.ipv4.tcp_fin_timeout", 60))
        self.lifetime_s = min(fin, TIMEWAIT_LEN_S)
        self._stack: contextlib.ExitStack | None = None
        self.pop: Population | None = None

    def left_s(self) -> float:
        if self.pop is None:
            return 0.0
        return self.lifetime_s - (time.monotonic() - self.pop.started)

    def get(self, min_left_s: float = 25.0) -> Population:
        if self.left_s() < min_left_s:
            self.close()
            self._stack = contextlib.ExitStack()
            ns = self._stack.enter_context(netns(self.sysctls))
            self.pop = populate(ns, self.owners, self.items)
        self.pop.wait_settled(timeout=2)
        return self.pop

    def close(self) -> None:
        stack, self._stack, self.pop = self._stack, None, None
        if stack is not None:
            stack.close()


# ---- the standard population -------------------------------------------------

def standard_owners(suffix: str = "") -> list[Owner]:
    """Three owners with distinct comms; one runs as nobody (uid 65534)."""
    return [Owner("tl-web" + suffix), Owner("tl-cli" + suffix, 65534),
            Owner("tl-worker" + suffix)]


def standard_items(suffix: str = "") -> list[Item]:
    """Every kind in both families.

    Sharing (two processes on one socket) and dup (two fds in one process)
    are there because ``ss -p`` lists every (pid, fd) pair.

    >>> sorted({i.kind for i in standard_items()})  # doctest: +NORMALIZE_WHITESPACE
    ['bound', 'close_wait', 'established', 'fin_wait1', 'fin_wait2', 'last_ack',
     'listen', 'mapped', 'syn_sent', 'time_wait']
    """
    web, cli, worker = (o.name for o in standard_owners(suffix))
    items = []
    for fam in ("ipv4", "ipv6"):
        items += [
            Item("listen", fam, server=(web,)),
            Item("listen", fam, server=(worker,), uid=65534),
            Item("established", fam, client=(cli,), server=(web, worker), keepidle=120),
            Item("established", fam, client=(cli,), server=(web,), dup=1),
            Item("close_wait", fam, server=(web,)),
            Item("close_wait", fam, server=(worker,), uid=65534),
            Item("fin_wait2", fam, client=(cli,), server=(web,)),
            Item("time_wait", fam, server=(web,)),
            Item("time_wait", fam, server=(worker,), uid=65534),
            Item("fin_wait1", fam, server=(web,)),
            Item("last_ack", fam, client=(cli,), server=(worker,)),
            Item("syn_sent", fam, client=(cli,), server=(web,)),
            Item("bound", fam, server=(worker,)),
        ]
    items.append(Item("mapped", "ipv6", client=(cli,), server=(web,)))
    return items


#: TIME_WAIT lasts TCP_TIMEWAIT_LEN (include/net/tcp.h), not a sysctl.
TIMEWAIT_LEN_S = 60


def timer_timeout_s(row: dict, fin_timeout: int) -> int | None:
    """The full lifetime a timewait-type socket's timer started from.

    An orphan FIN_WAIT2 becomes timewait-type with tcp_fin_timeout as its
    timeout when that is <= 60 s (tcp_close() and tcp_rcv_state_process()
    in net/ipv4/tcp.c, tcp_input.c); TIME_WAIT always gets 60 s.

    >>> timer_timeout_s({"state": "TIME_WAIT", "timewait_type": True}, 45)
    60
    >>> timer_timeout_s({"state": "FIN_WAIT2", "timewait_type": True}, 45)
    45
    >>> timer_timeout_s({"state": "FIN_WAIT2", "timewait_type": False}, 45) is None
    True
    """
    if not row["timewait_type"]:
        return None
    return TIMEWAIT_LEN_S if row["state"] == "TIME_WAIT" else fin_timeout


def default_sigint() -> None:
    """``preexec_fn`` for a child a test interrupts with SIGINT: the
    default disposition back. A shell without job control starts
    background commands with SIGINT ignored (bash(1), "SIGNALS"), the
    children of such a test run inherit it, and Python installs its
    KeyboardInterrupt handler only when SIGINT is not ignored at start."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def tcplinger_argv(*args: str) -> list[str]:
    """How the tests run the CLI: this interpreter, ``-m tcplinger`` (the
    same main() the ``tcplinger`` console script calls, without a pyenv
    shim's startup cost)."""
    return [sys.executable, "-m", "tcplinger", *args]


def run_json(argv: list[str], timeout: float = 60) -> dict:
    """Run a command that prints one JSON document; fail loudly otherwise."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}\n"
                             f"stderr: {proc.stderr.strip()}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{' '.join(argv)}: not JSON ({exc}): {proc.stdout[:500]!r}")
