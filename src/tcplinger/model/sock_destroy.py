"""What SOCK_DESTROY can end on a kernel: socket kinds, what is known about
each kind's history, and the result of probing this kernel.

Three kinds of socket take three different paths through ``tcp_abort()``
(net/ipv4/tcp.c), and kernels differ in each:

=========  ===========================================  ==========================================
kind       sockets                                      history (mainline)
=========  ===========================================  ==========================================
full       a socket some process holds (CLOSE_WAIT,     SOCK_DESTROY since 4.5, commit
           ESTABLISHED, half-closed FIN_WAIT2, ...)     c1e64e298b8c "net: diag: Support destroying
                                                        TCP sockets"; needs CONFIG_INET_DIAG_DESTROY
                                                        (EOPNOTSUPP without it)
timewait   timewait-type minisockets: TIME_WAIT and     EOPNOTSUPP before 6.0; since af9784d007d8
           orphaned FIN_WAIT2 with fin time <= 60 s     "tcp: diag: add support for TIME_WAIT
                                                        sockets to tcp_abort()"
orphan     full sockets no process holds: FIN_WAIT1,    before bac76cf89816 "tcp: fix forever orphan
           LAST_ACK, CLOSING, FIN_WAIT2 above 60 s      socket caused by tcp_abort" (6.11, and
                                                        stable 6.10.8 and others) tcp_abort() skipped
                                                        SOCK_DEAD sockets: it answered 0, purged the
                                                        write queue and left the socket, and a
                                                        zero-window FIN_WAIT1 orphan then lived
                                                        forever (no timer was re-armed)
=========  ===========================================  ==========================================

Version strings are never compared: ``probe()`` in
collect/netlink/destroy.py builds a socket of each kind of its own and
destroys it, and a :class:`Support` records what happened; ``kill`` and
``doctor`` both ask it. This module is pure.

What the peer sees follows ``tcp_need_reset()`` (include/net/tcp.h): a RST
from ESTABLISHED, CLOSE_WAIT, FIN_WAIT1, FIN_WAIT2 and SYN_RECV full
sockets; nothing from LAST_ACK, CLOSING, SYN_SENT, nor from a timewait-type
minisocket, which is only unhashed (``inet_twsk_deschedule_put()``): the
peer learns of it when its next segment is answered with a RST.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from .states import AFTER_CLOSE, PEER_CLOSED, RESET_ON_ABORT
from .table import SocketTable


class Kind(str, enum.Enum):
    FULL = "full"
    TIMEWAIT = "timewait"
    ORPHAN = "orphan"


#: Full-socket states in which a socket without an inode is an orphan.
_ORPHANABLE = tuple(sorted(int(s) for s in AFTER_CLOSE))

#: tcp_need_reset(): tcp_abort() sends a RST from these states.
RST_STATES = frozenset(int(s) for s in RESET_ON_ABORT)

#: The commits behind each kind's row in the table above (docs/act.md).
HISTORY = {
    Kind.FULL: ("4.5", "c1e64e298b8c"),
    Kind.TIMEWAIT: ("6.0", "af9784d007d8"),
    Kind.ORPHAN: ("6.11", "bac76cf89816"),
}


def kinds(table: SocketTable) -> np.ndarray:
    """The :class:`Kind` value of every row, as an object array of strings.

    >>> from tcplinger.diagnose.builder import SocketBuilder
    >>> b = SocketBuilder()
    >>> b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.2:4000", inode=7)
    >>> b.add("TIME_WAIT", "10.0.0.1:80", "10.0.0.2:5000", inode=0, timer=3)
    >>> b.add("FIN_WAIT1", "10.0.0.1:80", "10.0.0.2:6000", inode=0)
    >>> kinds(b.table()).tolist()
    ['full', 'timewait', 'orphan']
    """
    rows = table.rows
    out = np.full(len(rows), Kind.FULL.value, dtype=object)
    orphan = (rows["inode"] == 0) & np.isin(rows["state"], _ORPHANABLE) & ~rows["timewait"]
    out[orphan] = Kind.ORPHAN.value
    out[rows["timewait"]] = Kind.TIMEWAIT.value
    return out


def peer_sees(state: int, timewait: bool) -> str:
    """``"rst"`` or ``"nothing"``: what tcp_abort() sends the peer.

    >>> peer_sees(8, False), peer_sees(9, False), peer_sees(6, True), peer_sees(5, True)
    ('rst', 'nothing', 'nothing', 'nothing')
    """
    if timewait:
        return "nothing"
    return "rst" if state in RST_STATES else "nothing"


def owner_sees(state: int, has_owner: bool) -> str:
    """What the process holding the socket sees, as a catalog key suffix.

    Measured on 6.18 (tests/privileged/test_kill.py, docs/act.md): the
    first call that collects the socket error (send(), or
    getsockopt(SO_ERROR)) gets ECONNABORTED, later send()s EPIPE; recv()
    on a CLOSE_WAIT socket keeps returning end of file (the peer's FIN came
    first: SOCK_DONE is tested before sk_err in tcp_recvmsg_locked());
    on a socket that had not received a FIN, recv() returns the queued data,
    then ECONNABORTED.

    >>> owner_sees(8, True), owner_sees(1, True), owner_sees(6, False)
    ('close_wait', 'open', 'none')
    """
    if not has_owner:
        return "none"
    if state in PEER_CLOSED:
        return "close_wait"
    return "open"


class Status(str, enum.Enum):
    WORKS = "works"  # destroyed and gone
    UNSUPPORTED = "unsupported"  # EOPNOTSUPP: kernel cannot do this kind
    STUCK = "stuck"  # answered 0, yet the socket is still there
    DENIED = "denied"  # EPERM/EACCES: not allowed where probed
    UNKNOWN = "unknown"  # not probed, or the probe could not run


@dataclass(frozen=True)
class Probe:
    status: Status
    detail: str = ""  # one line: the errno or what could not be built
    errno: int | None = None

    def to_json(self) -> dict:
        return {"status": self.status.value, "detail": self.detail, "errno": self.errno}


@dataclass(frozen=True)
class Support:
    """Probe results per kind, and where the probes ran.

    ``where`` is ``"private"`` (a network namespace of the probe's own,
    made with unshare(CLONE_NEWNET) and gone afterwards), ``"current"``
    (the caller's namespace, when a private one could not be made) or
    ``"none"`` (nothing probed).
    """

    results: dict = field(default_factory=dict)  # Kind -> Probe
    where: str = "none"

    def get(self, kind: Kind | str) -> Probe:
        return self.results.get(Kind(kind), Probe(Status.UNKNOWN, "not probed"))

    def __contains__(self, kind) -> bool:
        return Kind(kind) in self.results

    def blocks(self, kind: Kind | str) -> bool:
        """True when the probe showed this kind cannot be ended here.

        DENIED does not block: permission is checked per socket by the
        kernel, and the probe's namespace is not the socket's. An orphan
        whose probe could not tell (UNKNOWN after a probe ran) is blocked:
        on kernels before bac76cf89816 destroying a zero-window orphan made
        it immortal, so orphans are ended only where that was ruled out.

        >>> s = Support({Kind.ORPHAN: Probe(Status.UNKNOWN, "x")}, "private")
        >>> s.blocks(Kind.ORPHAN), s.blocks(Kind.FULL), Support().blocks(Kind.ORPHAN)
        (True, False, False)
        """
        status = self.get(kind).status
        if status in (Status.UNSUPPORTED, Status.STUCK):
            return True
        return Kind(kind) is Kind.ORPHAN and status is Status.UNKNOWN and self.where != "none"

    def to_json(self) -> dict:
        return {"probed_in": self.where,
                **{k.value: self.get(k).to_json() for k in Kind}}


NOT_PROBED = Support()
