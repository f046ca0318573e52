"""Growth slopes and time-to-limit arithmetic."""

import numpy as np
import pytest

from tcplinger.track.growth import Growth, describe, fit, time_to_limit


def test_exact_linear_growth():
    t = np.arange(0, 600, 10.0)
    g = fit(t, 3 + 0.5 * t)
    assert g.slope == pytest.approx(0.5) and g.per_minute == pytest.approx(30)
    assert g.growing and g.r2 == pytest.approx(1.0)


def test_noisy_growth_keeps_its_rate():
    rng = np.random.default_rng(7)
    t = np.arange(0, 3600, 10.0)
    g = fit(t, 100 + 0.2 * t + rng.normal(0, 5, len(t)))
    assert g.slope == pytest.approx(0.2, rel=0.05) and g.growing


def test_flat_noise_is_not_growing():
    rng = np.random.default_rng(7)
    t = np.arange(0, 3600, 10.0)
    assert not fit(t, 100 + rng.normal(0, 5, len(t))).growing


def test_drain_is_not_growing():
    t = np.arange(0, 600, 10.0)
    assert not fit(t, 1000 - t).growing


def test_short_burst_is_not_growing():
    assert not fit([0, 10, 20], [0, 50, 100]).growing  # 3 points, 20 s


def test_time_to_limit():
    g = Growth(slope=12 / 60, intercept=0, r2=1, span=3 * 3600, points=180, growing=True)
    assert time_to_limit(g, 1000, 65536) == pytest.approx((65536 - 1000) / 0.2)
    assert time_to_limit(g, 70000, 65536) == 0.0
    assert time_to_limit(g, 10, None) is None
    flat = Growth(0.0, 0, 0, 3600, 100, False)
    assert time_to_limit(flat, 10, 100) is None


def test_describe():
    g = Growth(slope=12 / 60, intercept=0, r2=1, span=3 * 3600, points=180, growing=True)
    assert describe(g, 9 * 3600) == "+12/min for 3h; limit in about 9h"
    assert describe(g, 90) == "+12/min for 3h; limit in about 2min"
