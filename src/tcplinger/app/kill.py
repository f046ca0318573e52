"""Plan and execute a kill, for ``tcplinger kill`` and ``top``'s kill key.

The sockets of the scope that match the kernel-side criteria, with owners
(the one policy, always walking: the plan names who holds each socket) and
ages; the plan (act/kill_plan.py: targets, refusals, what each side will
see) against what this kernel can end (collect/netlink/destroy.probe); then, when asked,
SOCK_DESTROY in each socket's own namespace, written to the audit log
before and after (docs/act.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from ..act import audit as audit_mod
from ..act import kill_exec, kill_plan
from ..act.selection import KillCriteria
from ..collect import snapshot as snap_mod
from ..collect.owners import OwnerPolicy
from ..collect.netlink import destroy
from ..collect.roots import Roots
from ..model.sock_destroy import Support
from ..collect.snapshot import Scope
from .view import Filters, NsView, View, take


@dataclass
class KillRun:
    """What one kill saw, planned and (unless a dry run) did."""

    view: View
    plan: kill_plan.KillPlan
    results: list[kill_exec.Result] | None = None  # None: a dry run
    run_id: str | None = None  # the audit log's id of the run, when it acted
    audit_log: Path | None = None  # where it was recorded, when it acted
    #: open files of the targets' owners, before (and after) ending: the
    #: owner's fd stays open (act/kill_exec.OwnerFds)
    fds: list[kill_exec.OwnerFds] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, int]:
        return kill_exec.summary(self.results or [])


def kill(scope: Scope, c: KillCriteria, *, act: bool, audit_log: Path | None,
         env: Mapping[str, str], roots: Roots = Roots()) -> KillRun:
    """Plan, and with ``act`` end the targets. The audit log (``audit_log``
    or this user's default) is opened first: AuditError before anything is
    looked at when the act could not be recorded."""
    if not act:
        return plan(scope, c, roots)
    with audit_mod.open_log(audit_log, env) as log:
        return execute(plan(scope, c, roots), scope, log, env, roots)


def candidates(scope: Scope, c: KillCriteria, roots: Roots = Roots()) -> View:
    """The sockets in scope matching the kernel-side filters, with owners.

    Owners are looked up for the selected rows only, by the one policy
    (collect/owners.py), plus ``--pid``'s process wherever it lives.
    """
    filters = Filters(states=c.wanted_states(), port=c.port, sport=c.sport, dport=c.dport,
                      pid=c.pid)
    view = take(scope, filters, roots=roots)
    view.attach_owners(OwnerPolicy(walk=True), roots, also=() if c.pid is None else (c.pid,))
    return view


def plan(scope: Scope, c: KillCriteria, roots: Roots = Roots()) -> KillRun:
    """A dry run: what would be ended and what refused, nothing changed."""
    view = candidates(scope, c, roots)
    parts = [_plan_part(p) for p in view.parts]
    kinds = kill_plan.candidate_kinds([p for p in parts if p.source == "netlink"], c)
    support = destroy.probe(kinds) if kinds else Support()
    planned = kill_plan.plan(parts, c, support)
    return KillRun(view, planned, fds=kill_exec.owner_fds(planned, roots.proc))


def execute(run: KillRun, scope: Scope, log: audit_mod.AuditLog, env: Mapping[str, str],
            roots: Roots = Roots()) -> KillRun:
    """End the planned targets, each in its namespace, audited."""
    p = run.plan
    if not p.targets:
        run.results = []
        return run
    audited = audit_mod.AuditedRun(log, "kill", env)
    run.run_id = audited.id
    audited.start(criteria=p.criteria.to_json(), kernel=p.support.to_json(),
                  sockets=[t.to_json() for t in p.targets])
    targets, _ = snap_mod.resolve(scope, roots)
    paths = {info.inode: kill_exec.NetnsPath(info.path, info.current) for info in targets}
    run.results = kill_exec.execute(p, paths)
    run.fds = kill_exec.remeasure(run.fds, roots.proc)
    run.audit_log = log.path
    audited.result(summary=kill_exec.summary(run.results),
                   results=[r.to_json() for r in run.results])
    return run


def end_cookies(cookies: Iterable[int], env: Mapping[str, str],
                roots: Roots = Roots()) -> KillRun:
    """End sockets by cookie (``top``'s kill key), with kill's refusals,
    limits and audit log: cookies are unique on the host, so every
    namespace is looked at and each socket is ended in its own."""
    cookies = frozenset(int(c) for c in cookies)
    return kill(Scope(all_netns=True), KillCriteria(cookies=cookies, max=len(cookies)),
                act=True, audit_log=None, env=env, roots=roots)


def _plan_part(p: NsView) -> kill_plan.PlanPart:
    exact, lower = p.age_arrays()
    prefix = ""
    if not p.ns.netns.name and p.ns.pids and not p.ns.current:
        prefix = f"nsenter -t {p.ns.pids[0]} -n"
    return kill_plan.PlanPart(p.ns.netns, p.table, exact, lower, p.owners, p.ns.source, prefix)
