"""What ``tcplinger kill`` is asked to end: the criteria and their parsers.

Everything here is pure: text in, values out, and boolean masks over a
:class:`~tcplinger.model.table.SocketTable`. The CLI parses its flags into
a :class:`KillCriteria`; the planner (:mod:`tcplinger.act.kill_plan`) applies
it. Scope (which namespaces), ``--pid`` and the port filters are applied
while collecting (``app/kill.py``), as for ``ls``; what needs owners or
ages is applied here.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

import numpy as np

from ..model.states import IN_USE, LINGERING, TcpState
from ..model.table import SocketTable

#: States ended when ``--state`` is not given: the lingering ones.
DEFAULT_STATES = LINGERING
#: States of connections still in use; ended only with --include-established.
OPEN_STATES = IN_USE
DEFAULT_MAX = 1000
#: the largest --max: more sockets than a host holds (each takes memory)
MAX_MAX = 10**8


class BadValue(ValueError):
    """A flag value that does not parse: ``str()`` the English line,
    ``key`` and ``fields`` the catalog's (``opt.*``); ``value`` repr()'d."""

    def __init__(self, key: str, english: str, value: str):
        self.key = key
        self.fields = {"value": repr(value)}
        super().__init__(english.format(**self.fields))


@dataclass(frozen=True)
class KillCriteria:
    """The selection, as typed values (never the argparse namespace).

    ``states`` None means :data:`DEFAULT_STATES` (plus the open states when
    ``include_established``). ``peers`` are networks the remote address
    must be in (any of them); ``cookies`` sock_diag cookies (any of them).
    """

    states: frozenset[TcpState] | None = None
    pid: int | None = None
    comm: str | None = None
    port: int | None = None
    sport: int | None = None
    dport: int | None = None
    peers: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    older_than: float | None = None  # seconds
    cookies: frozenset[int] = field(default_factory=frozenset)
    include_established: bool = False
    max: int = DEFAULT_MAX

    def wanted_states(self) -> frozenset[TcpState]:
        """States to collect: the asked ones, or the default set."""
        if self.states is not None:
            return self.states
        if self.include_established:
            return DEFAULT_STATES | OPEN_STATES
        return DEFAULT_STATES

    def has_filter(self) -> bool:
        """True when something narrows the selection beyond the scope."""
        return any(v is not None for v in (self.states, self.pid, self.comm, self.port,
                                          self.sport, self.dport, self.older_than)) \
            or bool(self.peers) or bool(self.cookies)

    def to_json(self) -> dict:
        return {
            "states": sorted(s.name for s in self.wanted_states()),
            "pid": self.pid, "comm": self.comm, "port": self.port, "sport": self.sport,
            "dport": self.dport, "peers": [str(p) for p in self.peers],
            "older_than_s": self.older_than, "cookies": sorted(self.cookies),
            "include_established": self.include_established, "max": self.max,
        }


# ---- parsers (argparse types call them) -------------------------------------

def parse_peer(text: str):
    """An address or network the remote end must be in.

    >>> parse_peer("10.0.0.0/8"), parse_peer("192.0.2.7"), parse_peer("[2001:db8::1]")
    (IPv4Network('10.0.0.0/8'), IPv4Network('192.0.2.7/32'), IPv6Network('2001:db8::1/128'))
    >>> parse_peer("10.0.0.1/8")  # host bits are allowed, as in ss
    IPv4Network('10.0.0.0/8')
    """
    try:
        return ipaddress.ip_network(text.strip().strip("[]").replace("]/", "/"), strict=False)
    except ValueError:
        raise BadValue("opt.invalid_peer", "invalid peer {value} (an address or ADDRESS/PREFIX,"
                       " e.g. 10.0.0.5 or 10.0.0.0/8 or 2001:db8::/32)", text) from None


def parse_cookie(text: str) -> int:
    """A sock_diag cookie: decimal as in ``ls --json``, or 0x-hex.

    >>> parse_cookie("4242"), parse_cookie("0x1092")
    (4242, 4242)
    """
    # ASCII digits only: int() would also take other scripts' digits
    m = re.fullmatch(r"0x([0-9a-f]{1,16})|([0-9]{1,20})", text.strip().lower(), re.ASCII)
    value = -1 if m is None else int(m.group(1), 16) if m.group(1) else int(m.group(2))
    if not 0 <= value < (1 << 64) - 1:
        raise BadValue("opt.invalid_cookie",
                       "invalid cookie {value} (the number `tcplinger ls --json` shows)", text)
    return value


# ---- masks ---------------------------------------------------------------------

_V4_MAPPED = np.frombuffer(bytes(10) + b"\xff\xff", np.uint8)


def peer_mask(table: SocketTable, networks) -> np.ndarray:
    """Rows whose remote address is in any of ``networks``.

    IPv4 networks also match IPv4-mapped IPv6 peers (``::ffff:a.b.c.d``,
    how a dual-stack listener reports IPv4 clients).

    >>> from tcplinger.diagnose.builder import SocketBuilder
    >>> b = SocketBuilder()
    >>> b.add("CLOSE_WAIT", "10.0.0.1:80", "192.0.2.7:4000")
    >>> b.add("CLOSE_WAIT", "[::ffff:10.0.0.1]:80", "[::ffff:192.0.2.9]:4000")
    >>> b.add("CLOSE_WAIT", "[2001:db8::1]:80", "[2001:db8::9]:4000")
    >>> peer_mask(b.table(), [parse_peer("192.0.2.0/24")]).tolist()
    [True, True, False]
    >>> peer_mask(b.table(), [parse_peer("2001:db8::/32")]).tolist()
    [False, False, True]
    """
    rows = table.rows
    n = len(rows)
    out = np.zeros(n, dtype=bool)
    if n == 0:
        return out
    # A field of a structured array is strided: copy it out before viewing bytes.
    raw = np.ascontiguousarray(rows["daddr"]).view(np.uint8).reshape(n, 16)
    fam = rows["family"]
    mapped = (fam == 10) & np.all(raw[:, :12] == _V4_MAPPED, axis=1)
    for net in networks:
        want = np.frombuffer(net.network_address.packed, np.uint8)
        mask_bytes = np.frombuffer(net.netmask.packed, np.uint8)
        if net.version == 4:
            v4 = raw[:, :4]
            hit4 = np.all((v4 & mask_bytes) == want, axis=1) & (fam == 2)
            hitm = np.all((raw[:, 12:16] & mask_bytes) == want, axis=1) & mapped
            out |= hit4 | hitm
        else:
            out |= np.all((raw & mask_bytes) == want, axis=1) & (fam == 10)
    return out
