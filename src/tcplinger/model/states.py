"""TCP states and state groups: one table, kernel numbering.

The numbers are the kernel's ``enum { TCP_ESTABLISHED = 1, ... }`` from
``include/net/tcp_states.h``; sock_diag, ``/proc/net/tcp`` (hex ``st``
column) and the ``sock:inet_sock_set_state`` tracepoint all use them.

Groups name what a person asks about: *active-close* is the side that
closed first (FIN_WAIT1, FIN_WAIT2, CLOSING, TIME_WAIT), *passive-close*
the side that was closed on (CLOSE_WAIT, LAST_ACK); together they are the
*lingering* states tcplinger exists for.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class TcpState(enum.IntEnum):
    ESTABLISHED = 1
    SYN_SENT = 2
    SYN_RECV = 3
    FIN_WAIT1 = 4
    FIN_WAIT2 = 5
    TIME_WAIT = 6
    CLOSE = 7
    CLOSE_WAIT = 8
    LAST_ACK = 9
    LISTEN = 10
    CLOSING = 11
    NEW_SYN_RECV = 12
    BOUND_INACTIVE = 13


@dataclass(frozen=True)
class StateInfo:
    state: TcpState
    name: str  # kernel name without TCP_, as in the JSON contract
    ss_name: str  # what `ss` prints
    groups: frozenset[str]


def _row(state: TcpState, ss_name: str, *groups: str) -> StateInfo:
    return StateInfo(state, state.name, ss_name, frozenset(groups))


# The one table. A state's groups are listed here and nowhere else.
STATE_TABLE: tuple[StateInfo, ...] = (
    _row(TcpState.ESTABLISHED, "ESTAB", "open", "connected"),
    _row(TcpState.SYN_SENT, "SYN-SENT", "opening", "connected"),
    _row(TcpState.SYN_RECV, "SYN-RECV", "opening", "connected"),
    _row(TcpState.FIN_WAIT1, "FIN-WAIT-1", "active-close", "lingering", "connected"),
    _row(TcpState.FIN_WAIT2, "FIN-WAIT-2", "active-close", "lingering", "connected"),
    _row(TcpState.TIME_WAIT, "TIME-WAIT", "active-close", "lingering"),
    _row(TcpState.CLOSE, "UNCONN", "closed"),
    _row(TcpState.CLOSE_WAIT, "CLOSE-WAIT", "passive-close", "lingering", "connected"),
    _row(TcpState.LAST_ACK, "LAST-ACK", "passive-close", "lingering", "connected"),
    _row(TcpState.LISTEN, "LISTEN", "listening"),
    _row(TcpState.CLOSING, "CLOSING", "active-close", "lingering", "connected"),
    _row(TcpState.NEW_SYN_RECV, "SYN-RECV", "opening"),
    _row(TcpState.BOUND_INACTIVE, "UNCONN", "closed"),
)

BY_STATE: dict[TcpState, StateInfo] = {row.state: row for row in STATE_TABLE}
GROUPS: frozenset[str] = frozenset(g for row in STATE_TABLE for g in row.groups)

#: States that only exist as timewait-type minisockets when orphaned (see
#: ``tcp_time_wait()`` in net/ipv4/tcp_minisocks.c).
TIMEWAIT_SUBSTATES = frozenset({TcpState.TIME_WAIT, TcpState.FIN_WAIT2})
#: States in which an inode of 0 means "orphan" (the socket was close()d
#: but the kernel still holds it).
TEARDOWN = frozenset(s for s in TcpState if "lingering" in BY_STATE[s].groups)

#: States reported by sock_diag/procfs that a user can ask for.
REPORTED = tuple(s for s in TcpState if s not in (TcpState.NEW_SYN_RECV, TcpState.BOUND_INACTIVE))


def members(group: str) -> frozenset[TcpState]:
    """States in a named group, e.g. ``members("passive-close")``."""
    if group not in GROUPS:
        raise KeyError(group)
    return frozenset(row.state for row in STATE_TABLE if group in row.groups)


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


_ALIASES: dict[str, TcpState] = {}
for _info in STATE_TABLE:
    for _spelling in (_info.name, _info.ss_name, "TCP_" + _info.name):
        _ALIASES.setdefault(_key(_spelling), _info.state)
_ALIASES.update({
    "estab": TcpState.ESTABLISHED,
    "synrecv": TcpState.SYN_RECV,
    "synreceived": TcpState.SYN_RECV,
    "closed": TcpState.CLOSE,
    "timewait": TcpState.TIME_WAIT,
    "finwait1": TcpState.FIN_WAIT1,
    "finwait2": TcpState.FIN_WAIT2,
    "lastack": TcpState.LAST_ACK,
    "listening": TcpState.LISTEN,
})


class UnknownState(ValueError):
    """A state or group name that matches nothing."""


def parse_state(text: str) -> TcpState:
    """One state in any common spelling.

    >>> parse_state("close-wait"), parse_state("CLOSE_WAIT"), parse_state("closewait")
    (<TcpState.CLOSE_WAIT: 8>, <TcpState.CLOSE_WAIT: 8>, <TcpState.CLOSE_WAIT: 8>)
    >>> parse_state("FIN-WAIT-2") is parse_state("fin_wait2") is TcpState.FIN_WAIT2
    True
    """
    state = _ALIASES.get(_key(text))
    if state is None:
        raise UnknownState(text)
    return state


def parse_states(text: str) -> frozenset[TcpState]:
    """A comma-separated list of states and group names.

    >>> sorted(s.name for s in parse_states("close-wait,time_wait"))
    ['CLOSE_WAIT', 'TIME_WAIT']
    >>> sorted(s.name for s in parse_states("passive-close"))
    ['CLOSE_WAIT', 'LAST_ACK']
    """
    out: set[TcpState] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        group = next((g for g in GROUPS if _key(g) == _key(part)), None)
        if group is not None and _key(part) not in _ALIASES:
            out |= members(group)
        elif part.lower() == "all":
            out |= set(REPORTED)
        else:
            out.add(parse_state(part))
    if not out:
        raise UnknownState(text)
    return frozenset(out)


def state_mask(states) -> int:
    """sock_diag ``idiag_states`` bitmask (``1 << state``)."""
    mask = 0
    for s in states:
        mask |= 1 << int(s)
        if s == TcpState.SYN_RECV:
            mask |= 1 << int(TcpState.NEW_SYN_RECV)  # request sockets
    return mask


def name(state: int) -> str:
    """JSON name of a kernel state number (request sockets read SYN_RECV)."""
    if state == TcpState.NEW_SYN_RECV:
        return "SYN_RECV"
    try:
        return TcpState(state).name
    except ValueError:
        return f"UNKNOWN_{state}"
