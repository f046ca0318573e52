"""The automatic owner policy decides on the namespaces that hold a wanted
inode (file-nr, or their processes' open files), so the report asks it
before gathering the inodes: at 300k sockets gathering them cost 0.09 s of
a walk then left out (issue 16). The answer must be what it was: the same
open-file count left out, the same owners walked, and ``holds_wanted``
must say exactly whether ``wanted_inodes`` is empty."""

import random

import numpy as np
import pytest

from tcplinger.app import observation
from tcplinger.app.view import NsView, View
from tcplinger.collect.owners import OwnerPolicy
from tcplinger.collect.roots import Roots
from tcplinger.diagnose import culprits
from tcplinger.diagnose.builder import SocketBuilder
from tcplinger.diagnose.metadata import BY_ID
from tcplinger.model.kernel import KernelContext
from tcplinger.model.snapshot import NetnsSnapshot, Snapshot
from tcplinger.model.socket import NetnsRef
from tcplinger.model.states import OWNABLE, TcpState
from tcplinger.model.table import distinct

STATES = ("ESTABLISHED", "LISTEN", "CLOSE_WAIT", "FIN_WAIT2", "FIN_WAIT1", "TIME_WAIT",
          "LAST_ACK", "CLOSING", "SYN_SENT", "SYN_RECV")
IDLE_MS = BY_ID["keepalive-vs-idle-timeout"].defaults()["idle_timeout"] * 1000


def _reference_wanted(part: NsView) -> np.ndarray:
    """wanted_inodes() as it was before the gate (np.isin of the states)."""
    rows = part.table.rows
    mask = np.isin(rows["state"], [int(s) for s in OWNABLE]) & (rows["inode"] != 0)
    info = part.table.info
    if info is not None:
        est = (rows["state"] == int(TcpState.ESTABLISHED)) & info["present"]
        idle = np.minimum(np.minimum(info["last_data_sent"], info["last_data_recv"]),
                          info["last_ack_recv"])
        mask |= est & (idle >= IDLE_MS) & (rows["inode"] != 0)
    mask |= culprits.wanted_mask(part.table)
    return distinct(rows["inode"][mask])


def _part(table, current=True, pids=()) -> NsView:
    ns = NetnsSnapshot(NetnsRef(4026531840, "t"), table, KernelContext(), "netlink",
                       0.0, 0.0, pids=tuple(pids), current=current)
    return NsView(ns, table)


def _random_part(rnd: random.Random) -> NsView:
    b = SocketBuilder()
    for _ in range(rnd.randrange(0, 12)):
        idle = rnd.choice((None, 0, IDLE_MS - 1, IDLE_MS, 10 * IDLE_MS))
        b.add(rnd.choice(STATES), f"10.0.0.{rnd.randrange(1, 3)}:{rnd.choice((80, 8080, 40000))}",
              f"10.0.1.{rnd.randrange(1, 3)}:{rnd.choice((80, 8080, 40000))}",
              count=rnd.randrange(1, 4), inode=rnd.choice((None, 0, 0)),
              last_ack_recv=idle, last_data_recv=idle, last_data_sent=idle)
    return _part(b.table())


@pytest.mark.parametrize("seed", range(300))
def test_holds_wanted_is_whether_wanted_inodes_is_empty(seed):
    part = _random_part(random.Random(seed))
    wanted = observation.wanted_inodes(part)
    assert wanted.tolist() == _reference_wanted(part).tolist()
    assert observation.holds_wanted(part) == (len(wanted) > 0)


def test_holds_wanted_cases_are_not_vacuous():
    """Among the seeds: tables with owned teardown sockets, tables whose only
    wanted inodes are idle ESTABLISHED ones or culprits, and tables with none."""
    kinds = set()
    for seed in range(300):
        part = _random_part(random.Random(seed))
        owned = bool(observation._owned_teardown(part.table.rows).any())
        kinds.add((owned, len(observation.wanted_inodes(part)) > 0))
    assert kinds == {(True, True), (False, True), (False, False)}


def _close_wait_view(tmp_path, open_files: int) -> tuple[View, Roots]:
    proc = tmp_path / "proc"
    (proc / "sys" / "fs").mkdir(parents=True)
    (proc / "sys" / "fs" / "file-nr").write_text(f"{open_files}\t0\t9223372036854775807\n")
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.2:40000", count=3)
    view = View(Snapshot())
    view.parts.append(_part(b.table()))
    return view, Roots(proc=proc)


def _attach_counting(view, roots):
    """attach_owners with the report's inode gathering, and the parts it
    gathered inodes of."""
    gathered = []

    def wanted_of(part):
        gathered.append(part)
        return observation.wanted_inodes(part)

    return view.attach_owners(OwnerPolicy(), roots, wanted_of=wanted_of,
                              holds=observation.holds_wanted), gathered


def test_the_walk_left_out_gathers_no_inodes(tmp_path):
    view, roots = _close_wait_view(tmp_path, 150_000)
    found, gathered = _attach_counting(view, roots)
    assert found.owners is None and found.skipped_files == 150_000
    assert not view.owners_resolved and view.parts[0].owners is None
    assert gathered == []
    # the default (every row's inode) the same
    assert view.attach_owners(OwnerPolicy(), roots).skipped_files == 150_000


def test_below_the_gate_the_inodes_are_gathered_and_walked(tmp_path):
    view, roots = _close_wait_view(tmp_path, 10)
    found, gathered = _attach_counting(view, roots)
    assert found.skipped_files is None and found.owners == {}  # walked: nobody holds them here
    assert gathered == view.parts and view.owners_resolved


def test_nothing_wanted_is_resolved_without_a_walk(tmp_path):
    """TIME_WAIT only (inode 0): resolved and empty, as before, above the gate too."""
    view, roots = _close_wait_view(tmp_path, 150_000)
    b = SocketBuilder()
    b.add("TIME_WAIT", "10.0.0.1:40000", "10.0.0.2:80", inode=0, count=2)
    view.parts[0] = _part(b.table())
    found = view.attach_owners(OwnerPolicy(), roots, wanted_of=observation.wanted_inodes,
                               holds=observation.holds_wanted)
    assert found.owners == {} and found.skipped_files is None
