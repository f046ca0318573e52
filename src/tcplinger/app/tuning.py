"""Tune: a plan of sysctl changes from the diagnosis (act/tune_plan.py),
written as a sysctl.d snippet, applied to one namespace with its previous
values kept in a state file first, and reverted from that file; every
write audited (docs/act.md). ``tcplinger tune`` asks for confirmation and
renders; this module does the rest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..act import audit as audit_mod
from ..act import sysctl_state as st
from ..act import tune_plan
from ..collect import snapshot as snap_mod
from ..collect.netns import host_inode
from ..collect.roots import Roots
from ..collect.snapshot import Scope
from ..diagnose.sysctl_bounds import EXTRA_PATHS, sysctl_path
from ..fsutil import atomic_write
from ..model.socket import NetnsRef
from .diagnosis import Diagnosis


@dataclass(frozen=True)
class Target:
    ref: NetnsRef
    path: str | None  # None: the caller's own namespace
    host: bool


class StateError(Exception):
    """The state file could not record the previous values: nothing was written."""

    def __init__(self, path: Path, error: str):
        super().__init__(f"{path}: {error}")
        self.path, self.error = path, error


def targets(scope: Scope, roots: Roots = Roots()) -> list[Target]:
    """The namespaces of ``scope``, and which of them is the host's."""
    infos, _ = snap_mod.resolve(scope, roots)
    host = host_inode(roots.proc)
    return [Target(i.ref, None if i.current else i.path, i.inode == host) for i in infos]


def _extras(target: Target) -> dict:
    """Settings the plan's bounds read beside the diagnosed ones (tcp_timestamps)."""
    paths = [sysctl_path(k) for k in EXTRA_PATHS]
    got = st.in_netns(target.path, st.read_values, paths)
    out = {}
    for key in EXTRA_PATHS:
        text = got.get(sysctl_path(key))
        if text is not None and text.strip().lstrip("-").isdigit():
            out[key] = int(text)
    return out


def plan(diag: Diagnosis, scope: Scope, roots: Roots = Roots()
         ) -> tuple[tune_plan.TunePlan, list[tune_plan.NamespaceFacts]]:
    """The plan for the diagnosed namespaces, and the facts it rests on."""
    by_inode = {t.ref.inode: t for t in targets(scope, roots)}
    facts = []
    for part in diag.view.parts:
        t = by_inode.get(part.ns.netns.inode)
        sysctls = dict(part.ns.kernel.sysctls)
        if t is not None:
            try:
                sysctls.update(_extras(t))
            except OSError:
                pass
        facts.append(tune_plan.NamespaceFacts(part.ns.netns, sysctls, bool(t and t.host)))
    return tune_plan.plan(diag.findings, facts), facts


def write_snippet(path: Path, text: str) -> None:
    """The sysctl.d(5) snippet, whole or not at all (fsutil.atomic_write)."""
    atomic_write(path, text.encode(), mode=0o644)


@dataclass(frozen=True)
class Paths:
    state: Path  # previous values, for --revert
    audit_log: Path


def paths(state_file: Path | None, audit_log: Path | None, env: Mapping[str, str],
          uid: int) -> Paths:
    """``--state-file`` and ``--audit-log``, or this user's defaults."""
    return Paths(state_file or st.default_state_path(uid, env),
                 audit_log or audit_mod.default_path(uid, env))


@dataclass(frozen=True)
class Written:
    """What an apply or a revert did: one outcome per sysctl, the run id."""

    outcomes: list[st.Outcome]
    run_id: str


def apply(target: Target, props: Sequence, where: Paths, env: Mapping[str, str]) -> Written:
    """Write the proposals into ``target``: previous values to the state
    file first (StateError: nothing written), audited before and after.
    AuditError when the log cannot be written."""
    state = st.StateFile(where.state)
    changes = [st.Change(p.sysctl, p.path, tune_plan.format_value(p.proposed)) for p in props]
    with audit_mod.open_log(where.audit_log, env) as log:
        audited = audit_mod.AuditedRun(log, "tune.apply", env)
        current = st.in_netns(target.path, st.read_values, [c.path for c in changes])
        when = audited.start(netns=target.ref.to_json(), state_file=str(where.state),
                             changes=[{"sysctl": c.sysctl, "from": current.get(c.path),
                                       "to": c.value, "rules": list(p.rules)}
                                      for c, p in zip(changes, props)])
        try:
            st.record_intent(state, target.ref, changes, current, when, audited.id)
        except st.NotTuneState:
            raise  # someone else's file: said as such, and left alone
        except (OSError, ValueError) as exc:
            raise StateError(where.state, str(exc)) from None
        outcomes = st.in_netns(target.path, st.write_values, changes)
        st.record_applied(state, target.ref, outcomes)
        audited.result(netns=target.ref.to_json(), results=[o.to_json() for o in outcomes])
    return Written(outcomes, audited.id)


def revert_items(target: Target, where: Paths, *, required: bool = False
                 ) -> tuple[dict | None, list[st.RevertItem]]:
    """The state file's entry for ``target`` and what reverting it would do
    (NotTuneState: the state file is not one of ours; FileNotFoundError:
    ``required`` and there is none)."""
    entry = st.StateFile(where.state, required=required).entry(target.ref)
    if not entry or not entry.get("values"):
        return entry, []
    current = st.in_netns(target.path, st.read_values,
                          [v["path"] for v in entry["values"].values()])
    return entry, st.revert_items(entry, current)


def revert(target: Target, todo: Sequence[st.RevertItem], where: Paths,
           env: Mapping[str, str]) -> Written:
    """Put back the previous values of ``todo``, audited; forget them in
    the state file once written."""
    with audit_mod.open_log(where.audit_log, env) as log:
        audited = audit_mod.AuditedRun(log, "tune.revert", env)
        changes = [st.Change(i.sysctl, i.path, i.previous) for i in todo]
        audited.start(netns=target.ref.to_json(), state_file=str(where.state),
                      changes=[{"sysctl": c.sysctl, "from": i.current, "to": c.value}
                               for c, i in zip(changes, todo)])
        outcomes = st.in_netns(target.path, st.write_values, changes)
        st.forget(st.StateFile(where.state), target.ref, [o.sysctl for o in outcomes if o.ok])
        audited.result(netns=target.ref.to_json(), results=[o.to_json() for o in outcomes])
    return Written(outcomes, audited.id)
