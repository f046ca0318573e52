"""Masks the rules compute over every row, rewritten for speed (issue 16,
the report at 300k): each must give what its former formula gave, on
random tables (states, orphans, listening ports, tcp_info or none)."""

import random

import numpy as np
import pytest

from tcplinger.diagnose.builder import SocketBuilder, namespace
from tcplinger.diagnose.context import NsContext
from tcplinger.diagnose.rules.keepalive_timeout_fin_wait2 import server_orphans
from tcplinger.model.states import TcpState
from tcplinger.track import age

STATES = ("ESTABLISHED", "LISTEN", "CLOSE_WAIT", "FIN_WAIT2", "FIN_WAIT1", "TIME_WAIT",
          "LAST_ACK", "CLOSING", "SYN_RECV")
PORTS = (80, 443, 8080, 40000)


def _table(rnd: random.Random):
    b = SocketBuilder()
    for _ in range(rnd.randrange(1, 15)):
        state = rnd.choice(STATES)
        last = rnd.choice((None, 0, 1500, 90_000))
        b.add(state, f"10.0.0.1:{rnd.choice(PORTS)}",
              "0.0.0.0:0" if state == "LISTEN" else f"10.0.0.{rnd.randrange(2, 5)}:{rnd.choice(PORTS)}",
              count=rnd.randrange(1, 5), inode=rnd.choice((None, 0)),
              timer=rnd.choice((0, 1, 2)), vary=rnd.choice(("sport", "dport")),
              last_ack_recv=last, last_data_recv=last)
    return b.table()


def _server_orphans_before(ctx) -> np.ndarray:
    if not ctx.listen_ports:
        return np.zeros(0, np.int64)
    listening = np.fromiter(ctx.listen_ports, dtype=np.uint16, count=len(ctx.listen_ports))
    mask = ctx.in_state(TcpState.FIN_WAIT2) & (ctx.inode == 0) & \
        np.isin(ctx.rows["sport"], listening)
    return np.flatnonzero(mask)


def _lower_bounds_before(table) -> np.ndarray:
    out = np.full(len(table), np.nan)
    if table.info is None:
        return out
    ok = table.info["present"] & np.isin(table.rows["state"], age.LOWER_BOUND_STATES)
    out[ok] = table.info["last_ack_recv"][ok] / 1000.0
    return out


@pytest.mark.parametrize("seed", range(200))
def test_server_orphans_as_before(seed):
    ctx = NsContext(namespace(_table(random.Random(seed))))
    got, want = server_orphans(ctx), _server_orphans_before(ctx)
    assert got.dtype == want.dtype and got.tolist() == want.tolist()


def test_server_orphans_not_vacuous():
    found = sum(len(server_orphans(NsContext(namespace(_table(random.Random(s))))))
                for s in range(200))
    assert found > 20


@pytest.mark.parametrize("seed", range(200))
def test_lower_bounds_as_before(seed):
    table = _table(random.Random(seed))
    got, want = age.lower_bounds(table), _lower_bounds_before(table)
    assert np.array_equal(got, want, equal_nan=True)


def test_lower_bounds_not_vacuous():
    found = sum(int(np.isfinite(age.lower_bounds(_table(random.Random(s)))).sum())
                for s in range(200))
    assert found > 50
