"""The other end of a connection across namespaces (diagnose/peers.py,
World.peers): from MERGED_PEERS_MIN namespaces on it searches one merged
index, and answers every teardown row of every namespace in one pass; the
answer must be the per-namespace search's, row for row, whatever rows are
asked in whatever order."""

import random

import numpy as np
import pytest

from tcplinger.diagnose import peers
from tcplinger.diagnose.builder import SocketBuilder, namespace
from tcplinger.diagnose.context import World

STATES = ("CLOSE_WAIT", "FIN_WAIT2", "ESTABLISHED", "LAST_ACK", "FIN_WAIT1", "TIME_WAIT")
#: few addresses and ports, so that keys repeat within and across namespaces
ADDRS = ("127.0.0.1", "10.0.0.1", "10.0.0.2", "::1", "fd00::1", "fd00::2",
         "::ffff:127.0.0.1", "::ffff:10.0.0.1")


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _world(rnd: random.Random, namespaces: int) -> World:
    inputs = []
    for k in range(namespaces):
        b = SocketBuilder()
        for _ in range(rnd.randrange(0, 30)):
            v6 = rnd.random() < 0.5
            pool = [a for a in ADDRS if (":" in a) == v6]
            a, c = rnd.choice(pool), rnd.choice(pool)
            p, q = rnd.choice((80, 8080, 40000, 40001)), rnd.choice((80, 8080, 40000, 40001))
            b.add(rnd.choice(STATES), _endpoint(a, p), _endpoint(c, q))
            if rnd.random() < 0.5:  # its other end, here or in another namespace
                b.add(rnd.choice(STATES), _endpoint(c, q), _endpoint(a, p))
        inputs.append(namespace(b.table(), name=f"ns{k}", inode=4026531840 + k))
    return World(inputs)


def _answers(world: World):
    out = []
    for ctx in world.contexts:
        rows = np.arange(len(ctx.rows), dtype=np.int64)
        c, r = world.peers(ctx, rows)
        out.append((c.tolist(), r.tolist()))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_merged_index_answers_as_the_per_namespace_search(seed, monkeypatch):
    rnd = random.Random(seed)
    n = rnd.choice((8, 9, 20))
    merged = _answers(_world(random.Random(seed), n))
    monkeypatch.setattr(peers, "MERGED_PEERS_MIN", 10**9)
    single = _answers(_world(random.Random(seed), n))
    assert merged == single
    assert any(c >= 0 for cs, _ in single for c in cs)  # not vacuous: peers are found


def _reference_other_ends(ctx, world, rows) -> list[dict]:
    """other_ends() as it was written before it counted in numpy: one key
    tuple per row found (the answer the vectorised one must give)."""
    from tcplinger.diagnose.process_text import short_command
    from tcplinger.diagnose.rules._common import PEER_LOOKUPS
    from tcplinger.model.states import TcpState

    ctx_idx, peer_rows = world.peers(ctx, rows[:PEER_LOOKUPS])
    seen: dict[tuple, int] = {}
    for k, j in zip(ctx_idx.tolist(), peer_rows.tolist()):
        if k < 0:
            continue
        other = world.contexts[k]
        owners = other.owners_of_row(j)
        who = owners[0] if owners else None
        key = (other.netns.label(), TcpState(int(other.state[j])).name,
               who.pid if who else None, who.comm if who else None,
               int(other.inode[j]) == 0,
               short_command(who.cmdline, who.comm) if who else None)
        seen[key] = seen.get(key, 0) + 1
    return [{"netns": k[0], "state": k[1], "pid": k[2], "comm": k[3], "orphan": k[4],
             "command": k[5], "count": n}
            for k, n in sorted(seen.items(), key=lambda kv: -kv[1])]


def _owned_world(rnd: random.Random, namespaces: int, columns: bool = False) -> World:
    """Like _world, with orphans (inode 0), sockets held by one of a few
    processes (one pid seen with two command lines, a socket held by two
    processes), unheld sockets, and namespaces sharing a label."""
    from tcplinger.model.socket import Owner
    procs = [(100, "nginx", "nginx: worker process"), (100, "nginx", "nginx: master"),
             (200, "python3", "python3 app.py"), (300, "java", "java -jar x.jar")]
    inputs, inode = [], 1
    for k in range(namespaces):
        b, owners = SocketBuilder(), {}
        for _ in range(rnd.randrange(0, 40)):
            v6 = rnd.random() < 0.5
            pool = [a for a in ADDRS if (":" in a) == v6]
            a, c = rnd.choice(pool), rnd.choice(pool)
            p, q = rnd.choice((80, 8080, 40000, 40001)), rnd.choice((80, 8080, 40000, 40001))
            for local, remote in [(_endpoint(a, p), _endpoint(c, q))] + \
                    ([(_endpoint(c, q), _endpoint(a, p))] if rnd.random() < 0.7 else []):
                ino = 0 if rnd.random() < 0.2 else inode
                inode += 1
                b.add(rnd.choice(STATES), local, remote, inode=ino)
                if ino and rnd.random() < 0.8:
                    held = rnd.sample(procs, rnd.choice((1, 1, 2)))
                    owners[ino] = tuple(Owner(pid=pid, comm=comm, cmdline=cmd, fd=3 + n)
                                        for n, (pid, comm, cmd) in enumerate(held))
        if columns:  # as the fd walk gives them (model/owner_map.py)
            from tcplinger.model.owner_map import OwnerMap
            owners = OwnerMap.of(owners)
        inputs.append(namespace(b.table(), name=f"ns{k % 3}", inode=4026531840 + k,
                                owners=owners))
    return World(inputs)


@pytest.mark.parametrize("seed", range(60))
@pytest.mark.parametrize("columns", [False, True])
def test_other_ends_count_as_one_key_per_row(seed, columns):
    """The vectorised other_ends() gives the per-row reference's list, in
    the same order (ties by first row), for every namespace's rows; also
    with the owners as columns (the holders taken from them)."""
    from tcplinger.diagnose.rules._common import other_ends
    rnd = random.Random(seed)
    world = _owned_world(rnd, rnd.choice((1, 2, 3, 9)), columns)
    found = 0
    for ctx in world.contexts:
        rows = np.array(rnd.sample(range(len(ctx.rows)), len(ctx.rows)), dtype=np.int64)
        want = _reference_other_ends(ctx, world, rows)
        assert other_ends(ctx, world, rows) == want
        found += len(want)
    assert found or seed % 10  # most seeds find other ends


def test_other_ends_not_vacuous():
    from tcplinger.diagnose.rules._common import other_ends
    hits = 0
    for seed in range(60):
        world = _owned_world(random.Random(seed), 3)
        for ctx in world.contexts:
            got = other_ends(ctx, world, np.arange(len(ctx.rows)))
            hits += sum(1 for h in got if h["pid"]) and sum(1 for h in got if h["count"] > 1)
    assert hits > 20


def _asked(world: World, rnd: random.Random):
    """Each namespace's rows in a random order and subset, teardown and
    others mixed, asked one namespace after another as the rules ask."""
    out = []
    for ctx in world.contexts:
        rows = [i for i in range(len(ctx.rows)) if rnd.random() < 0.7]
        rnd.shuffle(rows)
        teardown = [i for i in rows if ctx.state[i] in (8, 5)]  # CLOSE_WAIT, FIN_WAIT2
        for ask in (rows, teardown, teardown[:1]):
            c, r = world.peers(ctx, np.array(ask, dtype=np.int64))
            out.append((c.tolist(), r.tolist()))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_batched_answers_as_the_search_for_any_rows(seed, monkeypatch):
    n = random.Random(seed).choice((8, 9, 20))
    world = _world(random.Random(seed), n)
    batched = _asked(world, random.Random(seed))
    assert world._peers.__dict__.get("_batched") is not None  # the one pass ran
    monkeypatch.setattr(peers, "MERGED_PEERS_MIN", 10**9)
    single = _asked(_world(random.Random(seed), n), random.Random(seed))
    assert batched == single
    assert any(c >= 0 for cs, _ in single for c in cs)


def _stable(keys, rows):
    order = np.argsort(keys, kind="stable")
    return keys[order], rows[order]


@pytest.mark.parametrize("seed", range(40))
def test_sorted_index_is_the_stable_sort(seed):
    """peers._sorted: an unstable sort unless two keys are equal, the
    stable sort's order either way (the search takes the first of equal
    keys: the lowest row)."""
    rng = np.random.default_rng(seed)
    for n in (0, 1, 2, 50, 5000):
        for top in (3, n + 1, 1 << 63):
            keys = rng.integers(0, max(top, 1), n, dtype=np.uint64)
            rows = np.sort(rng.choice(10 * n + 1, n, replace=False)).astype(np.int64)
            got, want = peers._sorted(keys, rows), _stable(keys, rows)
            assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()


@pytest.mark.parametrize("seed", range(40))
def test_per_namespace_search_as_with_the_stable_sort(seed, monkeypatch):
    monkeypatch.setattr(peers, "MERGED_PEERS_MIN", 10**9)
    n = random.Random(seed).choice((1, 2, 3))
    fast = _asked(_world(random.Random(seed), n), random.Random(seed))
    monkeypatch.setattr(peers, "_sorted", _stable)
    stable = _asked(_world(random.Random(seed), n), random.Random(seed))
    assert fast == stable


def test_context_columns_are_contiguous_copies():
    """NsContext.state and .inode: contiguous (each rule's mask reads them
    a cache line per row otherwise), equal to the rows' columns."""
    from tcplinger.diagnose.builder import SocketBuilder, namespace
    from tcplinger.diagnose.context import NsContext

    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.2:40000", count=5)
    b.add("TIME_WAIT", "10.0.0.1:80", "10.0.0.3:40000", inode=0, count=5)
    ctx = NsContext(namespace(b.table()))
    for name in ("state", "inode"):
        column = getattr(ctx, name)
        assert column.flags.c_contiguous and column.strides == (column.itemsize,)
        assert column.tolist() == ctx.rows[name].tolist()
