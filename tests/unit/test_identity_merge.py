"""The watch loop's columnar steps against plain references on random
inputs: the tracker's merge of kept rows (identity.concat), its sorted
columns, and the store's live table written by difference."""

import numpy as np
import pytest

from tcplinger.model.table import empty
from tcplinger.track.identity import COLS, Namespace, concat, sorted_columns, tuple_hash
from tcplinger.track.store import SampleInfo, Store


def random_rows(rng, n, cookie_range):
    rows = empty(n)
    rows["cookie"] = rng.integers(1, cookie_range, n, dtype=np.uint64)
    rows["state"] = rng.integers(1, 12, n)
    rows["family"] = rng.choice([2, 10], n)
    rows["sport"] = rng.integers(0, 1 << 16, n)
    rows["dport"] = rng.integers(0, 1 << 16, n)
    rows["inode"] = rng.integers(0, 1 << 40, n, dtype=np.uint64)
    rows["saddr"] = rng.integers(0, 256, (n, 16), dtype=np.uint8).view("V16").ravel()
    rows["daddr"] = rng.integers(0, 256, (n, 16), dtype=np.uint8).view("V16").ravel()
    return rows


def namespace(rng, n, cookie_range):
    cur = sorted_columns(random_rows(rng, n, cookie_range))
    return Namespace(cur, tuple_hash(cur), rng.random(n), rng.integers(0, 4, n).astype(np.int8),
                     rng.random(n) < 0.5, rng.random(n), rng.integers(0, 3, n).astype(np.int16),
                     rng.random(n), rng.random(n) < 0.5, 7.0, None)


def reference_concat(st, old, keep, unseen):
    """The merge as a stable sort of [st, old's kept rows] by cookie."""
    missed = old.missed[keep] + 1
    missed[unseen] -= 1
    fields = ("cols", "hash", "since", "code", "at_least", "first_seen", "missed",
              "prev_since", "prev_at_least")
    both = {f: np.concatenate([getattr(st, f), missed if f == "missed" else getattr(old, f)[keep]])
            for f in fields}
    order = np.argsort(both["cols"]["cookie"], kind="stable")
    return {f: v[order] for f, v in both.items()}


@pytest.mark.parametrize("seed", range(8))
def test_concat_equals_a_stable_sort_of_both(seed):
    rng = np.random.default_rng(seed)
    # a small cookie range: many ties between the current and the kept rows
    cookie_range = [50, 10**6][seed % 2]
    st = namespace(rng, int(rng.integers(0, 300)), cookie_range)
    old = namespace(rng, int(rng.integers(1, 700)), cookie_range)
    keep = rng.random(len(old.cols)) < 0.7
    unseen = rng.random(int(keep.sum())) < 0.5
    got = concat(st, old, keep, unseen)
    want = reference_concat(st, old, keep, unseen)
    for f, v in want.items():
        assert getattr(got, f).dtype == v.dtype, f
        assert getattr(got, f).tobytes() == v.tobytes(), f
    assert np.array_equal(got.cookies, want["cols"]["cookie"])
    assert got.last_obs == st.last_obs


@pytest.mark.parametrize("seed", range(4))
def test_sorted_columns_equals_a_gather_per_field(seed):
    rng = np.random.default_rng(seed)
    rows = random_rows(rng, 500, 100)  # duplicate cookies keep their dump order
    order = np.argsort(rows["cookie"], kind="stable")
    got = sorted_columns(rows)
    assert got.dtype.names == COLS
    for c in COLS:
        assert got[c].tobytes() == rows[c][order].tobytes(), c


def live_rows(store):
    return sorted(store.db.execute("SELECT netns, cookie, state, since, source, at_least FROM live"))


@pytest.mark.parametrize("seed", range(6))
def test_live_by_difference_equals_a_full_rewrite(tmp_path, seed):
    """Each sample's live table, written by difference on top of the
    previous ones, is what a fresh database holds after writing it alone
    (cookies that leave and come back included; the kernel never gives
    two sockets one cookie)."""
    rng = np.random.default_rng(seed)
    cookies = np.sort(rng.choice(np.arange(1, 400, dtype=np.uint64), 200, replace=False))
    state = rng.integers(1, 12, 200).astype(np.uint8)
    since = rng.integers(0, 5, 200).astype(float)
    with Store(tmp_path / "diff.db") as diff:
        for t in range(12):
            # some rows leave, some come, some change state or age
            steady = t % 3 == 2  # the same sockets as last time: only changes
            stay = rng.random(len(cookies)) < (1.0 if steady else 0.9)
            free = np.setdiff1d(np.arange(1, 400, dtype=np.uint64), cookies[stay])
            new = rng.choice(free, 0 if steady else int(rng.integers(0, 30)), replace=False)
            cookies = np.concatenate([cookies[stay], new])
            state = np.concatenate([state[stay], rng.integers(1, 12, len(new)).astype(np.uint8)])
            since = np.concatenate([since[stay], np.full(len(new), float(t))])
            change = rng.random(len(cookies)) < 0.1
            state[change] = rng.integers(1, 12, int(change.sum()))
            later = rng.random(len(cookies)) < 0.1  # an age corrected, same state
            since[later] = t + 0.5
            order = np.argsort(cookies, kind="stable")
            cookies, state, since = cookies[order], state[order], since[order]
            code = (state % 4).astype(np.int8)
            low = state % 2 == 0
            live = {5: (cookies, state, since, code, low)}
            diff.write_sample(SampleInfo(float(t), 1.0, len(cookies), 0, "trace"), [], live=live)
            with Store(tmp_path / f"full{t}.db") as full:
                full.write_sample(SampleInfo(float(t), 1.0, len(cookies), 0, "trace"), [],
                                  live=live)
                assert live_rows(diff) == live_rows(full), t
