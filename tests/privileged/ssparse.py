"""Parse ``ss -t -a -n`` output (with any of ``-o``, ``-e``, ``-p``) into dicts.

This is the *oracle* side of the privileged tests: it reads what iproute2's
``ss`` prints and nothing of tcplinger, so it deliberately keeps its own
state-name table instead of importing ``tcplinger.model.states``.

A line of ``ss -tanoep`` (iproute2 6.1) looks like::

    FIN-WAIT-2 0 0 [::1]:38826 [::1]:38265 timer:(timewait,42sec,0) ino:0 sk:101e

and parses to:

>>> row = parse_line("FIN-WAIT-2 0 0 [::1]:38826 [::1]:38265 "
...                  "timer:(timewait,42sec,0) ino:0 sk:101e", "tanoe")
>>> row["state"], row["family"], row["local"], row["remote"]["port"]
('FIN_WAIT2', 'ipv6', {'address': '::1', 'port': 38826}, 38265)
>>> row["timer"]
{'kind': 'timewait', 'ss_kind': 'timewait', 'expires_ms': 42000, 'resolution_ms': 1000, 'retransmits': 0}
>>> row["uid"], row["inode"], row["cookie"], row["shutdown"], row["timewait_type"]
(0, 0, 4126, None, True)

What ``ss`` prints, and therefore what the parser has to know
(misc/ss.c in iproute2 6.1):

- ``uid:N`` only when the uid is not 0 (``sock_details_print``), so with
  ``-e`` a missing ``uid:`` means 0;
- ``timer:(...)`` only when a timer is pending, so with ``-o`` a missing
  timer means "off"; timer names are ``tmr_name[] = {"off", "on",
  "keepalive", "timewait", "persist", "unknown"}``, where "on" is the
  retransmit timer and "persist" the zero-window probe timer;
- expiry text from ``print_ms_timer()``, which drops precision as the value
  grows (see :func:`parse_ms_timer`);
- the shutdown marks ``<->`` (``< - >`` with ``-`` replacing ``<`` when
  RCV_SHUTDOWN, bit 0, and ``>`` when SEND_SHUTDOWN, bit 1) come from the
  INET_DIAG_SHUTDOWN attribute, which every full socket carries and
  timewait-type sockets never do (``inet_twsk_diag_fill`` in
  net/ipv4/inet_diag.c puts no attributes);
- IPv6 addresses in brackets, an IPv6 wildcard on a dual-stack socket as
  ``*``, a bound device as ``%ifname`` after the address, and ``*`` as the
  port of an unconnected peer.
"""

from __future__ import annotations

import re

#: ss state column -> kernel name without TCP_ (the JSON contract's names).
SS_STATES = {
    "ESTAB": "ESTABLISHED",
    "SYN-SENT": "SYN_SENT",
    "SYN-RECV": "SYN_RECV",
    "FIN-WAIT-1": "FIN_WAIT1",
    "FIN-WAIT-2": "FIN_WAIT2",
    "TIME-WAIT": "TIME_WAIT",
    "UNCONN": "CLOSE",
    "CLOSE-WAIT": "CLOSE_WAIT",
    "LAST-ACK": "LAST_ACK",
    "LISTEN": "LISTEN",
    "CLOSING": "CLOSING",
}

#: ss timer names -> the JSON contract's timer kinds.
SS_TIMERS = {
    "off": "off",
    "on": "retransmit",
    "keepalive": "keepalive",
    "timewait": "timewait",
    "persist": "probe",
}

_MS_TIMER = re.compile(r"(?:(?P<min>\d+)min)?(?:(?P<sec>\d+)(?P<sep>sec|\.))?(?:(?P<ms>\d+)ms)?")
_USER = re.compile(r'\("(?P<comm>.*?)",pid=(?P<pid>\d+),fd=(?P<fd>\d+)\)')
_USERS = re.compile(r'users:\((?P<list>(?:\(".*?",pid=\d+,fd=\d+\),?)*)\)(?=\s|$)')
_TIMER = re.compile(r"timer:\((?P<kind>[a-z]+),(?P<expires>[^,]*),(?P<retrans>\d+)\)")
_SHUTDOWN = re.compile(r"[<-]-[>-]")


def parse_ms_timer(text: str) -> tuple[int, int]:
    """``(milliseconds, resolution_ms)`` of ss's ``print_ms_timer`` text.

    The true value lies in ``[ms, ms + resolution_ms)``: ss zeroes the
    milliseconds from 10 s on and the seconds from 10 min on.

    >>> parse_ms_timer("1.172ms"), parse_ms_timer("040ms"), parse_ms_timer("3sec")
    ((1172, 1), (40, 1), (3000, 1))
    >>> parse_ms_timer("42sec"), parse_ms_timer("1min57sec"), parse_ms_timer("2min")
    ((42000, 1000), (117000, 1000), (120000, 1000))
    >>> parse_ms_timer("12min"), parse_ms_timer("")
    ((720000, 60000), (0, 1))
    """
    m = _MS_TIMER.fullmatch(text)
    if m is None or (text and not any(m.group(g) for g in ("min", "sec", "ms"))):
        raise ValueError(f"not an ss timer value: {text!r}")
    minutes, secs, msecs = (int(m.group(g) or 0) for g in ("min", "sec", "ms"))
    if m.group("sep") == "." and m.group("ms") is None:
        raise ValueError(f"not an ss timer value: {text!r}")
    ms = (minutes * 60 + secs) * 1000 + msecs
    if minutes > 9:
        resolution = 60_000
    elif minutes or secs > 9:
        resolution = 1000
    else:
        resolution = 1
    return ms, resolution


def parse_timer(token: str) -> dict:
    """One ``timer:(name,expires,retrans)`` token.

    >>> parse_timer("timer:(on,508ms,1)")["kind"], parse_timer("timer:(persist,1.172ms,0)")["expires_ms"]
    ('retransmit', 1172)
    """
    m = _TIMER.fullmatch(token)
    if m is None:
        raise ValueError(f"not an ss timer: {token!r}")
    expires, resolution = parse_ms_timer(m.group("expires"))
    return {"kind": SS_TIMERS.get(m.group("kind"), "unknown"), "ss_kind": m.group("kind"),
            "expires_ms": expires, "resolution_ms": resolution,
            "retransmits": int(m.group("retrans"))}


def parse_endpoint(text: str) -> dict:
    """``addr[%dev]:port`` as ss -n prints it; ``*`` wildcards become 0/::.

    >>> parse_endpoint("127.0.0.1:5555"), parse_endpoint("[::1]:80")
    ({'address': '127.0.0.1', 'port': 5555}, {'address': '::1', 'port': 80})
    >>> parse_endpoint("0.0.0.0:*"), parse_endpoint("*:22"), parse_endpoint("[::]:*")
    ({'address': '0.0.0.0', 'port': 0}, {'address': '::', 'port': 22}, {'address': '::', 'port': 0})
    >>> parse_endpoint("[fe80::1]%veth0:22"), parse_endpoint("[::ffff:10.0.0.1]:443")
    ({'address': 'fe80::1', 'port': 22, 'device': 'veth0'}, {'address': '::ffff:10.0.0.1', 'port': 443})
    """
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ValueError(f"not an ss endpoint: {text!r}")
    device = None
    if "%" in host:
        host, _, device = host.rpartition("%")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif host == "*":
        host = "::"  # only an IPv6 wildcard prints as "*" (inet_addr_print)
    out = {"address": host, "port": 0 if port_text == "*" else int(port_text)}
    if device is not None:
        out["device"] = device
    return out


def parse_shutdown(mark: str) -> int:
    """INET_DIAG_SHUTDOWN bits from ss's ``<->`` mark.

    >>> [parse_shutdown(m) for m in ("<->", "-->", "<--", "---")]
    [0, 1, 2, 3]
    """
    return (mark[0] == "-") | ((mark[2] == "-") << 1)


def parse_users(token: str) -> list[dict]:
    """``users:(("comm",pid=N,fd=M),...)`` from ``ss -p``.

    >>> parse_users('users:(("tl-web",pid=7807,fd=5),("a b",pid=9,fd=12))')
    [{'comm': 'tl-web', 'pid': 7807, 'fd': 5}, {'comm': 'a b', 'pid': 9, 'fd': 12}]
    """
    return [{"comm": m.group("comm"), "pid": int(m.group("pid")), "fd": int(m.group("fd"))}
            for m in _USER.finditer(token)]


def parse_line(line: str, options: str = "tanoe", state: str | None = None) -> dict:
    """One socket line. ``options`` are the ss flags used (``"tanoep"``...):
    they decide what an absent token means (no ``uid:`` with ``-e`` is uid
    0, no ``timer:`` with ``-o`` is timer off, no ``users:`` with ``-p`` is
    no owner); fields of flags not given are None.

    >>> r = parse_line("ESTAB 0 0 127.0.0.1:60415 127.0.0.1:46492 "
    ...                'users:(("tl-web",pid=7807,fd=7)) ino:231303 sk:1012 '
    ...                "cgroup:unreachable:1 <->", "tanoep")
    >>> r["state"], r["timer"]["kind"], r["users"], r["inode"], r["timewait_type"]
    ('ESTABLISHED', 'off', [{'comm': 'tl-web', 'pid': 7807, 'fd': 7}], 231303, False)
    """
    users = None
    m = _USERS.search(line)
    if m is not None:
        # Cut it out first: a comm may contain spaces.
        users = parse_users(m.group(0))
        line = line[:m.start()] + line[m.end():]
    elif "p" in options:
        users = []
    fields = line.split()
    if state is not None:  # ss hid the State column (see parse_ss)
        fields.insert(0, state)
    if len(fields) < 5:
        raise ValueError(f"short ss line: {line!r}")
    ss_state, recv_q, send_q, local, remote, *rest = fields
    if ss_state not in SS_STATES:
        raise ValueError(f"unknown ss state {ss_state!r}")
    details = "e" in options
    row = {
        "state": SS_STATES[ss_state], "ss_state": ss_state,
        "recv_q": int(recv_q), "send_q": int(send_q),
        "local": parse_endpoint(local), "remote": parse_endpoint(remote),
        "timer": ({"kind": "off", "ss_kind": "off", "expires_ms": 0, "resolution_ms": 1,
                   "retransmits": 0} if "o" in options else None),
        "uid": 0 if details else None, "inode": None, "cookie": None,
        "shutdown": None, "v6only": None, "cgroup": None, "users": users, "extra": [],
    }
    ipv6 = ":" in row["local"]["address"] or ":" in row["remote"]["address"]
    row["family"] = "ipv6" if ipv6 else "ipv4"
    for tok in rest:
        key, _, value = tok.partition(":")
        if tok.startswith("timer:("):
            row["timer"] = parse_timer(tok)
        elif key == "uid":
            row["uid"] = int(value)
        elif key == "ino":
            row["inode"] = int(value)
        elif key == "sk":
            row["cookie"] = int(value, 16)
        elif key == "v6only":
            row["v6only"] = bool(int(value))
        elif key == "cgroup":
            row["cgroup"] = value
        elif _SHUTDOWN.fullmatch(tok):
            row["shutdown"] = parse_shutdown(tok)
        else:
            row["extra"].append(tok)
    # Only timewait-type sockets lack INET_DIAG_SHUTDOWN; they are always
    # TIME_WAIT or an orphan FIN_WAIT2 substate (tcp_time_wait()).
    row["timewait_type"] = (row["shutdown"] is None
                            and row["state"] in ("TIME_WAIT", "FIN_WAIT2")) if details else None
    return row


def parse_ss(text: str, options: str = "tanoe", state: str | None = None) -> list[dict]:
    """Every socket line of ``ss -<options>`` output (header optional).

    >>> out = '''State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process
    ... LISTEN 1      0          127.0.0.1:58971      0.0.0.0:*     ino:231328 sk:1005 <->
    ... '''
    >>> [(r["state"], r["recv_q"], r["local"]["port"]) for r in parse_ss(out)]
    [('LISTEN', 1, 58971)]

    When a filter selects a single state, ss drops the State column
    (``if (... state_filter is one state) show State = 0`` in ss.c); pass
    that state, in ss's spelling, as ``state``:

    >>> out = '''Recv-Q Send-Q Local Address:Port Peer Address:Port Process
    ... 0      0          127.0.0.1:55025    127.0.0.1:46822 ino:3767951 sk:ffc64 -->
    ... '''
    >>> [(r["state"], r["shutdown"]) for r in parse_ss(out, state="CLOSE-WAIT")]
    [('CLOSE_WAIT', 1)]
    """
    rows = []
    lines = text.splitlines()
    if lines and lines[0].startswith("Recv-Q"):
        if state is None:
            raise ValueError("ss printed no State column (one state filtered): pass state=")
    else:
        state = None
    for line in lines:
        if not line.strip() or line.startswith(("State ", "Netid ", "Recv-Q ")):
            continue
        rows.append(parse_line(line, options, state))
    return rows


def key(row: dict) -> tuple:
    """Identity of a socket at one moment without its cookie: state and
    4-tuple (unique among TCP sockets of one namespace here, where no
    SO_REUSEPORT groups are built).

    >>> key(parse_line("LISTEN 0 16 [::1]:51861 [::]:* ino:1 sk:1 <->"))
    ('LISTEN', '::1', 51861, '::', 0)
    """
    return (row["state"], row["local"]["address"], row["local"]["port"],
            row["remote"]["address"], row["remote"]["port"])
