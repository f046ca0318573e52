"""The diagnosis: every rule over every namespace, findings most severe first.

>>> from tcplinger.model.kernel import KernelContext
>>> from tcplinger.model.socket import NetnsRef
>>> from tcplinger.model.table import SocketTable
>>> diagnose([NamespaceInput(NetnsRef(1, "empty"), KernelContext(), SocketTable())])
[]
"""

from __future__ import annotations

from typing import Iterable, Sequence

from .context import World
from .finding import Finding, Severity
from .inputs import NamespaceInput
from .metadata import RULES, Thresholds, merge
from .rules import MODULES

#: Sockets kept per finding (the JSON ``sockets`` list and the text sample).
SAMPLE_LIMIT = 20


class UnknownRule(KeyError):
    pass


def diagnose(inputs: Sequence[NamespaceInput], *, thresholds: Thresholds | None = None,
             rules: Iterable[str] | None = None, sysctl_files: Iterable = (),
             sample_limit: int = SAMPLE_LIMIT, brief: bool = False) -> list[Finding]:
    """Findings for ``inputs`` (one per namespace), most severe first.

    ``thresholds`` overrides metadata defaults (``{rule: {name: value}}``);
    ``rules`` limits the rules run; ``sysctl_files`` are the
    :class:`~tcplinger.diagnose.sysctl_files.SysctlSetting` found on the host.
    ``brief``: what the exporter shows of the findings only (rule, severity,
    namespace, count, owners, title, confidence), the same as without it;
    the evidence and its words are left out where a rule can leave them
    out (context.World).
    """
    wanted = None if rules is None else set(rules)
    if wanted is not None:
        unknown = wanted - set(MODULES)
        if unknown:
            raise UnknownRule(", ".join(sorted(unknown)))
    limits = merge(thresholds)
    world = World(inputs, sysctl_files, brief=brief)
    out: list[Finding] = []
    for meta in RULES:
        if wanted is not None and meta.id not in wanted:
            continue
        module = MODULES[meta.id]
        th = limits[meta.id]
        if hasattr(module, "evaluate"):
            for ctx in world.contexts:
                out.extend(module.evaluate(ctx, th, world, sample_limit))
        if hasattr(module, "evaluate_host"):
            out.extend(module.evaluate_host(world, th, sample_limit))
    order = {m.id: i for i, m in enumerate(RULES)}
    out.sort(key=lambda f: (-int(f.severity), order[f.rule], -f.count))
    return out


def worst(findings: Iterable[Finding]) -> Severity | None:
    """The highest severity, None when there is no finding."""
    return max((f.severity for f in findings), default=None)
