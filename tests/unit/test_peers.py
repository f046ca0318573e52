"""The other end of a connection across namespaces (diagnose/context.py
World.peers): from MERGED_PEERS_MIN namespaces on it searches one merged
index; the answer must be the per-namespace search's, row for row."""

import random

import numpy as np
import pytest

from tcplinger.diagnose import context
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
    monkeypatch.setattr(context, "MERGED_PEERS_MIN", 10**9)
    single = _answers(_world(random.Random(seed), n))
    assert merged == single
    assert any(c >= 0 for cs, _ in single for c in cs)  # not vacuous: peers are found
