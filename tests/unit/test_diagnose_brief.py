"""The exporter's brief diagnosis (engine.diagnose(brief=True), issue 16:
a scrape of 150 pods) gives the findings the full one gives, as far as
the exporter shows them (rule, severity, namespace, count, owners; title
and confidence too), in the same order, on random namespaces whose
teardown sockets have other ends in each other; and it does not look for
the other ends, the evidence it leaves out."""

from __future__ import annotations

import random

import pytest

from tcplinger.diagnose import engine
from tcplinger.diagnose.builder import SocketBuilder, namespace
from tcplinger.diagnose.rules import _common
from tcplinger.export import exposition, prometheus
from tcplinger.model.socket import Owner

STATES = ("ESTABLISHED", "LISTEN", "CLOSE_WAIT", "FIN_WAIT2", "FIN_WAIT1", "TIME_WAIT",
          "LAST_ACK", "CLOSING")
ADDRS = ("10.0.0.1", "10.0.0.2", "10.0.0.3", "127.0.0.1")
COMMS = ("api", "worker", "nginx")


def _namespaces(rnd: random.Random) -> list:
    builders = [SocketBuilder() for _ in range(rnd.randrange(2, 5))]
    for b in builders:
        for _ in range(rnd.randrange(1, 12)):
            state = rnd.choice(STATES)
            last = rnd.choice((None, 0, 1500, 90_000))
            b.add(state, f"{rnd.choice(ADDRS)}:{rnd.choice((80, 8080, 40000))}",
                  "0.0.0.0:0" if state == "LISTEN"
                  else f"{rnd.choice(ADDRS)}:{rnd.choice((80, 443, 40100))}",
                  count=rnd.randrange(1, 6), inode=rnd.choice((None, None, 0)),
                  recv_q=rnd.choice((0, 1, 5)), shutdown=rnd.choice((-1, 2, 3)),
                  vary=rnd.choice(("sport", "dport")), last_ack_recv=last,
                  last_data_recv=last)
    for _ in range(rnd.randrange(0, 4)):  # the two ends of connections, in two namespaces
        a, b = rnd.sample(builders, 2)
        here, there = f"10.0.1.{rnd.randrange(1, 4)}", f"10.0.2.{rnd.randrange(1, 4)}"
        n, last = rnd.randrange(1, 5), rnd.choice((None, 1500, 90_000))
        a.add("CLOSE_WAIT", f"{here}:80", f"{there}:50000", count=n, vary="dport",
              last_ack_recv=last)
        b.add(rnd.choice(("FIN_WAIT2", "CLOSE_WAIT")), f"{there}:50000", f"{here}:80",
              count=n, vary="sport", last_ack_recv=last)
    out = []
    for k, b in enumerate(builders):
        table = b.table()
        owners = {}
        for inode in sorted(set(table.rows["inode"].tolist()) - {0}):
            if rnd.random() < 0.8:
                holders = rnd.sample(range(3), rnd.choice((1, 1, 2)))
                owners[inode] = tuple(Owner(pid=100 * k + 10 + h, comm=COMMS[h], fd=inode % 50,
                                            cmdline=f"/usr/bin/{COMMS[h]} --port {k}")
                                      for h in sorted(holders))
        out.append(namespace(table, name=f"ns{k}", inode=4026532000 + k,
                             owners=owners if rnd.random() < 0.9 else None))
    return out


def _shown(f) -> tuple:
    return (f.rule, f.severity, f.netns, f.count, f.owners, f.title, f.confidence,
            f.confidence_reason)


class _Registry:
    def __init__(self, scrape):
        self.scrape = scrape

    def collect(self):
        return prometheus.build(self.scrape)


@pytest.mark.parametrize("seed", range(150))
def test_brief_findings_are_the_full_ones_as_the_exporter_shows_them(seed):
    inputs = _namespaces(random.Random(seed))
    full = engine.diagnose(inputs, sample_limit=0)
    brief = engine.diagnose(inputs, sample_limit=0, brief=True)
    assert [_shown(f) for f in brief] == [_shown(f) for f in full]
    assert exposition.text(_Registry(prometheus.Scrape(inputs, brief))) == \
        exposition.text(_Registry(prometheus.Scrape(inputs, full)))


def test_not_vacuous():
    """The random namespaces give both rules' findings, owned and not, and
    other ends found across namespaces."""
    rules, owned, ends = set(), 0, 0
    for seed in range(150):
        for f in engine.diagnose(_namespaces(random.Random(seed)), sample_limit=0):
            rules.add(f.rule)
            owned += bool(f.owners)
            ends += bool(f.evidence.get("other_end"))
    assert {"close-wait-leak", "half-closed-fin-wait-2"} <= rules
    assert owned > 50 and ends > 20


def test_brief_does_not_look_for_the_other_ends(monkeypatch):
    calls = []
    real = _common.other_ends  # what both rules' HeldSocketEvidence.here calls
    monkeypatch.setattr(_common, "other_ends", lambda *a: (calls.append(1), real(*a))[1])
    inputs = [x for seed in range(20) for x in _namespaces(random.Random(seed))[:1]]
    n = len(engine.diagnose(inputs, sample_limit=0))
    assert len(calls) > 10 and n
    calls.clear()
    engine.diagnose(inputs, sample_limit=0, brief=True)
    assert calls == []
