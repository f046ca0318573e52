"""TCP states and state groups: one table, kernel numbering.

The numbers are the kernel's ``enum { TCP_ESTABLISHED = 1, ... }`` from
``include/net/tcp_states.h``; sock_diag, ``/proc/net/tcp`` (hex ``st``
column) and the ``sock:inet_sock_set_state`` tracepoint all use them.

Groups name what a person asks about: *active-close* is the side that
closed first (FIN_WAIT1, FIN_WAIT2, CLOSING, TIME_WAIT), *passive-close*
the side that was closed on (CLOSE_WAIT, LAST_ACK); together they are the
*lingering* states tcplinger exists for. Groups the code asks about:

* *ownable*: the lingering states of a full socket, the ones a process can
  still hold a file descriptor to (all but TIME_WAIT, which only a
  timewait minisock holds: ``tcp_time_wait()`` in net/ipv4/tcp_minisocks.c;
  it has no inode and no tcp_info).
* *after-close*: the states ``close()`` leads to (``tcp_close_state()`` in
  net/ipv4/tcp.c: ESTABLISHED -> FIN_WAIT1, CLOSE_WAIT -> LAST_ACK) and
  what follows them (FIN_WAIT2, CLOSING, TIME_WAIT); a socket in one of
  them with inode 0 is an orphan. CLOSE_WAIT with inode 0 is a socket not
  yet accept()ed, never an orphan: close() sends the FIN and leaves it.
* *can-send*: the application may still write (RFC 9293 3.10.2, SEND:
  ESTABLISHED and CLOSE_WAIT).
* *peer-closed*: the peer's FIN has arrived (RFC 9293 3.10.7.4, eighth
  step: CLOSE_WAIT, LAST_ACK, CLOSING, TIME_WAIT); a read() returns 0.
* *reset-on-abort*: ``tcp_abort()`` (SOCK_DESTROY) sends a RST to the peer
  (``tcp_need_reset()`` in include/net/tcp.h: ESTABLISHED, CLOSE_WAIT,
  FIN_WAIT1, FIN_WAIT2, SYN_RECV); from the others the peer hears nothing.
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
    _row(TcpState.ESTABLISHED, "ESTAB", "open", "connected", "can-send", "reset-on-abort"),
    _row(TcpState.SYN_SENT, "SYN-SENT", "opening", "connected"),
    _row(TcpState.SYN_RECV, "SYN-RECV", "opening", "connected", "reset-on-abort"),
    _row(TcpState.FIN_WAIT1, "FIN-WAIT-1", "active-close", "lingering", "connected", "ownable",
         "after-close", "reset-on-abort"),
    _row(TcpState.FIN_WAIT2, "FIN-WAIT-2", "active-close", "lingering", "connected", "ownable",
         "after-close", "reset-on-abort"),
    _row(TcpState.TIME_WAIT, "TIME-WAIT", "active-close", "lingering", "after-close",
         "peer-closed"),
    _row(TcpState.CLOSE, "UNCONN", "closed"),
    _row(TcpState.CLOSE_WAIT, "CLOSE-WAIT", "passive-close", "lingering", "connected", "ownable",
         "can-send", "reset-on-abort", "peer-closed"),
    _row(TcpState.LAST_ACK, "LAST-ACK", "passive-close", "lingering", "connected", "ownable",
         "after-close", "peer-closed"),
    _row(TcpState.LISTEN, "LISTEN", "listening"),
    _row(TcpState.CLOSING, "CLOSING", "active-close", "lingering", "connected", "ownable",
         "after-close", "peer-closed"),
    _row(TcpState.NEW_SYN_RECV, "SYN-RECV", "opening"),
    _row(TcpState.BOUND_INACTIVE, "UNCONN", "closed"),
)

BY_STATE: dict[TcpState, StateInfo] = {row.state: row for row in STATE_TABLE}
GROUPS: frozenset[str] = frozenset(g for row in STATE_TABLE for g in row.groups)

#: States reported by sock_diag/procfs that a user can ask for.
REPORTED = tuple(s for s in TcpState if s not in (TcpState.NEW_SYN_RECV, TcpState.BOUND_INACTIVE))


def members(group: str) -> frozenset[TcpState]:
    """States in a named group, e.g. ``members("passive-close")``."""
    if group not in GROUPS:
        raise KeyError(group)
    return frozenset(row.state for row in STATE_TABLE if group in row.groups)


#: The groups the code asks about, by name (the module docstring says why
#: each holds what it holds).
LINGERING = members("lingering")
OWNABLE = members("ownable")
AFTER_CLOSE = members("after-close")
RESET_ON_ABORT = members("reset-on-abort")
CAN_SEND = members("can-send")
PEER_CLOSED = members("peer-closed")
#: Connections still in use (not torn down): ended by kill only when asked.
IN_USE = members("open") | members("opening")
#: Not a connection at all (LISTEN, an unconnected or bound socket).
NOT_CONNECTION = members("listening") | members("closed")
#: Sockets whose local port is not an outgoing connection's (ephemeral
#: port accounting): a listener, an unconnected socket, and a request
#: socket (the server side of a handshake, on the listener's port).
NOT_OUTGOING = frozenset({TcpState.LISTEN, TcpState.CLOSE, TcpState.NEW_SYN_RECV})


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
    try:
        return _NAMES[state]
    except KeyError:  # the enum lookup costs a microsecond; a capture's JSON asks millions
        pass
    if state == TcpState.NEW_SYN_RECV:
        text = "SYN_RECV"
    else:
        try:
            text = TcpState(state).name
        except ValueError:
            text = f"UNKNOWN_{state}"
    if isinstance(state, int) and len(_NAMES) < 1024:
        _NAMES[state] = text
    return text


_NAMES: dict = {}
