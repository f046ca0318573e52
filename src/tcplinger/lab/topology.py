"""Three network namespaces joined by two veth pairs::

    client  tl-lab-<id>-c ==== tl-lab-<id>-a  router  tl-lab-<id>-b ==== tl-lab-<id>-s  server
    198.18.<slot>.2           198.18.<slot>.1          198.19.<slot>.1          198.19.<slot>.2

The router forwards (``net.ipv4.ip_forward=1``) unless a scenario puts a
userspace middlebox there instead. Addresses come from 198.18.0.0/15
(RFC 2544, reserved for benchmarking: nothing real lives there) and the
slot the registry gave the run, so runs never share an address or a server
port.

>>> a = Addressing(7)
>>> a.client, a.router_client, a.router_server, a.server, a.server_port
('198.18.7.2', '198.18.7.1', '198.19.7.1', '198.19.7.2', 20007)
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..collect.setns import run_in_netns, run_in_new_netns
from . import registry


@dataclass(frozen=True)
class Addressing:
    slot: int

    @property
    def client(self) -> str:
        return f"198.18.{self.slot}.2"

    @property
    def router_client(self) -> str:
        return f"198.18.{self.slot}.1"

    @property
    def router_server(self) -> str:
        return f"198.19.{self.slot}.1"

    @property
    def server(self) -> str:
        return f"198.19.{self.slot}.2"

    @property
    def server_port(self) -> int:
        return 20000 + self.slot


class TopologyError(RuntimeError):
    pass


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), capture_output=True, text=True)
    if check and done.returncode != 0:
        raise TopologyError(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


def sysctl_path(name: str) -> Path:
    """``net.ipv4.tcp_fin_timeout`` -> /proc/sys/net/ipv4/tcp_fin_timeout."""
    return Path("/proc/sys") / name.replace(".", "/")


def _write_sysctls(values: dict[str, str]) -> dict[str, str]:
    """Runs inside the namespace (see collect/setns.py: sysctl files opened
    there are the namespace's own)."""
    before = {}
    for name, value in values.items():
        path = sysctl_path(name)
        before[name] = path.read_text().strip()
        path.write_text(str(value))
    return before


def _read_sysctls(names) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = " ".join(sysctl_path(name).read_text().split())
        except OSError:
            out[name] = None
    return out


MS_BIND = 4096  # include/uapi/linux/mount.h


#: The size of the private established hash of the lab's namespaces (see
#: child_ehash_entries). They hold a handful of sockets (port-exhaustion's
#: bursts: thousands at most, chains of a few), and sock_diag walks every
#: bucket on every dump: measured on an empty namespace, 2.7 ms of CPU a
#: dump (8 ms wall at load 17) with 262144 buckets (twice the host's
#: tcp_max_tw_buckets, this module's earlier size) against 0.27 ms
#: (0.6 ms) with 1024. At two sides x 50 polls a second that is 27 % of a
#: CPU per run against 3 %: seven runs at once on two CPUs had made the
#: recorder's own polls the load that stretched them (0.3-1.0 s dumps).
EHASH_ENTRIES = 1024


def child_ehash_entries(proc: Path = Path("/proc")) -> int | None:
    """The size of the private established hash the lab gives its endpoint
    namespaces (:data:`EHASH_ENTRIES`); None when /proc has no TCP.

    Why a private hash: sock_diag walks the established hash of the
    socket's namespace, and namespaces share the host's global one unless
    created with net.ipv4.tcp_child_ehash_entries set in their parent
    (Linux 6.1, tcp_set_hashinfo() in net/ipv4/tcp_ipv4.c). On a host with
    a million sockets (in any namespace) each dump then costs ~0.4 s here,
    which would make polling every 20 ms impossible.
    """
    return EHASH_ENTRIES if (proc / "sys/net/ipv4/tcp_max_tw_buckets").exists() else None


def host_tw_buckets(proc: Path = Path("/proc")) -> str | None:
    """The host's tcp_max_tw_buckets: the lab's namespaces get it too, as
    a namespace on the global hash would (tcp_sk_init() sets half the
    hash, so a small private hash alone would lower it to 512)."""
    try:
        return (proc / "sys/net/ipv4/tcp_max_tw_buckets").read_text().strip()
    except OSError:
        return None


def _add_child_netns(name: str) -> None:
    """`ip netns add NAME`, the new namespace a child of the calling
    thread's (this runs in run_in_netns' worker thread, and
    run_in_new_netns' thread starts from its namespace). Mirrors iproute2's
    netns_add(): an empty file in /run/netns with the namespace
    bind-mounted on it (ip/ipnetns.c)."""
    path = f"/run/netns/{name}"
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    try:
        run_in_new_netns(_pin_here, path, loopback=False)
    except OSError:
        os.unlink(path)
        raise


def _pin_here(path: str) -> None:
    """Bind-mount the calling thread's namespace on ``path``: it then
    outlives the thread, as `ip netns add` leaves it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None) != 0:
        raise OSError(ctypes.get_errno(), f"bind-mounting the namespace on {path}")


def _try(fn, *args) -> bool:
    try:
        fn(*args)
    except OSError:
        return False
    return True


@dataclass
class Topology:
    run_id: str
    addr: Addressing

    @property
    def names(self) -> dict[str, str]:
        return {role: registry.ns_name(self.run_id, role) for role in registry.ROLES}

    def ns(self, role: str) -> str:
        return registry.ns_name(self.run_id, role)

    def path(self, role: str) -> str:
        return f"/run/netns/{self.ns(role)}"

    def link(self, end: str) -> str:
        """veth end names: c (client), a (router, client side), b (router,
        server side), s (server)."""
        return f"{registry.PREFIX}{self.run_id}-{end}"

    # ---- building -------------------------------------------------------
    def create(self, forwarding: bool = True) -> None:
        a = self.addr
        # A short-lived "seed" namespace made with `ip netns add` (which also
        # prepares /run/netns), with tcp_child_ehash_entries set; the three
        # namespaces are made as its children, so each gets a private
        # established-socket hash (see child_ehash_entries); then the seed goes.
        seed = self.ns("seed")
        sh("ip", "netns", "add", seed)
        self.ehash_entries = None
        try:
            entries = child_ehash_entries()
            if entries and _try(run_in_netns, f"/run/netns/{seed}", _write_sysctls,
                                {"net.ipv4.tcp_child_ehash_entries": str(entries)}):
                for role in registry.ROLES:
                    run_in_netns(f"/run/netns/{seed}", _add_child_netns, self.ns(role))
                self.ehash_entries = entries
                tw = host_tw_buckets()
                if tw is not None:  # the scenario's own value, if any, comes later
                    for role in registry.ROLES:
                        self.set_sysctls(role, {"net.ipv4.tcp_max_tw_buckets": tw})
            else:  # before Linux 6.1: namespaces share the host's hash
                for role in registry.ROLES:
                    sh("ip", "netns", "add", self.ns(role))
        finally:
            registry.delete_netns(seed)
        # Both ends are created directly inside their namespaces (IFLA_NET_NS_FD
        # on each end), so no name ever appears in the caller's namespace.
        sh("ip", "link", "add", self.link("c"), "netns", self.ns("client"), "type", "veth",
           "peer", "name", self.link("a"), "netns", self.ns("router"))
        sh("ip", "link", "add", self.link("s"), "netns", self.ns("server"), "type", "veth",
           "peer", "name", self.link("b"), "netns", self.ns("router"))
        batches = {
            "client": [f"addr add {a.client}/24 dev {self.link('c')}",
                       f"link set {self.link('c')} up", "link set lo up",
                       f"route add default via {a.router_client}"],
            "server": [f"addr add {a.server}/24 dev {self.link('s')}",
                       f"link set {self.link('s')} up", "link set lo up",
                       f"route add default via {a.router_server}"],
            "router": [f"addr add {a.router_client}/24 dev {self.link('a')}",
                       f"addr add {a.router_server}/24 dev {self.link('b')}",
                       f"link set {self.link('a')} up", f"link set {self.link('b')} up",
                       "link set lo up"],
        }
        for role, lines in batches.items():
            done = subprocess.run(["ip", "-n", self.ns(role), "-batch", "-"],
                                  input="\n".join(lines) + "\n", capture_output=True, text=True)
            if done.returncode != 0:
                raise TopologyError(f"ip -n {self.ns(role)} -batch: {done.stderr.strip()}")
        self.set_sysctls("router", {"net.ipv4.ip_forward": "1" if forwarding else "0"})
        # No IPv6 chatter (router solicitations, DAD) in the captures.
        for role, end in (("client", "c"), ("server", "s"), ("router", "a"), ("router", "b")):
            self.set_sysctls(role, {f"net.ipv6.conf.{self.link(end)}.disable_ipv6": "1"})

    def set_sysctls(self, role: str, values: dict[str, str]) -> dict[str, str]:
        """Write sysctls in one namespace; returns the previous values."""
        if not values:
            return {}
        return run_in_netns(self.path(role), _write_sysctls, dict(values))

    def read_sysctls(self, role: str, names) -> dict[str, str]:
        return run_in_netns(self.path(role), _read_sysctls, list(names))

    def mac(self, role: str, end: str) -> str:
        done = sh("ip", "-n", self.ns(role), "-o", "link", "show", self.link(end))
        words = done.stdout.split()
        return words[words.index("link/ether") + 1]

    # ---- tearing down ---------------------------------------------------
    def destroy(self) -> list[str]:
        """End the processes left in the namespaces and delete them; the
        names that could not be removed (empty when all went)."""
        left = []
        mine = f"{registry.PREFIX}{self.run_id}-"
        for name in [n for n in registry.list_netns() if n.startswith(mine)]:
            registry.kill_netns_processes(name)
            if not registry.delete_netns(name):
                left.append(name)
        return left
