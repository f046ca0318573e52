"""Sweeps: lockstep batches give exactly what one run per point gives."""

import math

import numpy as np
import pytest

from tcplinger.sim import presets
from tcplinger.model.params import ParamError
from tcplinger.sim.sweep import parse_vary, run_sweep


def kinds_for(preset_name, axes):
    p = presets.get(preset_name)
    return {a.key: p.knob(a.key).kind for a in axes}


def same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


def assert_batch_equals_scalar(preset_name, varies, horizon=None):
    axes = [parse_vary(v) for v in varies]
    kinds = kinds_for(preset_name, axes)

    def make(values):
        return presets.build(preset_name, values)

    batch = run_sweep(make, axes, kinds, horizon_s=horizon)
    scalar = run_sweep(make, axes, kinds, horizon_s=horizon, batch=False)
    assert len(batch) == len(scalar) > 0
    for i in range(len(batch)):
        b, s = batch[i], scalar[i]
        assert b.values == s.values
        for party in s.states:
            assert same(b.lingering[party], s.lingering[party]), (b.values, party)
            assert same(b.forgotten[party], s.forgotten[party]), (b.values, party)
            assert set(b.states[party]) == set(s.states[party]), (b.values, party)
            for st in s.states[party]:
                assert same(b.states[party][st], s.states[party][st]), (b.values, party, st)
    return batch


def test_orphan_fin_wait2_over_the_whole_range():
    res = assert_batch_equals_scalar("linux-orphan-fin-wait-2",
                                     ["tcp_fin_timeout=0.2..200:1.7"])
    # spot check: above 60 s the lifetime is 2*(T-60) plus wheel slack
    by_t = {round(p.values["tcp_fin_timeout"], 1): p.lingering["client"] for p in res.points()}
    assert by_t[61.4] < 4 and by_t[149.8] > 170


def test_linger2_grid_with_negative_values():
    assert_batch_equals_scalar("linux-orphan-fin-wait-2",
                               ["linger2=-1,0,1,30,59,61,90,150", "tcp_fin_timeout=5,70"])


def test_keepalive_grid_and_peer_choice():
    assert_batch_equals_scalar("linux-close-wait",
                               ["keepidle=1..9:2", "keepintvl=1,3", "keepcnt=1,2,5",
                                "peer=alive,gone,silent", "so_keepalive=0,1"], horizon=200)


def test_dropped_fin_retries():
    assert_batch_equals_scalar("linux-fin-dropped",
                               ["tcp_orphan_retries=0..12:1", "orphan=0,1", "tcp_retries2=2,4"],
                               horizon=3000)


def test_ipfw_lifetimes_batch():
    assert_batch_equals_scalar("seed-000-freebsd-ipfw",
                               ["dyn_ack_lifetime=30,100,300", "dyn_keepalive=0,1",
                                "refresh=any,both"], horizon=2000)


def test_per_os_choice_grid():
    assert_batch_equals_scalar("seed-001-fin-wait-2-per-os",
                               ["server_os=linux,freebsd,windows,solaris,hpux,bsd-legacy",
                                "client=buggy,vanish"], horizon=1500)


def test_cloud_send_times():
    assert_batch_equals_scalar("cloud-idle-timeout",
                               ["send_at=100..700:50", "provider=aws-nlb,gcp-nat,azure-lb"],
                               horizon=2500)


def test_parse_vary():
    a = parse_vary("keepidle=1..3:0.5,10")
    assert a.key == "keepidle" and a.values == (1.0, 1.5, 2.0, 2.5, 3.0, "10")
    for bad in ("keepidle", "=1,2", "x=", "x=5..1", "x=1..2:0", "x=a..b"):
        with pytest.raises(ParamError):
            parse_vary(bad)


def test_progress_is_reported():
    seen = []
    axes = [parse_vary("tcp_fin_timeout=1..50:1")]
    run_sweep(lambda v: presets.build("linux-orphan-fin-wait-2", v), axes,
              {"tcp_fin_timeout": "seconds"}, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (50, 50)


def test_out_of_range_value_in_a_batch_is_refused():
    axes = [parse_vary("keepcnt=1,500")]
    with pytest.raises(ParamError):
        run_sweep(lambda v: presets.build("linux-close-wait", v), axes, {"keepcnt": "count"})


def test_speed_smoke():
    # the benchmark is bench/sim_speed.py; this only guards against a
    # collapse of the lockstep path (it must stay far above one run per point)
    import time
    axes = [parse_vary("tcp_fin_timeout=1..200:0.02")]
    t = time.perf_counter()
    res = run_sweep(lambda v: presets.build("linux-orphan-fin-wait-2", v), axes,
                    {"tcp_fin_timeout": "seconds"})
    rate = len(res) / (time.perf_counter() - t)
    assert len(res) == 9951
    assert rate > 5000
    assert np.isfinite(res.lingering["client"]).all()
