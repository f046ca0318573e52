"""The watcher's pending events (track/tracelines.PendingEvents): events
parsed only when a sample looks up their port pair give the tracker the
same transitions, sample by sample, as every event parsed at once
(tracelines.parse_chunk + Tracker.add_events) into the tracker's join as
it was (:class:`Reference`), on a randomised history of
sockets that change state, appear after their events, vanish, share port
pairs across namespaces, and a flood of other namespaces' events."""

import random

import numpy as np
import pytest

from tcplinger.model.socket import AgeSource
from tcplinger.model.table import SocketTable, empty
from tcplinger.track.events import TRACE
from tcplinger.track.identity import port_keys, same_tuple
from tcplinger.track.tracelines import PendingEvents, parse_chunk
from tcplinger.track.tracker import Tracker, _chain

NAMES = {1: "ESTABLISHED", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT", 7: "CLOSE",
         8: "CLOSE_WAIT", 9: "LAST_ACK"}
NEXT = {1: (8, 4), 8: (9,), 9: (7,), 4: (5,), 5: (6, 7)}


def line(t, sport, dport, old, new, v6=False, addr="127.0.0.1"):
    fam = "AF_INET6" if v6 else "AF_INET"
    a6 = "fd00::1" if v6 else f"::ffff:{addr}"
    return (f"  python3-1 [000] .....  {t:.6f}: inet_sock_set_state: family={fam} "
            f"protocol=IPPROTO_TCP sport={sport} dport={dport} saddr={addr} daddr={addr} "
            f"saddrv6={a6} daddrv6={a6} oldstate=TCP_{NAMES[old]} "
            f"newstate=TCP_{NAMES[new]}\n").encode()


def table(socks):
    rows = empty(len(socks))
    for i, (cookie, state, sport, dport, v6) in enumerate(socks):
        rows[i]["cookie"], rows[i]["state"] = cookie, state
        rows[i]["sport"], rows[i]["dport"] = sport, dport
        rows[i]["family"] = 10 if v6 else 2
        addr = bytes.fromhex("fd00" + "00" * 13 + "01") if v6 else bytes([127, 0, 0, 1]) + bytes(12)
        rows[i]["saddr"] = rows[i]["daddr"] = np.void(addr)
    return SocketTable(rows)


def history(seed):
    """Per sample: (now, chunks read before it, {netns: rows})."""
    rnd = random.Random(seed)
    socks = {}  # (ns, cookie) -> [state, sport, dport, v6]
    cookie = 0
    t = 0.0
    out = []
    for _ in range(25):
        chunks = []
        for _ in range(rnd.randint(1, 3)):
            text = b""
            for _ in range(rnd.randint(0, 40)):  # other namespaces' events
                text += line(t + rnd.random(), rnd.randint(1024, 1100), rnd.randint(80, 90),
                             1, rnd.choice((8, 4)), addr="127.9.9.9")
            for key in rnd.sample(sorted(socks), min(len(socks), rnd.randint(0, 6))):
                st = socks[key]
                if st[0] in NEXT:
                    new = rnd.choice(NEXT[st[0]])
                    text += line(t + rnd.random(), st[1], st[2], st[0], new, st[3])
                    if rnd.random() < 0.8:  # sometimes the sample misses the change
                        st[0] = new
                    if new == 7:
                        del socks[key]
            for _ in range(rnd.randint(0, 3)):  # sockets whose events come first
                cookie += 1
                ns = rnd.choice((1, 2))
                sport, dport = rnd.randint(80, 83), rnd.randint(5000, 5010)
                v6 = rnd.random() < 0.2
                text += line(t + rnd.random(), sport, dport, 1, 8, v6)
                socks[(ns, cookie)] = [8, sport, dport, v6]
            if rnd.random() < 0.1:
                text += b"CPU:1 [LOST 3 EVENTS]\n"
            chunks.append(text)
        t += 1.0 + rnd.random()
        parts = {ns: [(c, *socks[(n, c)]) for (n, c) in sorted(socks) if n == ns
                      and socks[(n, c)][0] != 7] for ns in (1, 2)}
        out.append((t, chunks, parts))
    return out


class Reference(Tracker):
    """The tracker with the per-row trace join it had before (each row's
    pair scanned event by event, the row's addresses formatted for each;
    the transitions filtered again per traced socket)."""

    def _traced(self, ns, cur, rows, ambiguous, now, out):
        keys = port_keys(cur)
        wanted = np.fromiter(self.events.keys(), np.uint32, len(self.events))
        for i in np.flatnonzero(np.isin(keys, wanted)).tolist():
            k = int(keys[i])
            if k in ambiguous:
                continue
            evs = [e for e in self.events[k] if e.t <= now and same_tuple(e, cur[i])]
            if not evs:
                continue
            last = evs[-1]
            if last.new != int(cur["state"][i]):
                continue
            if rows.code[i] == TRACE and rows.since[i] >= last.t:
                continue
            cookie = int(cur["cookie"][i])
            out = [t for t in out if not (t.netns == ns and t.cookie == cookie
                                          and t.source == AgeSource.FIRST_SEEN)]
            out += _chain(ns, cookie, int(cur["family"][i]), evs, rows, i)
            rows.since[i], rows.code[i], rows.at_least[i] = last.t, TRACE, False
        return out


def fingerprint(transitions):
    return [(tr.netns, tr.cookie, tr.old, tr.new, tr.t, tr.source, tr.stayed, tr.stayed_at_least,
             tr.family, tr.local, tr.remote, tr.corrects) for tr in transitions]


@pytest.mark.parametrize("seed", range(12))
def test_pending_events_give_the_same_transitions(seed):
    every, lazy, pending = Reference(event_horizon=3.0), Tracker(event_horizon=3.0), PendingEvents()
    every.miss_limit = lazy.miss_limit = 2
    lost_every = lost_lazy = 0
    seen = 0
    for now, chunks, socks in history(seed):
        parts = [(ns, table(rows)) for ns, rows in socks.items()]
        for chunk in chunks:
            events, lost = parse_chunk(chunk)
            every.add_events(events)
            lost_every += lost
            lost_lazy += pending.add(chunk)
        want = every.observe(parts, now)
        lazy.add_events(pending.claim(lazy.wanted_ports(parts)))
        got = lazy.observe(parts, now)
        pending.prune(now - lazy.event_horizon)
        assert fingerprint(got) == fingerprint(want)
        seen += sum(tr.source.value == "trace" for tr in want)
        for ns, tab in parts:
            a, b = every.ages(ns, tab, now), lazy.ages(ns, tab, now)
            assert np.array_equal(a.seconds, b.seconds, equal_nan=True)
            assert np.array_equal(a.source, b.source)
    assert lost_lazy == lost_every
    assert seen > 0  # the history did exercise traced transitions


def test_unwanted_events_are_never_parsed_and_expire():
    p = PendingEvents()
    p.add(b"".join(line(float(i), 2000 + i, 80, 1, 8) for i in range(100)))
    assert p.claim(np.array([(80 << 16) | 5000], np.uint32)) == []
    assert len(p) == 100
    p.prune(49.0)
    assert len(p) == 50 and p.t.min() == 50.0
    got = p.claim(np.array([(2070 << 16) | 80], np.uint32))
    assert [(e.t, e.local[1], e.new) for e in got] == [(70.0, 2070, 8)]


def test_each_claim_filters_by_its_own_pairs_only():
    """The filter of wanted pairs is kept and cleared between claims: a
    pair wanted once is not claimed again by a later look-up of others."""
    p = PendingEvents()
    p.add(line(1.0, 2001, 80, 1, 8) + line(2.0, 2002, 80, 1, 8))
    assert [e.local[1] for e in p.claim(np.array([(2001 << 16) | 80], np.uint32))] == [2001]
    p.add(line(3.0, 2001, 80, 8, 9))
    got = p.claim(np.array([(2002 << 16) | 80], np.uint32))
    assert [(e.t, e.local[1]) for e in got] == [(2.0, 2002)]
    assert len(p) == 1 and p.claim(np.array([], np.uint32)) == []
    assert [e.new for e in p.claim(np.array([(2001 << 16) | 80], np.uint32))] == [9]
