"""The event core and the batch arithmetic (sim/engine.py, sim/num.py)."""

import numpy as np
import pytest

from tcplinger.sim.engine import Engine
from tcplinger.sim.num import Split, maximum, minimum, truth, where
from tcplinger.sim.profiles.linux_timers import model_timeout, wheel_lateness


def test_events_fire_in_time_then_schedule_order():
    eng = Engine(horizon_s=100)
    seen = []
    eng.at(5.0, seen.append, "c")
    eng.at(1.0, seen.append, "a")
    eng.at(5.0, seen.append, "d")  # same time: scheduling order
    eng.at(2.0, lambda: eng.after(1.0, seen.append, "b2"))
    eng.run()
    assert seen == ["a", "b2", "c", "d"]
    assert eng.now == 5.0


def test_cancelled_and_late_events_do_not_fire():
    eng = Engine(horizon_s=10)
    seen = []
    ev = eng.at(1.0, seen.append, "cancelled")
    ev.cancel()
    eng.at(10.0, seen.append, "at the horizon")
    eng.at(10.5, seen.append, "after")
    eng.run()
    assert seen == ["at the horizon"]


def test_fired_event_is_no_longer_active():
    eng = Engine(horizon_s=10)
    ev = eng.at(1.0, lambda: None)
    eng.run()
    assert not ev.active


def test_scalar_engine_refuses_array_times():
    with pytest.raises(TypeError):
        Engine(horizon_s=10).at(np.array([1.0, 2.0]), lambda: None)


def test_batch_engine_splits_when_order_differs():
    eng = Engine(horizon_s=10, batch=True)
    eng.at(np.array([1.0, 5.0]), lambda: None)
    eng.at(np.array([2.0, 2.0]), lambda: None)
    with pytest.raises(Split) as exc:
        eng.run()
    # the mask marks the points where the second event comes first
    assert exc.value.mask.tolist() == [False, True]


def test_batch_engine_same_order_runs():
    eng = Engine(horizon_s=10, batch=True)
    seen = []
    eng.at(np.array([1.0, 1.5]), seen.append, 1)
    eng.at(np.array([2.0, 2.0]), seen.append, 2)
    eng.run()
    assert seen == [1, 2]
    assert eng.now.tolist() == [2.0, 2.0]


def test_truth_and_helpers():
    assert truth(np.array([True, True])) is True
    assert truth(np.array([False, False])) is False
    with pytest.raises(Split):
        truth(np.array([True, False]))
    assert minimum(1, 2) == 1 and maximum(1, 2) == 2
    assert where(True, 1, 2) == 1
    assert where(np.array([True, False]), 1, 2).tolist() == [1, 2]


def test_python_refuses_an_unguarded_batch_decision():
    # why every decision must go through truth(): plain `if` fails loudly
    with pytest.raises(ValueError):
        if np.array([1.0, 2.0]) > 1.5:
            pass


@pytest.mark.parametrize("jiffies,late", [
    (1, 1.0), (62, 1.0),                 # level 0: always one jiffy
    (63, 4.5), (503, 4.5),               # level 1: granularity 8
    (504, 32.5), (4031, 32.5),           # level 2: 64
    (4032, 256.5), (32255, 256.5),       # level 3: 512 (16 s - 129 s at HZ=250)
    (32256, 2048.5),                     # level 4: 4096
])
def test_timer_wheel_mean_lateness(jiffies, late):
    assert wheel_lateness(jiffies) == late
    assert wheel_lateness(np.array([float(jiffies)])).tolist() == [late]


def test_model_timeout_matches_kernel_table():
    # tcp_model_timeout(): (2^(N+1) - 1) * 200 ms up to N=9, then +120 s each
    assert model_timeout(1) == pytest.approx(0.6)
    assert model_timeout(8) == pytest.approx(102.2)
    assert model_timeout(9) == pytest.approx(204.6)
    assert model_timeout(10) == pytest.approx(324.6)
    assert model_timeout(15) == pytest.approx(924.6)
    assert model_timeout(np.array([1, 15])).tolist() == pytest.approx([0.6, 924.6])
