"""Who to blame for sockets no process holds (TIME_WAIT, orphans), and how
to group them.

TIME_WAIT and orphaned sockets have inode 0: the program already closed
them. Their culprit is inferred, and said to be, with its basis:

* **server side** (the local port has a listener): the owner of that
  listener closed them (apache2 for orphans on :8080);
* **client side**: the processes that hold sockets to the same remote
  address and port now (the nginx workers for TIME_WAIT towards an
  upstream :8084), then those the state-change tracepoint saw connecting
  to it during ``--interval`` (collect/connects.py), one entry per command
  line: a shell loop of curl is a process per connection, each gone
  before the window ends, named from what was read while it lived. When
  nobody is seen, nobody is named.

Ownerless sockets are grouped by listening port (server side) or remote
address:port (client side), never by ephemeral local port.

Measured with real software (docs/real-software.md): Apache's orphaned
FIN_WAIT2 sit on its listening port; nginx's TIME_WAIT under ``ab`` on its
listening ports :8080 and :8084; nginx's orphans towards a backend that
never closes on the backend's address and port.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..model.owner_map import OwnerMap
from ..model.socket import Owner, format_address
from ..model.states import TcpState
from ..model.table import distinct, member
from .finding import OwnerRef
from .process_text import ref, short_command, who_text
from .rates import number_text

#: Client-side groups (remote address:port) whose culprits are looked up,
#: largest first; the rest are shown without one.
CULPRIT_GROUPS = 64
@dataclass(frozen=True)
class Group:
    """Ownerless sockets of one listening port (server side) or one remote
    address:port (client side), with their inferred culprits."""

    side: str  # "server" | "client"
    where: str  # ":8080" or "127.0.0.1:8084"
    port: int  # the listening port, or the remote port
    rows: np.ndarray
    culprits: tuple[OwnerRef, ...]
    #: server side: the processes on this host behind connections to it
    #: (:func:`local_clients`)
    clients: tuple[OwnerRef, ...] = ()

    def to_json(self) -> dict:
        return {"side": self.side, "where": self.where, "count": int(len(self.rows)),
                "culprits": [c.to_json() for c in self.culprits],
                "clients": [c.to_json() for c in self.clients]}


def endpoint(family: int, raw: bytes, port: int) -> str:
    addr = format_address(family, raw)
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _distinct(owners) -> list[Owner]:
    seen, out = set(), []
    for o in owners:
        if o.pid not in seen:
            seen.add(o.pid)
            out.append(o)
    return out


def listener_owners(ctx, port: int) -> list[Owner]:
    """Processes holding the listener(s) on local ``port`` (any address)."""
    rows = ctx.rows
    idx = np.flatnonzero((ctx.state == int(TcpState.LISTEN)) & (rows["sport"] == port))
    owners = ctx.inp.owners or {}
    return _distinct(o for i in idx.tolist() for o in owners.get(int(rows["inode"][i]), ()))


def clients_of(ctx, family: int, addr: bytes, port: int, where: str,
               limit: int = 5, candidates: Held | None = None) -> tuple[OwnerRef, ...]:
    """The processes behind connections to ``addr``:``port``: those holding
    sockets to it now (any state but LISTEN; basis "destination"), most
    sockets first, then the others the tracepoint saw connecting to it
    during ``--interval`` (basis "connects", with their rate): connections
    that live milliseconds are gone before /proc is read, and so are
    clients that connect once and exit (curl in a loop).
    ``candidates``: the rows that can hold one (:func:`held_rows`), when
    the caller asks for many destinations."""
    owners = ctx.inp.owners or {}
    counts: dict[int, list] = {}
    if owners:  # without owners no row can name a holder: nothing to scan
        if candidates is None:
            candidates = held_rows(ctx)
        rows = ctx.rows
        near = candidates.to_port(port)
        key = np.frombuffer(bytes(addr).ljust(16, b"\0"), dtype=np.uint64)
        words = np.ascontiguousarray(rows["daddr"][near]).view(np.uint64).reshape(-1, 2)
        same = near[(words[:, 0] == key[0]) & (words[:, 1] == key[1])
                    & (rows["family"][near] == family)]
        # each row's first holder from the owner columns, its details from
        # the process (no tuple of Owners made per row, issue 16)
        om = OwnerMap.of(owners)
        start, count = om.runs(rows["inode"][same])
        if len(om.proc):
            for p in om.proc[start[count > 0]].tolist():
                o = om.processes[p]
                counts.setdefault(o.pid, [o, 0])[1] += 1
    ranked = sorted(counts.values(), key=lambda e: (-e[1], e[0].pid))
    out = [ref(o, "destination", where) for o, _ in ranked[:limit]]
    seen = ctx.inp.connects
    if seen is None or seen.window_s <= 0:
        return tuple(out)
    text = format_address(family, bytes(addr))
    # one-shot clients (a shell loop of curl) are a process per connection:
    # one entry per command line, with all their connects
    folded: dict[tuple, list] = {}
    for o, n in seen.to(family, text, port):
        if o.pid not in counts:
            entry = folded.setdefault((o.comm, short_command(o.cmdline, o.comm)), [o, 0, 0])
            entry[1] += n
            entry[2] += 1
    out += [ref(o, "connects", where, per_s=n / seen.window_s, processes=k)
            for o, n, k in sorted(folded.values(), key=lambda e: (-e[1], e[0].pid))]
    return tuple(out[:limit])


@dataclass(frozen=True)
class Held:
    """Rows a process can hold towards a destination (a file, and not a
    listener), ordered by remote port, so that those towards one port are
    a slice: each destination's lookup had copied every held row (0.25 s
    a destination at 1M sockets)."""

    rows: np.ndarray
    dports: np.ndarray  # the rows' remote ports, ascending

    def to_port(self, port: int) -> np.ndarray:
        lo = np.searchsorted(self.dports, port, "left")
        return self.rows[lo:np.searchsorted(self.dports, port, "right")]


def held_rows(ctx) -> Held:
    """:class:`Held` of a namespace."""
    rows = np.flatnonzero((ctx.rows["inode"] != 0) & (ctx.state != int(TcpState.LISTEN)))
    dports = ctx.rows["dport"][rows]
    order = np.argsort(dports, kind="stable")
    return Held(rows[order], dports[order])


def destination_holders(ctx, row: int, limit: int = 5,
                        candidates: Held | None = None) -> tuple[OwnerRef, ...]:
    """:func:`clients_of` the remote address and port of ``row``."""
    rows = ctx.rows
    family, port = int(rows["family"][row]), int(rows["dport"][row])
    addr = rows["daddr"][row].tobytes()
    return clients_of(ctx, family, addr, port, endpoint(family, addr, port), limit, candidates)


def groups(ctx, idx: np.ndarray, limit: int = 5) -> list[Group]:
    """``idx`` (ownerless rows) by listening port or remote address:port,
    largest first, each with its inferred culprits."""
    idx = np.asarray(idx, dtype=np.int64)
    if len(idx) == 0:
        return []
    rows = ctx.rows
    listening = np.fromiter(ctx.listen_ports, dtype=np.uint16, count=len(ctx.listen_ports))
    server = member(rows["sport"][idx], listening)
    out: list[Group] = []
    srv = idx[server]
    for port in distinct(rows["sport"][srv]).tolist():
        members = srv[rows["sport"][srv] == port]
        culprits = tuple(ref(o, "listener", f":{port}")
                         for o in listener_owners(ctx, port)[:limit])
        group = Group("server", f":{port}", int(port), members, culprits)
        out.append(replace(group, clients=local_clients(ctx, group, limit)))
    cli = idx[~server]
    if len(cli):
        key = np.ascontiguousarray(rows["daddr"][cli]).view(np.uint64).reshape(-1, 2)
        stacked = np.column_stack([key, rows["dport"][cli].astype(np.uint64),
                                   rows["family"][cli].astype(np.uint64)])
        _, first, inverse, sizes = np.unique(stacked, axis=0, return_index=True,
                                             return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        order = np.argsort(inverse, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        held = held_rows(ctx) if ctx.inp.owners else None  # clients_of reads it with owners only
        # each lookup scans the held rows: only the largest destinations
        # get one (5,000 destinations x 5,000 rows had taken 2.8 s)
        looked = set(np.argsort(-sizes, kind="stable")[:CULPRIT_GROUPS].tolist())
        for g, f in enumerate(first.tolist()):
            members = cli[order[bounds[g]:bounds[g + 1]]]
            i = int(cli[f])
            where = endpoint(int(rows["family"][i]), rows["daddr"][i].tobytes(),
                             int(rows["dport"][i]))
            culprits = destination_holders(ctx, i, limit, held) if g in looked else ()
            out.append(Group("client", where, int(rows["dport"][i]), members, culprits))
    out.sort(key=lambda g: (-len(g.rows), g.side, g.where))
    return out


def connects_json(ctx) -> dict | None:
    """The tracepoint's connect sample behind basis "connects" (window,
    events lost), for a finding's evidence; None when not recorded."""
    seen = ctx.inp.connects
    return None if seen is None else seen.to_json()


def group_text(found: list[Group], limit: int = 3) -> str:
    """``:8080 (149), 127.0.0.1:8084 (40)``: the largest groups, for sentences."""
    return ", ".join(f"{g.where} ({len(g.rows)})" for g in found[:limit]) or "-"


def wanted_mask(table) -> np.ndarray:
    """Rows whose owners the inference needs: the listeners on ports with
    ownerless sockets, and the sockets to the remote address:ports of
    ownerless client-side sockets (a cost bound for the /proc walk)."""
    rows = table.rows
    st = rows["state"]
    ownerless = (rows["inode"] == 0) & member(
        st, [int(TcpState.TIME_WAIT), int(TcpState.FIN_WAIT2), int(TcpState.FIN_WAIT1),
             int(TcpState.LAST_ACK), int(TcpState.CLOSING)])
    if not ownerless.any():
        return np.zeros(len(rows), bool)
    listen = st == int(TcpState.LISTEN)
    ports = distinct(rows["sport"][ownerless])
    want = listen & member(rows["sport"], ports)
    # local clients of those listeners (nginx workers in front of :8084)
    want |= (rows["inode"] != 0) & ~listen & member(rows["dport"], ports)
    listening = distinct(rows["sport"][listen])
    client = ownerless & ~member(rows["sport"], listening)
    if client.any():
        dports = distinct(rows["dport"][client])
        want |= (rows["inode"] != 0) & ~listen & member(rows["dport"], dports)
    return want & (rows["inode"] != 0)


def local_clients(ctx, group: Group, limit: int = 5) -> tuple[OwnerRef, ...]:
    """For a server-side group: the processes on this host behind
    connections to its local address and listening port (nginx workers in
    front of an upstream on :8084; :func:`clients_of`)."""
    rows = ctx.rows
    i = int(group.rows[0])
    return clients_of(ctx, int(rows["family"][i]), rows["saddr"][i].tobytes(), group.port,
                      group.where, limit)


_K = "rule.common."
#: Fixes that answer a culprit, by (role, program): the client that opens
#: a connection per request, or the server that closes idle ones.
CULPRIT_FIXES = {("client", "nginx"): "fix.nginx_upstream_keepalive",
                 ("server", "nginx"): "fix.nginx_keepalive",
                 ("server", "apache2"): "fix.apache_keepalive",
                 ("server", "httpd"): "fix.apache_keepalive"}


def group_facts(ctx, found: list[Group], limit: int = 3) -> list:
    """One sentence per group (largest first): where, how many, who is
    inferred to be the culprit and on what basis."""
    from .rules._common import T
    out = []
    for g in found[:limit]:
        if g.side == "server":
            key = "group.server" if g.culprits else "group.server_none"
            out.append(T(_K + key, n=int(len(g.rows)), where=g.where, who=who_text(g.culprits)))
            if g.clients:
                out += _clients_facts(ctx, "group.local", g, g.clients)
        elif g.culprits:
            out += _clients_facts(ctx, "group.client", g, g.culprits)
        else:
            out.append(T(_K + "group.client_none", n=int(len(g.rows)), where=g.where))
    if len(found) > limit:
        out.append(T(_K + "group.more", n=len(found) - limit,
                     sockets=int(sum(len(g.rows) for g in found[limit:]))))
    return out


def _clients_facts(ctx, key: str, g: Group, refs) -> list:
    """``key`` + "_clients" for those holding sockets to it, + "_connects"
    for those seen by the tracepoint (with their rate, summed)."""
    from .rules._common import T
    held = [r for r in refs if r.basis != "connects"]
    seen = [r for r in refs if r.basis == "connects"]
    out = []
    if held:
        out.append(T(_K + key + "_clients", n=int(len(g.rows)), where=g.where,
                     who=who_text(held)))
    if seen:
        out.append(T(_K + key + "_connects", n=int(len(g.rows)), where=g.where,
                     who=who_text(seen), rate=number_text(sum(r.per_s or 0 for r in seen)),
                     window=f"{ctx.inp.connects.window_s:.1f}"))
    return out


def group_fixes(ctx, found: list[Group], limit: int = 3) -> list:
    """The fixes that answer the groups' culprits (an nginx in front of an
    upstream: upstream keep-alive), each once."""
    from .finding import Fix, FixKind
    from .rules._common import T
    seen, out = set(), []
    for g in found[:limit]:
        roles = [("server" if g.side == "server" else "client", c) for c in g.culprits]
        if g.side == "server":
            # local clients first: a proxy that opens a connection per
            # request makes the server close them (HTTP/1.0 upstreams)
            roles = [("client", c) for c in g.clients] + roles
        for role, c in roles:
            name = c.comm.split(":")[0].strip()
            # the named fixes answer programs we measured; every other
            # program gets the generic one of its role
            key = CULPRIT_FIXES.get((role, name)) or (
                "fix.client_reuse" if role == "client" else "fix.server_closes")
            # a client once per program (":8084" and "127.0.0.1:8084" are one
            # upstream), a server once per listening port
            once = (key, c.pid) if role == "client" else (key, g.where)
            if once in seen:
                continue
            seen.add(once)
            out.append(Fix(FixKind.APP, T(_K + key, who=who_text([c]), where=g.where,
                                          comm=c.comm)))
    return out


@dataclass(frozen=True)
class Holding:
    """Who holds, or is inferred to be behind, ``count`` sockets in one
    state: what ``top``'s owner panel lists, as the report finds them."""

    pid: int
    comm: str
    command: str
    state: int
    count: int
    basis: str = "owner"  # "owner", "listener", "destination"
    where: str = ""

    @property
    def key(self) -> str:
        """``pid/comm`` (the watch database's owner key), marked when inferred."""
        return f"{self.pid}/{self.comm}" + ("" if self.basis == "owner" else " (inferred)")


def holdings(ctx, idx: np.ndarray, show=()) -> tuple[list[Holding], dict[int, str]]:
    """Owners of rows ``idx`` per (process, state), and for the rows no
    process holds their inferred culprit (:func:`groups`), most sockets
    first; with the key of who holds or is behind each row of ``show``
    (absent when nobody is known)."""
    idx = np.asarray(idx, dtype=np.int64)
    owners = ctx.inp.owners or {}
    inode, state = ctx.inode, ctx.state
    show = set(int(i) for i in show)
    counts: dict[tuple, list] = {}
    row_key: dict[int, str] = {}
    owned = idx[inode[idx] != 0]
    for (ino, st), n in zip(*_pairs(inode[owned], state[owned])):
        found = owners.get(int(ino), ())
        if found:
            o = found[0]
            h = Holding(o.pid, o.comm, short_command(o.cmdline, o.comm), int(st), 0)
            counts.setdefault((h.pid, h.state, h.basis, ""), [h, 0])[1] += int(n)
    for i in show & set(owned.tolist()):
        found = owners.get(int(inode[i]), ())
        if found:
            row_key[i] = f"{found[0].pid}/{found[0].comm}"
    for g in groups(ctx, idx[inode[idx] == 0]):
        if not g.culprits:
            continue
        c = g.culprits[0]
        sts, ns = np.unique(state[g.rows], return_counts=True)
        for st, n in zip(sts.tolist(), ns.tolist()):
            h = Holding(c.pid, c.comm, c.command, int(st), 0, c.basis, g.where)
            counts.setdefault((h.pid, h.state, h.basis, h.where), [h, 0])[1] += n
        for i in show & set(g.rows.tolist()):
            row_key[i] = Holding(c.pid, c.comm, c.command, 0, 0, c.basis, g.where).key
    out = [Holding(h.pid, h.comm, h.command, h.state, n, h.basis, h.where)
           for h, n in counts.values()]
    out.sort(key=lambda h: (-h.count, h.pid, h.state))
    return out, row_key


def _pairs(a: np.ndarray, b: np.ndarray):
    """Distinct (a, b) pairs and how often each occurs."""
    if len(a) == 0:
        return [], []
    both, n = np.unique(np.column_stack([a.astype(np.uint64), b.astype(np.uint64)]), axis=0,
                        return_counts=True)
    return [tuple(x) for x in both.tolist()], n.tolist()
