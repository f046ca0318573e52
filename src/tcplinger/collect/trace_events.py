"""Lines of ``trace_pipe`` as events: the pure parser of the TCP
tracepoints collect/tracefs.py reads.

A line of ``trace_pipe`` is ``TASK-PID [CPU] FLAGS TIMESTAMP: EVENT: BODY``;
the body is the event's ``print fmt`` (``events/<sys>/<event>/format``),
``key=value`` pairs for the TCP events:

>>> line = ("  python3-19910   [001] .N...  1672.097621: inet_sock_set_state: "
...         "family=AF_INET protocol=IPPROTO_TCP sport=35024 dport=45579 "
...         "saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 "
...         "daddrv6=::ffff:127.0.0.1 oldstate=TCP_SYN_SENT newstate=TCP_ESTABLISHED")
>>> ev = parse_line(line)
>>> ev.event, ev.t, ev.cpu, ev.pid, ev.comm
('inet_sock_set_state', 1672.097621, 1, 19910, 'python3')
>>> ev.local, ev.remote, ev.oldstate, ev.newstate
(('127.0.0.1', 35024), ('127.0.0.1', 45579), 2, 1)
>>> d = parse_line("  ksoftirqd/1-22  [001] ..s1.  1672.100075: tcp_destroy_sock: "
...     "family=AF_INET sport=35024 dport=45579 saddr=127.0.0.1 daddr=127.0.0.1 "
...     "saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 sock_cookie=3681a4")
>>> d.event, d.comm, d.cookie, d.newstate
('tcp_destroy_sock', 'ksoftirqd/1', 3572132, None)

IPv6 sockets carry their address in ``saddrv6``/``daddrv6`` (``saddr`` is
then 0.0.0.0); IPv4 ones show it in both, v4-mapped:

>>> parse_line("  <idle>-0  [000] ..s2.   10.5: inet_sock_set_state: family=AF_INET6 "
...     "protocol=IPPROTO_TCP sport=80 dport=5000 saddr=0.0.0.0 daddr=0.0.0.0 "
...     "saddrv6=fd00::1 daddrv6=fd00::2 oldstate=TCP_ESTABLISHED "
...     "newstate=TCP_CLOSE_WAIT").local
('fd00::1', 80)

With the instance option ``options/fields`` set, the body is every raw
field instead, numbers in hex (then ``skaddr`` identifies the socket):

>>> f = parse_line("  python3-20125  [000] .....  1675.897618: inet_sock_set_state: "
...     "skaddr=0xffff8881df80e5c0 (-131383594785344) oldstate=0x2 (2) newstate=0x1 (1) "
...     "sport=0x826c (33388) dport=0xe741 (59201) family=0x2 (2) protocol=0x6 (6) "
...     "saddr=0x100007f (16777343) daddr=0x100007f (16777343) saddr_v6=<INVALID-SIZE> "
...     "daddr_v6=<INVALID-SIZE>")
>>> f.local, f.remote, f.oldstate, f.newstate, f.fields["skaddr"]
(('127.0.0.1', 33388), ('127.0.0.1', 59201), 2, 1, '0xffff8881df80e5c0')

Lines that are not events (the ``CPU:N [LOST M EVENTS]`` notes
``trace_pipe`` inserts, blank lines) parse to None; :func:`lost_events`
reads the note:

>>> parse_line("CPU:1 [LOST 12 EVENTS]") is None, lost_events("CPU:1 [LOST 12 EVENTS]")
(True, 12)

Blind spots (KERNEL-NOTES; checked on 6.18): events carry no network
namespace, and nothing fires when a timewait-type socket expires or moves
from FIN_WAIT2 to TIME_WAIT (the full socket's last event is
``FIN_WAIT2 -> TCP_CLOSE`` plus ``tcp_destroy_sock`` when it is handed
over; net/ipv4/tcp_minisocks.c tcp_time_wait()). Poll sock_diag for those.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from ..model.states import TcpState

_HEAD = re.compile(
    r"^\s*(?P<comm>.+?)-(?P<pid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s]{4,6})\s+)?(?P<ts>\d+\.\d+):\s+(?P<event>\w+):\s?(?P<body>.*)$")
_KV = re.compile(r"(\w+)=(\S*)")
_LOST = re.compile(r"CPU:(\d+) \[LOST (\d+) EVENTS\]")


def _num(text: str | None) -> int | None:
    """A decimal or 0x-prefixed number (``options/fields`` prints hex)."""
    try:
        return None if text is None else int(text, 0)
    except ValueError:
        return None


def _state_number(text: str | None) -> int | None:
    """``TCP_FIN_WAIT2`` (or a number, as with ``options/fields``) -> 5."""
    if text is None:
        return None
    if text.startswith("TCP_"):
        try:
            return int(TcpState[text[4:]])
        except KeyError:
            return None
    try:
        return int(text, 0)
    except ValueError:
        return None


@dataclass(frozen=True)
class TraceEvent:
    """One tracepoint hit. ``t`` is in the instance's trace clock (``mono``:
    ``time.monotonic()`` seconds). ``fields`` keeps every ``key=value`` of
    the body as text."""

    t: float
    cpu: int
    pid: int  # common_pid: the task that ran (softirq: anyone), not the owner
    comm: str
    event: str
    fields: dict = field(default_factory=dict, compare=False)

    @property
    def family(self) -> int | None:
        fam = self.fields.get("family")
        if not fam:
            return None
        return {"AF_INET": 2, "AF_INET6": 10}.get(fam) or _num(fam)

    def _addr(self, key: str) -> str | None:
        if self.family == 10:
            return self.fields.get(key + "v6")
        text = self.fields.get(key)
        if text is not None and text.startswith("0x"):
            # options/fields prints the u8[4] array as one little-endian number
            return ".".join(str(b) for b in int(text, 16).to_bytes(4, "little"))
        return text

    @property
    def local(self) -> tuple[str | None, int]:
        return self._addr("saddr"), _num(self.fields.get("sport", "0")) or 0

    @property
    def remote(self) -> tuple[str | None, int]:
        return self._addr("daddr"), _num(self.fields.get("dport", "0")) or 0

    @property
    def oldstate(self) -> int | None:
        return _state_number(self.fields.get("oldstate"))

    @property
    def newstate(self) -> int | None:
        return _state_number(self.fields.get("newstate"))

    @property
    def cookie(self) -> int | None:
        """``sock_cookie`` (printed in hex by the kernel), when present."""
        text = self.fields.get("sock_cookie")
        return None if text is None else int(text, 16)


def parse_line(line: str) -> TraceEvent | None:
    """One ``trace_pipe`` line, or None when it is not an event line."""
    m = _HEAD.match(line.rstrip("\n"))
    if m is None:
        return None
    fields = dict(_KV.findall(m.group("body")))
    return TraceEvent(t=float(m.group("ts")), cpu=int(m.group("cpu")), pid=int(m.group("pid")),
                      comm=m.group("comm").strip(), event=m.group("event"), fields=fields)


def lost_events(line: str) -> int:
    """Events the reader missed, from a ``CPU:N [LOST M EVENTS]`` note (else 0)."""
    m = _LOST.search(line)
    return int(m.group(2)) if m else 0


def parse_stats(text: str) -> dict[str, int]:
    """``per_cpu/cpuN/stats`` as numbers (the float timestamps are skipped).

    >>> parse_stats("entries: 1\\noverrun: 3\\ncommit overrun: 0\\nbytes: 92\\n"
    ...             "oldest event ts:  1674.275923\\ndropped events: 2\\nread events: 45\\n")
    {'entries': 1, 'overrun': 3, 'commit overrun': 0, 'bytes': 92, 'dropped events': 2, 'read events': 45}
    """
    out = {}
    for row in text.splitlines():
        key, sep, value = row.partition(":")
        if sep and value.strip().isdigit():
            out[key.strip()] = int(value)
    return out


def port_filter(ports: Iterable[int]) -> str:
    """A kernel-side event filter keeping sockets with one of ``ports`` at
    either end (ftrace filter syntax, Documentation/trace/events.rst).

    >>> port_filter([20001])
    'sport == 20001 || dport == 20001'
    """
    return " || ".join(f"sport == {p} || dport == {p}" for p in sorted(set(ports)))
