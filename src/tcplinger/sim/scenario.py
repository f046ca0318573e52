"""Scenarios: who talks to whom over what, and what each application does.

A scenario is a *document* (the TOML file's tables, or what a preset
builds) turned into a typed :class:`Scenario` by :func:`from_document`,
which checks every key against the documented parameter tables. The
format is documented in docs/simulator.md; in short::

    name = "orphan"
    horizon = "10m"          # seconds or a duration; default 1h
    rtt = "50ms"             # round-trip time of the path

    [client]
    profile = "linux"
    tcp_fin_timeout = 30     # any parameter of the profile
    [client.socket]          # options of this connection's socket
    linger2 = 0
    [client.app]             # what the application does
    close_at = 1.0
    [client.host]
    vanish_at = 5.0

    [server]
    profile = "linux"
    [server.app]
    on_eof = "ignore"        # the server never closes after EOF

    [[middlebox]]
    profile = "ipfw"
    dyn_keepalive = 1

    [[drop]]
    sender = "client"
    flags = "F"

>>> doc = parse_toml('[client.app]\\nclose_at = 1\\n[server]\\ntcp_fin_timeout = "2m"')
>>> sc = from_document(doc)
>>> sc.client.app.close_at, sc.server.params["tcp_fin_timeout"], sc.horizon_s
(1.0, 120.0, 3600.0)
>>> set_path(doc, "server.socket.so_keepalive", "1"); from_document(doc).server.socket
{'so_keepalive': 1}
"""

from __future__ import annotations

import copy
import math
import tomllib
from dataclasses import dataclass, field

from ..model import units
from ..model.params import Param, ParamError
from . import middleboxes, profiles
from .endpoint import App, Host
from .path import DropRule
from .segment import parse_flags

BEHAVIOURS = ("graceful", "never-fin", "never-close", "shutdown-only", "vanish")

APP_PARAMS = (
    Param("close_at", None, "seconds", "close() at this time (or the process exits)",
          "close(2)", minimum=0, never=True),
    Param("shutdown_at", None, "seconds", "shutdown(SHUT_WR) at this time; the fd stays open",
          "shutdown(2)", minimum=0, never=True),
    Param("on_eof", "close", "choice",
          "what the application does when read() returns 0 (the peer's FIN arrived)",
          "read(2)", choices=("close", "shutdown", "ignore")),
    Param("on_eof_delay", 0.0, "seconds", "how long after EOF it reacts", "", minimum=0),
    Param("abort_on_close", 0, "bool", "SO_LINGER {1, 0}: close() sends RST instead of FIN",
          "socket(7) SO_LINGER"),
    Param("reads", 1, "bool", "the application reads what arrives (0: data piles up unread; "
          "close() with unread data sends RST)", "RFC 2525 2.17; tcp_close()"),
    Param("send_at", None, "seconds", "write send_bytes bytes at this time", "write(2)",
          minimum=0, never=True),
    Param("send_bytes", 1000, "count", "bytes written at send_at", "write(2)", minimum=1),
)
HOST_PARAMS = (
    Param("vanish_at", None, "seconds",
          "the host disappears from the network: nothing gets in or out, no FIN, no RST "
          "(a dial-up user hanging up)", "", minimum=0, never=True),
    Param("forget_at", None, "seconds",
          "the host loses the connection (crash, reboot) and answers RST from then on", "",
          minimum=0, never=True),
)
DROP_PARAMS = (
    Param("sender", "any", "choice", "whose segments are dropped", "",
          choices=("client", "server", "any")),
    Param("flags", "", "text", "only segments carrying any of these flags (S F R P A)", ""),
    Param("from_s", 0.0, "seconds", "from this time", "", minimum=0),
    Param("until_s", math.inf, "seconds", "until this time", "", minimum=0, never=True),
    Param("count", 0, "count", "at most this many (0: all)", "", minimum=0),
)
TOP_PARAMS = (
    Param("name", "scenario", "text", "name shown in the output", ""),
    Param("description", "", "text", "one line", ""),
    Param("horizon", 3600.0, "seconds", "simulated time", "", minimum=0.001,
          maximum=units.LONGEST),
    Param("rtt", 0.05, "seconds", "round-trip time of the path", "", minimum=0),
)

_PARTY_KEYS = {"profile", "behaviour", "socket", "app", "host"}


@dataclass(frozen=True)
class PartySpec:
    name: str
    profile: str
    params: dict
    socket: dict
    app: App
    host: Host
    behaviour: str = "graceful"


@dataclass(frozen=True)
class MiddleboxSpec:
    name: str
    profile: str
    params: dict


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    horizon_s: float
    rtt_s: float
    client: PartySpec
    server: PartySpec
    middleboxes: tuple[MiddleboxSpec, ...] = ()
    drops: tuple[DropRule, ...] = ()
    document: dict = field(default_factory=dict, compare=False, repr=False)

    def party(self, name: str) -> PartySpec:
        return self.client if name == "client" else self.server


def parse_toml(text: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ParamError("param.toml", "scenario is not valid TOML: {reason}",
                         reason=str(exc)) from None


def _values(specs: tuple[Param, ...], table: dict, where: str) -> dict:
    by_name = {s.name: s for s in specs}
    out = {}
    for key, value in table.items():
        spec = by_name.get(key)
        if spec is None:
            raise ParamError("param.unknown_key", "{where}: unknown key {key} (known: {known})",
                             where=where, key=repr(key), known=", ".join(sorted(by_name)))
        out[key] = spec.parse(value)
    return out


def _table(doc: dict, key: str, where: str) -> dict:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ParamError("param.not_table", "{where}.{key} must be a table", where=where, key=key)
    return value


def _party(name: str, doc: dict) -> PartySpec:
    t = _table(doc, name, "")
    profile = str(t.get("profile", "linux"))
    try:
        prof = profiles.get(profile)
    except KeyError:
        raise ParamError("param.unknown_profile", "{name}.profile: unknown profile {profile} "
                         "(known: {known})", name=name, profile=repr(profile),
                         known=", ".join(profiles.names())) from None
    behaviour = str(t.get("behaviour", "graceful"))
    if behaviour not in BEHAVIOURS:
        raise ParamError("param.behaviour", "{name}.behaviour: {behaviour} is not one of {known}",
                         name=name, behaviour=repr(behaviour), known=", ".join(BEHAVIOURS))
    params = _values(prof.params, {k: v for k, v in t.items() if k not in _PARTY_KEYS}, name)
    sock = _values(prof.socket, _table(t, "socket", name), name + ".socket")
    app_t = _values(APP_PARAMS, _table(t, "app", name), name + ".app")
    host_t = _values(HOST_PARAMS, _table(t, "host", name), name + ".host")
    # behaviour shorthands set defaults; explicit keys win
    if behaviour in ("never-fin", "never-close", "vanish"):
        app_t.setdefault("on_eof", "ignore")
    elif behaviour == "shutdown-only":
        app_t.setdefault("on_eof", "ignore")
        if app_t.get("shutdown_at") is None:
            raise ParamError("param.needs_shutdown_at", "{name}: behaviour 'shutdown-only' needs"
                             " app.shutdown_at", name=name)
    if behaviour == "vanish" and host_t.get("vanish_at") is None:
        raise ParamError("param.needs_vanish_at", "{name}: behaviour 'vanish' needs host.vanish_at",
                         name=name)
    sends = ()
    if app_t.get("send_at") is not None:
        sends = ((app_t["send_at"], app_t.get("send_bytes", 1000)),)
    app = App(close_at=app_t.get("close_at"), shutdown_at=app_t.get("shutdown_at"),
              on_eof=app_t.get("on_eof", "close"), on_eof_delay=app_t.get("on_eof_delay", 0.0),
              abort_on_close=bool(app_t.get("abort_on_close", 0)), sends=sends,
              reads=bool(app_t.get("reads", 1)))
    host = Host(vanish_at=host_t.get("vanish_at"), forget_at=host_t.get("forget_at"))
    return PartySpec(name, profile, params, sock, app, host, behaviour)


def _middleboxes(doc: dict) -> tuple[MiddleboxSpec, ...]:
    items = doc.get("middlebox", [])
    if isinstance(items, dict):
        items = [items]
    out = []
    for i, t in enumerate(items):
        if not isinstance(t, dict) or "profile" not in t:
            raise ParamError("param.box_no_profile", "middlebox[{i}] needs a profile (one of"
                             " {known})", i=i, known=", ".join(middleboxes.names()))
        try:
            prof = middleboxes.get(str(t["profile"]))
        except KeyError:
            raise ParamError("param.box_profile", "middlebox[{i}].profile: unknown {profile} "
                             "(known: {known})", i=i, profile=repr(t["profile"]),
                             known=", ".join(middleboxes.names())) from None
        name = str(t.get("name", prof.name))
        if name in ("client", "server") or any(m.name == name for m in out):
            raise ParamError("param.box_taken", "middlebox[{i}]: name {name} is taken", i=i,
                             name=repr(name))
        params = _values(prof.params, {k: v for k, v in t.items() if k not in ("profile", "name")},
                         name)
        out.append(MiddleboxSpec(name, prof.name, params))
    return tuple(out)


def _drops(doc: dict) -> tuple[DropRule, ...]:
    items = doc.get("drop", [])
    if isinstance(items, dict):
        items = [items]
    out = []
    for i, t in enumerate(items):
        v = _values(DROP_PARAMS, t, f"drop[{i}]")
        try:
            flags = parse_flags(v.get("flags", ""))
        except ValueError as exc:
            raise ParamError("param.drop_flags", "drop[{i}].flags: {reason}", i=i,
                             reason=str(exc)) from None
        out.append(DropRule(v.get("sender", "any"), flags, v.get("from_s", 0.0),
                            v.get("until_s", math.inf), v.get("count", 0)))
    return tuple(out)


def from_document(doc: dict) -> Scenario:
    known = {p.name for p in TOP_PARAMS} | {"client", "server", "middlebox", "drop", "knobs"}
    unknown = set(doc) - known
    if unknown:
        raise ParamError("param.unknown_top", "unknown top-level key(s): {names} (known: {known})",
                         names=", ".join(sorted(unknown)), known=", ".join(sorted(known)))
    top = _values(TOP_PARAMS, {k: doc[k] for k in doc if k in {p.name for p in TOP_PARAMS}}, "")
    return Scenario(
        name=top.get("name", "scenario"), description=top.get("description", ""),
        horizon_s=top.get("horizon", 3600.0), rtt_s=top.get("rtt", 0.05),
        client=_party("client", doc), server=_party("server", doc),
        middleboxes=_middleboxes(doc), drops=_drops(doc), document=doc)


def set_path(doc: dict, path: str, value) -> None:
    """Set ``a.b.c`` in the document (in place). The first component may
    name a middlebox: ``ipfw.dyn_keepalive``."""
    parts = [p for p in path.split(".") if p]
    if not parts:
        raise ParamError("param.empty_key", "empty key in {path}", path=repr(path))
    table = doc
    if parts[0] not in ("client", "server") and len(parts) > 1:
        boxes = doc.get("middlebox", [])
        if isinstance(boxes, dict):
            boxes = [boxes]
        match = [b for b in boxes if str(b.get("name", b.get("profile"))) == parts[0]]
        if not match:
            raise ParamError("param.no_party", "{path}: no party or middlebox named {name}",
                             path=path, name=repr(parts[0]))
        table, parts = match[0], parts[1:]
    for p in parts[:-1]:
        nxt = table.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ParamError("param.path_not_table", "{path}: {part} is not a table", path=path,
                             part=repr(p))
        table = nxt
    table[parts[-1]] = value


def with_values(doc: dict, values: dict) -> dict:
    """A copy of the document with dotted paths set."""
    out = copy.deepcopy(doc)
    for k, v in values.items():
        set_path(out, k, v)
    return out


def param_for(doc: dict, path: str) -> Param | None:
    """The documented parameter a dotted key of the document sets, or None.

    >>> param_for({}, "client.tcp_fin_timeout").kind, param_for({}, "server.app.close_at").kind
    ('seconds', 'seconds')
    >>> param_for({"middlebox": [{"profile": "nope"}]}, "rtt").name
    'rtt'
    """
    parts = path.split(".")
    if len(parts) == 1:
        return next((p for p in TOP_PARAMS if p.name == parts[0]), None)
    head, rest = parts[0], parts[1:]
    if head in ("client", "server"):
        t = doc.get(head, {}) if isinstance(doc.get(head, {}), dict) else {}
        try:
            prof = profiles.get(str(t.get("profile", "linux")))
        except KeyError:
            return None
        if len(rest) == 1:
            return next((p for p in prof.params if p.name == rest[0]), None)
        tables = {"socket": prof.socket, "app": APP_PARAMS, "host": HOST_PARAMS}
        if len(rest) == 2 and rest[0] in tables:
            return next((p for p in tables[rest[0]] if p.name == rest[1]), None)
        return None
    boxes = doc.get("middlebox", [])
    if isinstance(boxes, dict):
        boxes = [boxes]
    for b in boxes:
        if str(b.get("name", b.get("profile"))) == head and len(rest) == 1:
            try:
                prof = middleboxes.get(str(b.get("profile")))
            except KeyError:
                return None
            return next((p for p in prof.params if p.name == rest[0]), None)
    return None
