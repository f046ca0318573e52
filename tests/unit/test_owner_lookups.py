"""The diagnosis reads owners from the columns (model/owner_map.py), not
one map lookup per row: each lookup makes that row's tuple of Owners
(~5 us), which was ~0.05 s of a 10k-socket report in by_owner,
clients_of and other_ends (issue 16). Here 200 sockets of one process:
the answers are the per-row ones (checked against references in
test_context_by_owner.py, test_culprits.py, test_peers.py), with at most
one lookup a group."""

import socket

import numpy as np
import pytest

from tcplinger.diagnose import culprits
from tcplinger.diagnose.builder import SocketBuilder, namespace, owners_for
from tcplinger.diagnose.context import NsContext, World
from tcplinger.diagnose.rules._common import other_ends
from tcplinger.model.owner_map import OwnerMap

N = 200


@pytest.fixture
def lookups(monkeypatch):
    """Counts the Mapping lookups of every OwnerMap (each makes Owners)."""
    count = [0]
    get, getitem = OwnerMap.get, OwnerMap.__getitem__

    def counting_get(self, ino, default=None):
        count[0] += 1
        return get(self, ino, default)

    def counting_getitem(self, ino):
        count[0] += 1
        return getitem(self, ino)

    monkeypatch.setattr(OwnerMap, "get", counting_get)
    monkeypatch.setattr(OwnerMap, "__getitem__", counting_getitem)
    return count


def clients_and_server() -> World:
    """N connections from a client process to 10.0.0.7:80 in one
    namespace, their server ends (N sockets of the server) in the same."""
    b = SocketBuilder()
    b.add("LISTEN", "10.0.0.7:80", "0.0.0.0:0", inode=1)
    owners = owners_for(1, 1, 500, "nginx")
    for k in range(N):
        b.add("ESTABLISHED", f"10.0.0.1:{40000 + k}", "10.0.0.7:80", inode=10 + k)
        b.add("CLOSE_WAIT", "10.0.0.7:80", f"10.0.0.1:{40000 + k}", inode=10_000 + k)
    owners |= owners_for(10, N, 300, "java")
    owners |= owners_for(10_000, N, 500, "nginx", first_fd=100)
    return World([namespace(b.table(), owners=OwnerMap.of(owners))])


def test_by_owner_looks_up_one_row_a_group(lookups):
    ctx = clients_and_server().contexts[0]
    groups, ownerless = ctx.by_owner(np.arange(len(ctx.rows)))
    assert sorted((pid, len(rows)) for pid, (_, rows) in groups.items()) == \
        [(300, N), (500, N + 1)] and len(ownerless) == 0
    assert lookups[0] <= 2


def test_clients_of_looks_up_no_row(lookups):
    ctx = clients_and_server().contexts[0]
    refs = culprits.clients_of(ctx, socket.AF_INET, socket.inet_pton(socket.AF_INET, "10.0.0.7"),
                               80, "x")
    assert [(r.pid, r.comm) for r in refs] == [(300, "java")]
    assert lookups[0] == 0


def test_other_ends_look_up_one_row_a_group(lookups):
    world = clients_and_server()
    ctx = world.contexts[0]
    close_wait = np.flatnonzero(ctx.state == 8)
    got = other_ends(ctx, world, close_wait)
    assert [(e["state"], e["pid"], e["count"]) for e in got] == [("ESTABLISHED", 300, N)]
    assert lookups[0] <= 1
