"""Which sockets ``tcplinger kill`` would end, which it refuses and why.

Pure: tables, owners and ages in; a :class:`KillPlan` out. Nothing here
touches the kernel, so a dry run is exactly this function's answer, and
``--yes`` executes exactly the plan's targets (:mod:`tcplinger.act.kill_exec`).

The steps, per socket:

1. *match*: state, ``--comm``, ``--peer``, ``--cookie`` (scope, ``--pid``
   and ports were applied while collecting);
2. *age*: with ``--older-than T`` a socket is selected only when its age
   is known to be at least T: an exact age (timer-derived, or a tracker's)
   of at least T, or a lower bound (tcp_info) of at least T. An unknown
   age, or a lower bound below T, is never guessed at: the socket is left
   out and counted (``left_out.age_unknown``);
3. *refuse*: LISTEN (ending it stops the service accepting; restart it
   instead), ESTABLISHED and the opening states unless
   ``--include-established``, sockets that are not connections (CLOSE),
   sockets without a cookie (read through /proc: SOCK_DESTROY needs the
   cookie, or the kernel may pick the listener; see netlink/destroy.py),
   and kinds the kernel probe showed it cannot end;
4. *cap*: at most ``--max`` targets, in snapshot order; the rest are
   counted (``left_out.over_max``).
"""

from __future__ import annotations

import enum
import shlex
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..model.owner_map import OwnerMap
from ..model.socket import Age, AgeSource, NetnsRef, Owner, SocketRecord, UNKNOWN_AGE
from ..model.states import BY_STATE, NOT_CONNECTION, TcpState
from ..model.table import SocketTable
from ..model.sock_destroy import NOT_PROBED, Kind, Support, kinds, owner_sees, peer_sees
from .selection import OPEN_STATES, KillCriteria, peer_mask


class Refusal(str, enum.Enum):
    LISTEN = "listen"
    ESTABLISHED = "established"
    NOT_CONNECTION = "not_connection"
    NO_COOKIE = "no_cookie"
    KERNEL = "kernel"


@dataclass(frozen=True)
class PlanPart:
    """One namespace's collected sockets, ready to plan on.

    ``exact_age`` and ``lower_age`` are seconds aligned with ``table``
    (NaN unknown): track.age's timer ages and tcp_info lower bounds, or a
    tracker's. ``owners`` None means owners were not looked up.
    """

    netns: NetnsRef
    table: SocketTable
    exact_age: np.ndarray
    lower_age: np.ndarray
    owners: Mapping[int, tuple[Owner, ...]] | None = None
    source: str = "netlink"
    #: How to run a command in this namespace (``ip netns exec NAME``,
    #: ``nsenter -t PID -n``), "" for the caller's own.
    exec_prefix: str = ""


@dataclass(frozen=True)
class Target:
    socket: SocketRecord
    kind: Kind
    peer_sees: str  # "rst" | "nothing"
    owner_sees: str  # catalog key suffix, model/sock_destroy.owner_sees()
    ss_kill: str  # the equivalent ss -K line, for reference

    def to_json(self) -> dict:
        out = self.socket.to_json()
        out.update({"kind": self.kind.value, "peer_sees": self.peer_sees,
                    "owner_sees": self.owner_sees, "ss_kill": self.ss_kill})
        return out


@dataclass(frozen=True)
class Refused:
    socket: SocketRecord
    reason: Refusal
    kind: Kind
    ss_kill: str

    def to_json(self) -> dict:
        out = self.socket.to_json()
        out.update({"kind": self.kind.value, "reason": self.reason.value,
                    "ss_kill": self.ss_kill})
        return out


@dataclass(frozen=True)
class KillPlan:
    criteria: KillCriteria
    support: Support
    matched: int  # sockets matching every filter (age included), before refusals
    targets: tuple[Target, ...]
    refused: tuple[Refused, ...]
    age_unknown: int  # left out: age unknown, or a lower bound below --older-than
    over_max: int  # left out: beyond --max
    by_kind: dict = field(default_factory=dict)  # Kind -> targets of that kind

    @property
    def kinds_needed(self) -> frozenset[Kind]:
        return frozenset(t.kind for t in self.targets)

    def to_json(self) -> dict:
        return {
            "criteria": self.criteria.to_json(),
            "kernel": self.support.to_json(),
            "matched": self.matched,
            "targets": [t.to_json() for t in self.targets],
            "refused": [r.to_json() for r in self.refused],
            "left_out": {"age_unknown": self.age_unknown, "over_max": self.over_max},
        }


def candidate_kinds(parts: Sequence[PlanPart], criteria: KillCriteria) -> frozenset[Kind]:
    """Kinds among the matching sockets: what the kernel must be probed for."""
    out: set[Kind] = set()
    for part in parts:
        keep, _ = _match(part, criteria)
        out.update(Kind(k) for k in set(kinds(part.table)[keep].tolist()))
    return frozenset(out)


def plan(parts: Sequence[PlanPart], criteria: KillCriteria,
         support: Support = NOT_PROBED) -> KillPlan:
    """The plan for ``parts`` (one per namespace, in order).

    >>> from tcplinger.diagnose.builder import SocketBuilder
    >>> from tcplinger.model.socket import NetnsRef
    >>> b = SocketBuilder()
    >>> b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.2:4000", inode=7, count=3)
    >>> b.add("LISTEN", "10.0.0.1:80", inode=1)
    >>> b.add("TIME_WAIT", "10.0.0.1:80", "10.0.0.3:4000", inode=0, timer=3, expires_ms=1000)
    >>> t = b.table()
    >>> part = PlanPart(NetnsRef(1, "blue"), t, np.full(len(t), np.nan), np.full(len(t), np.nan))
    >>> from tcplinger.model.states import parse_states
    >>> p = plan([part], KillCriteria(states=parse_states("close-wait,listen"), max=2))
    >>> [x.socket.state_name for x in p.targets], p.over_max, [r.reason.value for r in p.refused]
    (['CLOSE_WAIT', 'CLOSE_WAIT'], 1, ['listen'])
    >>> p.targets[0].peer_sees, p.targets[0].ss_kill
    ('rst', "ss -N blue -K -t -n state close-wait 'src 10.0.0.1:80 dst 10.0.0.2:4000'")
    """
    targets: list[Target] = []
    refused: list[Refused] = []
    matched = age_unknown = over_max = 0
    by_kind: dict[Kind, int] = {}
    for part in parts:
        keep, unknown = _match(part, criteria)
        age_unknown += int(np.count_nonzero(unknown))
        idx = np.flatnonzero(keep)
        matched += len(idx)
        if not len(idx):
            continue
        kind_of = kinds(part.table)
        cache: dict = {}
        for i in idx.tolist():
            rec = _record(part, i, cache)
            kind = Kind(kind_of[i])
            reason = _refusal(rec, kind, criteria, support, part)
            ss_line = ss_kill_line(rec, part)
            if reason is not None:
                refused.append(Refused(rec, reason, kind, ss_line))
                continue
            if len(targets) >= criteria.max:
                over_max += 1
                continue
            targets.append(Target(rec, kind, peer_sees(rec.state, rec.timewait_type),
                                  owner_sees(rec.state, bool(rec.owners)), ss_line))
            by_kind[kind] = by_kind.get(kind, 0) + 1
    return KillPlan(criteria, support, matched, tuple(targets), tuple(refused), age_unknown,
                    over_max, by_kind)


def _match(part: PlanPart, c: KillCriteria) -> tuple[np.ndarray, np.ndarray]:
    """(selected, left out for unknown age) masks.

    Sockets refused whatever their age (LISTEN, open connections without
    --include-established, non-connections) are selected here regardless
    of ``--older-than``, so that the plan says they are refused rather than
    that their age is unknown.
    """
    rows = part.table.rows
    keep = np.isin(rows["state"], [int(s) for s in _states(c)])
    if c.comm is not None:
        comm_inodes = OwnerMap.of(part.owners).inodes_held_by(lambda p: p.comm == c.comm)
        keep &= np.isin(rows["inode"], comm_inodes) & (rows["inode"] != 0)
    if c.peers:
        keep &= peer_mask(part.table, c.peers)
    if c.cookies:
        keep &= np.isin(rows["cookie"], np.fromiter(c.cookies, dtype=np.uint64))
    unknown = np.zeros(len(rows), dtype=bool)
    if c.older_than is not None:
        policy = np.isin(rows["state"], [int(s) for s in _POLICY_REFUSED])
        if not c.include_established:
            policy |= np.isin(rows["state"], [int(s) for s in OPEN_STATES])
        exact, lower = part.exact_age, part.lower_age
        has_exact = ~np.isnan(exact)
        old_exact = has_exact & (np.nan_to_num(exact, nan=-1.0) >= c.older_than)
        old_bound = ~has_exact & (np.nan_to_num(lower, nan=-1.0) >= c.older_than)
        unknown = keep & ~policy & ~has_exact & ~old_bound
        keep &= old_exact | old_bound | policy
    return keep, unknown


_POLICY_REFUSED = NOT_CONNECTION


def _states(c: KillCriteria):
    states = set(c.wanted_states())
    if TcpState.SYN_RECV in states:
        states.add(TcpState.NEW_SYN_RECV)  # request sockets report SYN_RECV
    return states


def _refusal(rec: SocketRecord, kind: Kind, c: KillCriteria, support: Support,
             part: PlanPart) -> Refusal | None:
    state = rec.state
    if state == TcpState.LISTEN:
        return Refusal.LISTEN
    if state in NOT_CONNECTION:
        return Refusal.NOT_CONNECTION
    if state in OPEN_STATES and not c.include_established:
        return Refusal.ESTABLISHED
    if rec.cookie == 0 or part.source != "netlink":
        return Refusal.NO_COOKIE
    if support.blocks(kind):
        return Refusal.KERNEL
    return None


def _record(part: PlanPart, i: int, cache: dict) -> SocketRecord:
    exact = float(part.exact_age[i])
    lower = float(part.lower_age[i])
    if exact == exact:
        age = Age(exact, False, AgeSource.TIMER)
    elif lower == lower:
        rows = part.table.rows
        since_close = rows["state"][i] == int(TcpState.FIN_WAIT2) and rows["inode"][i] == 0
        age = Age(lower, True, AgeSource.SINCE_CLOSE if since_close else AgeSource.LAST_RECV)
    else:
        age = UNKNOWN_AGE
    inode = int(part.table.rows["inode"][i])
    owners = (part.owners or {}).get(inode, ()) if inode else ()
    return part.table.record(i, netns=part.netns, owners=owners, age=age, address_cache=cache)


def _ss_endpoint(ep) -> str:
    return f"[{ep.address}]:{ep.port}" if ":" in ep.address else f"{ep.address}:{ep.port}"


def ss_kill_line(rec: SocketRecord, part: PlanPart) -> str:
    """The ``ss -K`` line that ends this one socket (iproute2 ss(8)).

    ss matches by state and 4-tuple and destroys what it dumped, with the
    cookie it dumped, so the listener fallback cannot happen there either.
    A named namespace uses ``ss -N NAME``; another one needs the prefix
    the CLI gives (``nsenter -t PID -n``).
    """
    name = part.netns.name
    if name:
        head = f"ss -N {shlex.quote(name)} -K"
    else:
        head = (part.exec_prefix + " " if part.exec_prefix else "") + "ss -K"
    word = BY_STATE[TcpState(rec.state)].ss_name.lower()
    word = {"estab": "established", "listen": "listening", "unconn": "closed",
            "syn-recv": "syn-recv"}.get(word, word)
    flt = f"src {_ss_endpoint(rec.local)} dst {_ss_endpoint(rec.remote)}"
    return f"{head} -t -n state {word} {shlex.quote(flt)}"
