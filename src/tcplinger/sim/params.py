"""Parameter values of a profile, middlebox or socket, by attribute.

The parameters themselves (name, kind, default, bounds, unit, source) are
:class:`tcplinger.model.params.Param`, shared with the lab; the
documentation (docs/simulator.md) is written from these tables.
"""

from __future__ import annotations

from ..model.params import Param, ParamError


class Values:
    """Attribute access to parameter values (``p.tcp_fin_timeout``)."""

    def __init__(self, specs: tuple[Param, ...], values: dict):
        known = {s.name for s in specs}
        unknown = set(values) - known
        if unknown:
            raise ParamError("param.unknown", "unknown parameter(s): {names} (known: {known})",
                             names=", ".join(sorted(unknown)), known=", ".join(sorted(known)))
        for s in specs:
            setattr(self, s.name, values.get(s.name, s.default))

    def __repr__(self) -> str:
        return f"Values({vars(self)})"
