"""export/namespace_samples.histogram (two a namespace in a 150-pod scrape,
issue 16): the former formula's buckets and sum on random ages, with the
bucket texts formatted once per bucket layout, not once per histogram."""

from __future__ import annotations

import random

import numpy as np
import pytest
from prometheus_client.utils import floatToGoString

from tcplinger.export import namespace_samples


def _before(values, buckets):
    ordered = np.sort(values)
    counts = np.searchsorted(ordered, np.asarray(buckets, dtype=float), side="right")
    out = [(floatToGoString(b), int(c)) for b, c in zip(buckets, counts)]
    out.append(("+Inf", int(len(ordered))))
    return out, float(ordered.sum())


@pytest.mark.parametrize("seed", range(100))
def test_histogram_as_before(seed):
    rnd = random.Random(seed)
    values = np.array([rnd.choice((0.0, 1.0, 5.0, 59.9, 60.0, 7200.0)) if rnd.random() < 0.3
                       else rnd.expovariate(1 / 300) for _ in range(rnd.randrange(0, 40))])
    buckets = rnd.choice((namespace_samples.AGE_BUCKETS, (1.0, 5.0, 60.0),
                          [0.5, 2.0, 1e9], (float("inf"),)))
    got, want = namespace_samples.histogram(values, buckets), _before(values, buckets)
    assert got == want
    assert [type(c) for _, c in got[0]] == [int] * len(got[0])


def test_bucket_texts_made_once_a_layout(monkeypatch):
    made = []
    monkeypatch.setattr(namespace_samples, "floatToGoString",
                        lambda b: (made.append(b), floatToGoString(b))[1])
    layout = (3.0, 30.0, 300.0, 3000.0)  # a layout no other test uses
    for _ in range(5):
        namespace_samples.histogram(np.array([1.0, 40.0]), layout)
    assert made == list(layout)
