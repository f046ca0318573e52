"""The engine's cheap time bounds (Engine.after: the bounds of now + a
scalar delay are now's bounds plus it, no reduction over the batch) give
the same sweeps, value for value, as bounds reduced from every event's
times: on the seed-000 ipfw grid (24 simulated hours of periodic
keepalive rounds) and on randomised periodic scenarios."""

import random

import numpy as np
import pytest

from tcplinger.sim import engine
from tcplinger.sim import presets
from tcplinger.sim.scenario import with_values
from tcplinger.sim.sweep import parse_vary, run_sweep


def reduced_after(self, delay, fn, *args):
    """Engine.after as it was: every event's bounds from its times."""
    return self._push(self.now + delay, fn, args, None)


def sweep(preset, varies, kinds, horizon=None):
    p = presets.get(preset)

    def make(values):
        knobs = {k: v for k, v in values.items() if p.knob(k) is not None}
        paths = {k: v for k, v in values.items() if p.knob(k) is None}
        return with_values(presets.build(preset, knobs), paths)
    return run_sweep(make, [parse_vary(v) for v in varies], kinds, horizon_s=horizon)


def same(a, b):
    assert a.parties == b.parties
    for party in a.parties:
        assert np.array_equal(a.forgotten[party], b.forgotten[party], equal_nan=True)
        assert np.array_equal(a.lingering[party], b.lingering[party], equal_nan=True)
        assert a.states[party].keys() == b.states[party].keys()
        for state, col in a.states[party].items():
            assert np.array_equal(col, b.states[party][state], equal_nan=True)


def both(monkeypatch, *args, **kw):
    fast = sweep(*args, **kw)
    with monkeypatch.context() as m:
        m.setattr(engine.Engine, "after", reduced_after)
        slow = sweep(*args, **kw)
    return fast, slow


IPFW_KINDS = {"dyn_ack_lifetime": "seconds", "dyn_keepalive": "bool", "refresh": "choice"}


def test_seed_000_grid_is_unchanged(monkeypatch):
    fast, slow = both(monkeypatch, "seed-000-freebsd-ipfw",
                      ["dyn_ack_lifetime=30..3000:99", "dyn_keepalive=0,1", "refresh=any,both"],
                      IPFW_KINDS)
    same(fast, slow)
    # the grid has both answers of the seed: held all day, and ended
    srv = fast.forgotten["server"]
    assert np.isnan(srv).any() and (~np.isnan(srv)).any()


@pytest.mark.parametrize("seed", range(4))
def test_random_periodic_scenarios_are_unchanged(monkeypatch, seed):
    rnd = random.Random(seed)
    lo = rnd.uniform(5, 200)
    ipfw = [f"dyn_ack_lifetime={lo:.3f}..{lo + rnd.uniform(50, 900):.3f}:{rnd.uniform(3, 40):.3f}",
            f"dyn_syn_lifetime={rnd.uniform(1, 30):.2f}", "dyn_keepalive=0,1",
            "refresh=any,both", f"client={rnd.choice(('vanish', 'buggy'))}"]
    kinds = dict(IPFW_KINDS, dyn_syn_lifetime="seconds", client="choice")
    fast, slow = both(monkeypatch, "seed-000-freebsd-ipfw", ipfw, kinds,
                      horizon=rnd.uniform(2000, 8000))
    same(fast, slow)
    keep = [f"keepidle={rnd.randint(1, 30)}..{rnd.randint(31, 90)}:{rnd.randint(3, 9)}",
            f"keepintvl=1..{rnd.randint(5, 40)}:{rnd.randint(2, 7)}", f"keepcnt=1..{rnd.randint(2, 9)}",
            "so_keepalive=1", "peer=silent"]
    kinds = {"keepidle": "seconds", "keepintvl": "seconds", "keepcnt": "count",
             "so_keepalive": "bool", "peer": "choice"}
    fast, slow = both(monkeypatch, "linux-close-wait", keep, kinds)
    same(fast, slow)


def test_bounds_of_now_plus_a_delay_are_exact():
    """fl(t + d) is monotonic in t, so the cheap bounds are the reduced ones
    bit for bit (random times, delays and batches of any size)."""
    rnd = np.random.default_rng(3)
    for _ in range(300):
        n = int(rnd.integers(1, 50))
        now = rnd.uniform(0, 10 ** rnd.uniform(0, 6), n) * rnd.choice([1, 1e-3])
        eng = engine.Engine(horizon_s=1e9, batch=True)
        eng.now, eng._now_lo, eng._now_hi = now, float(now.min()), float(now.max())
        delay = float(rnd.choice([0.025, 1e-7, 75.0, 0.1 + rnd.random(), 3000.5]))
        ev = eng.after(delay, print)
        assert (ev.lo, ev.hi) == (float((now + delay).min()), float((now + delay).max()))


def test_the_grid_takes_the_cheap_bounds(monkeypatch):
    """The sweeps above do go through them (a batch's now is an array)."""
    seen = []
    orig = engine.Engine._push

    def push(self, when, fn, args, bounds):
        seen.append(bounds is not None)
        return orig(self, when, fn, args, bounds)
    monkeypatch.setattr(engine.Engine, "_push", push)
    sweep("seed-000-freebsd-ipfw", ["dyn_ack_lifetime=30..600:190", "dyn_keepalive=1"],
          IPFW_KINDS)
    assert sum(seen) > len(seen) / 3
