"""A scenario: a teardown pathology from the seeds, as data.

Each scenario names the seeds it comes from, declares its parameters
(defaults and ranges; those that are sysctls say which namespaces they go
to), its default duration, the router it needs, a short script of what
its peers do (using :class:`~tcplinger.lab.script.Run`), the expected
outcome as checks (lab/checks.py) built from the parameters, and the facts
it derives from the recorded timeline. Its description and expected
outcome are catalog messages: ``lab.scenario.<name>`` and
``lab.expect.<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..model.params import Param, ParamError
from .params import resolve_sysctl


@dataclass(frozen=True)
class Scenario:
    name: str
    seeds: tuple[str, ...]
    params: tuple[Param, ...]
    script: Callable  # (run) -> None
    checks: Callable  # (params: dict, tol) -> list of checks
    horizon: Callable  # (params: dict) -> seconds the run may last after setup
    router: str = "forward"  # "forward" | "ipfw" (userspace bridge, forwarding off)
    derive: Callable | None = None  # (observed, params) -> dict of facts
    #: sysctls set by the scenario itself: (name, value, roles)
    sysctls: tuple[tuple[str, object, tuple[str, ...]], ...] = ()
    #: moments at which the diagnosis runs (the script names them)
    moments: tuple[str, ...] = ()

    def param(self, name: str) -> Param | None:
        for p in self.params:
            if p.name == name or (p.sysctl and (p.sysctl == name or
                                                p.sysctl.rsplit(".", 1)[1] == name)):
                return p
        return None

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}


@dataclass
class Prepared:
    """A scenario's parameter values and the sysctls each namespace gets."""

    params: dict
    sysctls: dict = field(default_factory=dict)  # role -> {name: value}
    given: dict = field(default_factory=dict)  # what --set said, as given

    def sysctl_json(self) -> dict:
        return {role: dict(sorted(v.items())) for role, v in sorted(self.sysctls.items())}


def prepare(scenario: Scenario, sets) -> Prepared:
    """Apply ``--set`` pairs ((name, text), see params.parse_sets): scenario parameters first (also when named by
    their sysctl), then any other namespace sysctl the lab knows. Raises
    ParamError for unknown names and out-of-range values."""
    values = scenario.defaults()
    extra: dict[str, tuple] = {}
    given = {}
    for key, text in sets:
        p = scenario.param(key)
        if p is not None:
            values[p.name] = p.parse(text)
            given[p.name] = values[p.name]
            continue
        sc = resolve_sysctl(key)
        if sc is None:
            known = ", ".join(p.name for p in scenario.params)
            raise ParamError("param.lab_unknown", "{key}: no such parameter of {scenario} (it has:"
                             " {known}) and not a namespace sysctl the lab knows (see"
                             " `tcplinger lab list`)", key=key, scenario=scenario.name,
                             known=known)
        extra[sc.name] = (sc.param.parse(text), sc.roles)
        given[sc.name] = extra[sc.name][0]
    out = Prepared(values, given=given)
    for name, value, roles in scenario.sysctls:
        for role in roles:
            out.sysctls.setdefault(role, {})[name] = value
    for p in scenario.params:
        if p.sysctl:
            for role in p.roles:
                out.sysctls.setdefault(role, {})[p.sysctl] = values[p.name]
    for name, (value, roles) in extra.items():
        for role in roles:
            out.sysctls.setdefault(role, {})[name] = value
    return out
