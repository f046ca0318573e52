"""Endpoint profiles: one TCP stack each (Linux, FreeBSD, Windows, ...).

A profile is its parameters (host-wide settings: sysctls, registry
values), its per-socket options, and an :class:`~tcplinger.sim.endpoint.
Endpoint` subclass implementing the stack's teardown timers.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...model.params import Param


@dataclass(frozen=True)
class Profile:
    name: str
    title: str  # one line, English (docs); the CLI shows sim.profile.<name>
    params: tuple[Param, ...]
    socket: tuple[Param, ...]
    endpoint: type
    sources: tuple[str, ...] = ()


def registry() -> dict[str, Profile]:
    from . import bsd, hpux, linux, solaris, windows
    out = {}
    for mod in (linux, bsd, windows, solaris, hpux):
        for prof in mod.PROFILES:
            out[prof.name] = prof
    return out


PROFILES: dict[str, Profile] = {}


def get(name: str) -> Profile:
    if not PROFILES:
        PROFILES.update(registry())
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(name) from None


def names() -> list[str]:
    if not PROFILES:
        PROFILES.update(registry())
    return sorted(PROFILES)
