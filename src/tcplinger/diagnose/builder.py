"""Build socket tables by hand: for rule tests, docs and the simulator.

Each :meth:`SocketBuilder.add` describes ``count`` similar sockets; their
ports count up from the ones given so every row is a distinct connection.

>>> b = SocketBuilder()
>>> b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.2:40000", inode=7, recv_q=1, count=3)
>>> t = b.table()
>>> len(t), t.rows["dport"].tolist(), t.rows["state"].tolist()
(3, [40000, 40001, 40002], [8, 8, 8])
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import numpy as np

from ..model.states import parse_state
from ..model.table import TCP_INFO_DTYPE, SocketTable, empty


def _endpoint(text: str) -> tuple[int, bytes, int]:
    """(family, 16 address bytes, port) from ``10.0.0.1:80`` or ``[::1]:80``."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    addr = ipaddress.ip_address(host)
    raw = addr.packed + bytes(16 - len(addr.packed))
    return (2 if addr.version == 4 else 10), raw, int(port)


@dataclass
class _Spec:
    state: int
    local: tuple
    remote: tuple
    count: int
    columns: dict
    info: dict | None
    vary: str


@dataclass
class SocketBuilder:
    specs: list = field(default_factory=list)

    def add(self, state: str, local: str, remote: str = "0.0.0.0:0", *, count: int = 1,
            vary: str = "dport", inode: int | None = None, timer: int = 0,
            expires_ms: int = 0, retrans: int = 0, timewait: bool | None = None,
            shutdown: int = -1, recv_q: int = 0, send_q: int = 0, uid: int = 0,
            last_ack_recv: int | None = None, last_data_recv: int | None = None,
            last_data_sent: int | None = None, rto_us: int | None = None) -> None:
        """``inode``: 0 makes orphans; k gives the sockets k, k+1, ...;
        None numbers them from 1000 on. ``last_*`` are tcp_info milliseconds; giving one
        adds tcp_info to these rows. ``vary`` is the port that counts up."""
        st = int(parse_state(state))
        if timewait is None:
            timewait = timer == 3
        info = None
        if any(v is not None for v in (last_ack_recv, last_data_recv, last_data_sent, rto_us)):
            info = {"last_ack_recv": last_ack_recv or 0, "last_data_recv": last_data_recv or 0,
                    "last_data_sent": last_data_sent or 0, "rto": rto_us or 0}
        self.specs.append(_Spec(st, _endpoint(local), _endpoint(remote), count, {
            "inode": inode, "timer": timer, "expires_ms": expires_ms, "retrans": retrans,
            "timewait": timewait, "shutdown": shutdown, "recv_q": recv_q, "send_q": send_q,
            "uid": uid}, info, vary))

    def table(self) -> SocketTable:
        n = sum(s.count for s in self.specs)
        rows = empty(n)
        with_info = any(s.info is not None for s in self.specs)
        info = np.zeros(n, TCP_INFO_DTYPE) if with_info else None
        at, next_inode, cookie = 0, 1000, 1
        for s in self.specs:
            sl = slice(at, at + s.count)
            fam, saddr, sport = s.local
            _, daddr, dport = s.remote
            rows["family"][sl] = fam
            rows["state"][sl] = s.state
            rows["saddr"][sl] = np.void(saddr)
            rows["daddr"][sl] = np.void(daddr)
            steps = np.arange(s.count)
            rows["sport"][sl] = sport + (steps if s.vary == "sport" else 0)
            rows["dport"][sl] = dport + (steps if s.vary == "dport" else 0)
            rows["cookie"][sl] = np.arange(cookie, cookie + s.count)
            cookie += s.count
            for key, value in s.columns.items():
                if key == "inode":
                    if value is None:
                        rows["inode"][sl] = np.arange(next_inode, next_inode + s.count)
                        next_inode += s.count
                    elif value == 0:
                        rows["inode"][sl] = 0
                    else:
                        rows["inode"][sl] = np.arange(value, value + s.count)
                else:
                    rows[key][sl] = value
            if s.info is not None:
                info["present"][sl] = True
                for key, value in s.info.items():
                    info[key][sl] = value
            at += s.count
        return SocketTable(rows, info)


def owners_for(first_inode: int, count: int, pid: int, comm: str,
               first_fd: int = 3) -> dict:
    """``{inode: (Owner,)}`` for ``count`` sockets held by one process."""
    from ..model.socket import Owner

    return {first_inode + k: (Owner(pid=pid, comm=comm, fd=first_fd + k),)
            for k in range(count)}


def namespace(table: SocketTable, *, name: str = "test", inode: int = 4026531840,
              sysctls: dict | None = None, owners=None, processes=None, conntrack=None,
              sockstat=None, tcpext=None, previous_tcpext=None, interval=None, ages=None):
    """A :class:`~tcplinger.diagnose.inputs.NamespaceInput` with Linux
    defaults for the sysctls not given."""
    from ..model.kernel import KernelContext
    from ..model.socket import NetnsRef
    from .inputs import NamespaceInput

    values = dict(DEFAULT_SYSCTLS)
    if conntrack is not None:  # as collect.kernel reads them where conntrack is loaded
        values["nf_conntrack_count"], values["nf_conntrack_max"] = conntrack
    values.update(sysctls or {})
    kernel = KernelContext(sysctls=values, sockstat=sockstat, tcpext=dict(tcpext or {}),
                           conntrack=conntrack)
    previous = None
    if previous_tcpext is not None:
        previous = KernelContext(sysctls=values, tcpext=dict(previous_tcpext))
    return NamespaceInput(NetnsRef(inode, name), kernel, table, owners=owners,
                          processes=processes or {}, previous=previous, interval=interval,
                          ages=ages)


#: Linux 6.18 defaults (tcp_max_tw_buckets and tcp_max_orphans scale with
#: memory; these are this machine's).
DEFAULT_SYSCTLS = {
    "tcp_fin_timeout": 60, "tcp_keepalive_time": 7200, "tcp_keepalive_intvl": 75,
    "tcp_keepalive_probes": 9, "tcp_max_tw_buckets": 131072, "tcp_orphan_retries": 0,
    "tcp_retries2": 15, "tcp_tw_reuse": 2, "ip_local_port_range": (32768, 60999),
    "tcp_max_orphans": 131072,
}
