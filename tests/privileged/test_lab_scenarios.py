"""Every lab scenario, on the real kernel, with small timeouts.

Each variant runs once through the CLI (`tcplinger lab run ... --json`),
several at a time: runs never collide (each has its own namespaces,
addresses and server port), so they go in parallel and the whole module
takes about a minute. Every test asserts that the scenario's own expected
outcome held (its checks, lab/checks.py) and then, independently, the
behaviour that matters in the JSON: which states, for how long, who sent
what, what the diagnosis said. Tolerances: lab/slack.py (a timer fires up
to one timer-wheel granule late: 256 ms for timeouts of 2-16 s at HZ=250,
2.048 s for 16-131 s) plus the poll interval and 0.15 s of scheduling.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from labruns import LabRuns, lab_argv  # tests/privileged is on sys.path (conftest.py)

pytestmark = pytest.mark.privileged(needs=("nft", "tcpdump", "conntrack"))

SRC = str(Path(__file__).resolve().parents[2] / "src")

#: id -> (scenario, --set values, extra arguments)
RUNS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "orphan": ("orphan-fin-wait-2", ("tcp_fin_timeout=3",), ()),
    "orphan-65": ("orphan-fin-wait-2", ("tcp_fin_timeout=65",), ()),
    "orphan-linger2": ("orphan-fin-wait-2", ("tcp_fin_timeout=30", "linger2=2"), ()),
    "orphan-abort": ("orphan-fin-wait-2", ("linger2=-1",), ()),
    "orphan-polls": ("orphan-fin-wait-2", ("tcp_fin_timeout=2",), ("--no-tracefs",)),
    "half-close": ("half-close-fin-wait-2", ("hold=4", "tcp_fin_timeout=2"), ()),
    "cw-nokeepalive": ("close-wait-leak", ("keepalive=0",), ()),
    "cw-alive": ("close-wait-leak", ("peer=alive",), ()),
    "cw-gone": ("close-wait-leak", ("peer=gone",), ()),
    "cw-silent": ("close-wait-leak", ("peer=silent",), ()),
    "buggy": ("buggy-client-keepalive", (), ()),
    "proper": ("buggy-client-keepalive", ("client=proper",), ()),
    "linger": ("linger-abort", (), ()),
    "linger-client": ("linger-abort", ("closer=client",), ()),
    "linger-off": ("linger-abort", ("linger=0",), ()),
    "tw-overflow": ("time-wait-overflow", (), ()),
    "ports": ("port-exhaustion", (), ()),
    "ports-reuse": ("port-exhaustion", ("tcp_tw_reuse=1",), ()),
    "ports-reuse-loopback-only": ("port-exhaustion", ("tcp_tw_reuse=2",), ()),
    "fin-wait-1": ("fin-dropped", (), ()),
    "fin-wait-1-owned": ("fin-dropped", ("owner=owned",), ()),
    "last-ack": ("fin-dropped", ("state=last_ack",), ()),
    "last-ack-owned": ("fin-dropped", ("state=last_ack", "owner=owned"), ()),
    "conntrack": ("conntrack-expiry", (), ()),
    "conntrack-orphan": ("conntrack-expiry", ("client=orphan",), ()),
    "firewall-keepalive": ("firewall-keepalive", (), ()),
    "firewall-no-keepalive": ("firewall-keepalive", ("dyn_keepalive=0",), ()),
}

#: Runs at once. Two CPUs here; more would stretch timings with scheduling
#: delays (the checks allow 0.15 s of it).
PARALLEL = 6
#: CPU seconds every run together may use (their own and their children's):
#: a cost that load does not stretch, unlike the wall time: 40 measured at
#: load 25 (stress-ng --cpu 4 on top of other runs, 906 s of runs); a
#: 262144-bucket hash would add 2.7 ms x 100 dumps a second, ~245 more
#: (lab/topology.py)
CPU_BUDGET_S = 80
#: The longest run first, so the pool drains evenly.
ORDER = ("firewall-no-keepalive", "firewall-keepalive", "orphan-65", "conntrack",
         "conntrack-orphan")


RESULTS = LabRuns({rid: lab_argv(scenario, sets) + list(extra)
                   for rid, (scenario, sets, extra) in RUNS.items()},
                  order=ORDER, parallel=PARALLEL, name="lab-run")


@pytest.fixture(scope="module")
def lab():
    RESULTS.start()
    yield RESULTS
    RESULTS.shutdown()


# ---- reading a run's JSON -------------------------------------------------------

def socks(doc, side):
    return [s for s in doc["sockets"] if s["side"] == side]


def states(doc, side, n=0):
    return socks(doc, side)[n]["states"]


def time_in(doc, side, state, n=0, **flags):
    total = 0.0
    for s in states(doc, side, n):
        if s["state"] != state or any(s.get(k, False) != v for k, v in flags.items()):
            continue
        end = s["end_s"] if s["end_s"] is not None else doc["duration_s"]
        total += end - s["start_s"]
    return total


def still_held(doc, side, state, n=0):
    last = states(doc, side, n)[-1]
    return last["state"] == state and last["end_s"] is None


def ever(doc, side, state):
    return any(s["state"] == state for sock in socks(doc, side) for s in sock["states"])


def sent(doc, src, flags, tag=None, dropped=None):
    return [p for p in doc["packets"] if p["src"] == src and all(c in p["flags"] for c in flags)
            and (tag is None or p.get("tag") == tag)
            and (dropped is None or ("dropped_by" in p) == dropped)]


def found(doc, rule, side=None, at=None):
    return [f for f in doc["diagnosis"] if f["rule"] == rule
            and (side is None or f["side"] == side) and (at is None or f["at"] == at)]


#: timer-wheel granule at HZ=250 for 2-16 s timeouts, poll interval, scheduling
SLACK_SHORT = 0.256 + 0.02 + 0.15
#: the nominal poll interval inside SLACK_SHORT and the default ``early``
INTERVAL = 0.02


def poll_window(doc) -> float:
    """The run's own widest poll window (``recorder.longest_poll_gap_s``:
    a dump's start to the next one's end). A boundary that only polls see
    (a minisocket's expiry; every boundary without tracefs) is placed
    within half of it, so a span is off by at most one window. On a loaded
    machine it was 0.3-1.1 s (load 17 plus stress-ng --cpu 4), not 20 ms."""
    return max(INTERVAL, doc["recorder"]["longest_poll_gap_s"])


def about(doc, value, expected, late=SLACK_SHORT, early=0.07, polled=True):
    """``value`` is ``expected`` seconds, ``early``/``late`` allowed (their
    nominal 20 ms of polls replaced by the run's measured window when the
    span has poll-placed ends). Says what and why when it is not."""
    polls = poll_window(doc) - INTERVAL if polled else 0.0
    lo, hi = expected - early - polls, expected + late + polls
    assert lo <= value <= hi, (f"{value:.3f} s, expected {expected} s within "
                               f"{lo:.3f}..{hi:.3f} (longest poll window "
                               f"{doc['recorder']['longest_poll_gap_s']} s)")
    return True


# ---- every run: its own expectations, and the JSON contract -------------------------

@pytest.mark.parametrize("rid", list(RUNS))
def test_expected_outcome_holds(lab, rid):
    doc = lab.get(rid)
    failed = [f"{c['id']}: {c['text']} (measured {c['measured']})" for c in doc["checks"]
              if not c["ok"]]
    assert not failed, f"{rid}: " + "; ".join(failed)
    assert doc["ok"] is True and doc["scenario"] == RUNS[rid][0]
    assert set(doc) >= {"scenario", "params", "kernel", "sockets", "checks", "diagnosis"}
    for s in doc["sockets"]:
        assert set(s) >= {"side", "local", "remote", "states"}
        for st in s["states"]:
            assert set(st) >= {"state", "start_s", "end_s"}
    rec = doc["recorder"]
    assert rec["poll_interval_s"] <= 0.05 and rec["trace_lost"] == 0
    assert rec["tracefs"] is ("--no-tracefs" not in RUNS[rid][2])


# ---- orphan-fin-wait-2 (seed 003) ---------------------------------------------------

def test_orphan_fin_wait2_lives_tcp_fin_timeout_then_vanishes(lab):
    doc = lab.get("orphan")
    last = states(doc, "client")[-1]
    assert last["state"] == "FIN_WAIT2" and last["minisock"] and last["orphan"]
    assert about(doc, time_in(doc, "client", "FIN_WAIT2"), 3.0)
    assert not ever(doc, "client", "TIME_WAIT")  # seed 003: "closed directly" holds
    assert still_held(doc, "server", "CLOSE_WAIT")
    assert found(doc, "orphan-fin-wait-2", "client", "fin_wait2")
    assert found(doc, "close-wait-leak", "server")


def test_orphan_fin_wait2_above_60s_lives_twice_the_excess(lab):
    """tcp_fin_timeout=65: 5 s as a full socket, then 5 s as a minisock."""
    doc = lab.get("orphan-65")
    assert about(doc, time_in(doc, "client", "FIN_WAIT2", minisock=False), 5.0)
    assert about(doc, time_in(doc, "client", "FIN_WAIT2", minisock=True), 5.0)
    assert about(doc, time_in(doc, "client", "FIN_WAIT2"), 10.0, late=2 * SLACK_SHORT)


def test_tcp_linger2_overrides_the_sysctl(lab):
    doc = lab.get("orphan-linger2")  # tcp_fin_timeout=30, TCP_LINGER2=2
    assert about(doc, time_in(doc, "client", "FIN_WAIT2"), 2.0)


def test_negative_linger2_aborts(lab):
    doc = lab.get("orphan-abort")
    assert len(sent(doc, "client", "R")) == 1
    assert time_in(doc, "client", "FIN_WAIT2") < 0.01
    assert not still_held(doc, "server", "CLOSE_WAIT")
    assert time_in(doc, "server", "CLOSE_WAIT") < 0.1


def test_polls_alone_give_the_same_timeline(lab):
    doc = lab.get("orphan-polls")
    assert doc["recorder"]["tracefs"] is False and doc["recorder"]["trace_events"] == 0
    seq = [s["state"] for s in states(doc, "client")]
    # FIN_WAIT1 lasts one RTT (~ms): polls every 20 ms usually miss it
    assert seq[-1] == "FIN_WAIT2" and seq[-2] in ("ESTABLISHED", "FIN_WAIT1"), seq
    assert about(doc, time_in(doc, "client", "FIN_WAIT2"), 2.0, late=SLACK_SHORT + 0.05,
                 early=0.1)


# ---- half-close-fin-wait-2 (seed 003) ------------------------------------------------

def test_half_closed_fin_wait2_has_no_timer_until_the_process_exits(lab):
    doc = lab.get("half-close")  # hold=4, tcp_fin_timeout=2
    owned = time_in(doc, "client", "FIN_WAIT2", orphan=False)
    orphan = time_in(doc, "client", "FIN_WAIT2", orphan=True)
    assert owned >= 3.9, owned  # far beyond tcp_fin_timeout: it does not apply
    assert about(doc, orphan, 2.0)
    assert found(doc, "half-closed-fin-wait-2", "client", "half_closed")
    assert not found(doc, "orphan-fin-wait-2", "client", "half_closed")


# ---- close-wait-leak (seed 004) ----------------------------------------------------

def test_close_wait_without_keepalive_never_ends(lab):
    doc = lab.get("cw-nokeepalive")
    assert still_held(doc, "server", "CLOSE_WAIT")
    assert not sent(doc, "server", ".", tag="keepalive")


def test_close_wait_with_a_live_peer_survives_keepalive(lab):
    doc = lab.get("cw-alive")
    assert still_held(doc, "server", "CLOSE_WAIT")
    probes = sent(doc, "server", ".", tag="keepalive")
    assert len(probes) >= 3 and not any("dropped_by" in p for p in probes)
    assert still_held(doc, "client", "FIN_WAIT2")  # half-closed, answering


def test_close_wait_of_a_gone_peer_ends_at_the_first_probe(lab):
    doc = lab.get("cw-gone")  # keepidle 2: not 2 + 1 x 3 as seed 004 says
    assert about(doc, time_in(doc, "server", "CLOSE_WAIT"), 2.0)
    assert len(sent(doc, "server", ".", tag="keepalive")) == 1
    assert len(sent(doc, "client", "R")) == 1


def test_close_wait_of_a_silent_peer_ends_after_every_probe(lab):
    doc = lab.get("cw-silent")  # 2 + 1 x 3: seed 004's formula, only here
    assert about(doc, time_in(doc, "server", "CLOSE_WAIT"), 5.0)
    dropped = sent(doc, "server", ".", tag="keepalive", dropped=True)
    assert len(dropped) == 3 and all(p["dropped_by"] == "nftables" for p in dropped)


# ---- buggy-client-keepalive (seeds 001, 002) -----------------------------------------

def test_buggy_client_leaves_the_server_fin_wait2_for_tcp_fin_timeout_only(lab):
    doc = lab.get("buggy")
    assert about(doc, time_in(doc, "server", "FIN_WAIT2"), 3.0)  # seed 001: "until reboot": no
    assert still_held(doc, "client", "CLOSE_WAIT")
    assert not sent(doc, "client", "F")
    # seed 002 by name: orphans on the listening port (issue 11)
    assert found(doc, "keepalive-timeout-fin-wait-2", "server")
    assert found(doc, "close-wait-leak", "client")


def test_proper_client_leaves_time_wait_on_the_server(lab):
    doc = lab.get("proper")
    assert sent(doc, "client", "F") and sent(doc, "server", "F")
    assert still_held(doc, "server", "TIME_WAIT")
    assert time_in(doc, "server", "FIN_WAIT2") < 0.5
    assert not found(doc, "close-wait-leak")


# ---- linger-abort (seed 001) --------------------------------------------------------

@pytest.mark.parametrize("rid,closer", [("linger", "server"), ("linger-client", "client")])
def test_so_linger_zero_resets_and_leaves_nothing(lab, rid, closer):
    doc = lab.get(rid)
    assert len(sent(doc, closer, "R")) == 1 and not sent(doc, closer, "F")
    for side in ("client", "server"):
        assert not any(ever(doc, side, st) for st in ("FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
                                                      "CLOSE_WAIT", "LAST_ACK"))
    assert doc["facts"]["peer_error"] == "ECONNRESET"


def test_without_linger_the_closer_keeps_time_wait(lab):
    doc = lab.get("linger-off")
    assert still_held(doc, "server", "TIME_WAIT") and not sent(doc, "server", "R")


# ---- time-wait-overflow, port-exhaustion ---------------------------------------------

def test_time_wait_overflow(lab):
    doc = lab.get("tw-overflow")  # 12 connections, tcp_max_tw_buckets=4
    tw = [s for s in socks(doc, "client") if any(x["state"] == "TIME_WAIT"
                                                  for x in s["states"])]
    assert len(socks(doc, "client")) == 12 and len(tw) == 4
    assert doc["facts"]["tw_overflow"] == 8
    assert found(doc, "time-wait-pressure", "client")


def test_port_exhaustion(lab):
    doc = lab.get("ports")  # 4 ports, 6 connections, tcp_tw_reuse=0
    assert doc["facts"]["connected"] == 4 and doc["facts"]["eaddrnotavail"] == 2
    # the tracepoint saw the failed connects too: SYN_SENT -> CLOSE without a port
    assert len(doc["failed_connects"]) == 2
    assert found(doc, "ephemeral-port-exhaustion", "client")


def test_tw_reuse_takes_over_time_wait(lab):
    doc = lab.get("ports-reuse")
    assert doc["facts"]["eaddrnotavail"] == 0 and doc["facts"]["connected"] == 6
    assert doc["facts"]["reused_tuples"] >= 2 and not doc["failed_connects"]


def test_tw_reuse_2_is_loopback_only(lab):
    doc = lab.get("ports-reuse-loopback-only")
    assert doc["facts"]["eaddrnotavail"] == 2


# ---- fin-dropped ----------------------------------------------------------------------

@pytest.mark.parametrize("rid,side,state", [
    ("fin-wait-1", "client", "FIN_WAIT1"), ("fin-wait-1-owned", "client", "FIN_WAIT1"),
    ("last-ack", "server", "LAST_ACK"), ("last-ack-owned", "server", "LAST_ACK")])
def test_dropped_fin_is_retransmitted_until_the_retry_limit(lab, rid, side, state):
    doc = lab.get(rid)  # tcp_orphan_retries = tcp_retries2 = 2
    held = time_in(doc, side, state)
    assert 1.83 <= held <= 3.74 + 0.2  # lab/scenarios/_common.py retry_bounds(2)
    fins = sent(doc, side, "F", dropped=True)
    assert 4 <= len(fins) <= 5 and not sent(doc, side, "F", dropped=False)
    assert not sent(doc, side, "R")  # given up silently
    assert not ever(doc, side, "TIME_WAIT")


# ---- conntrack-expiry ----------------------------------------------------------------

def test_conntrack_forgets_and_drops_the_late_fin(lab):
    doc = lab.get("conntrack")
    mb = doc["middlebox"]
    assert mb["name"] == "conntrack"
    labels = [s["label"] for s in mb["states"]]
    assert labels[-2:] == ["FIN_WAIT", "CLOSE_WAIT"]
    cw = mb["states"][-1]
    assert about(doc, cw["end_s"] - cw["start_s"], 2.0, late=0.1, early=0.1, polled=False)
    fins = sent(doc, "server", "F")
    assert fins and all(p.get("dropped_by") == "conntrack" for p in fins)
    assert fins[0]["t_s"] > cw["end_s"]  # the FIN came after the entry expired
    assert doc["facts"]["invalid_drops"] == len(fins)
    assert still_held(doc, "client", "FIN_WAIT2")  # left stuck for good
    assert found(doc, "conntrack-mismatch", "server", "ct_expired")


def test_conntrack_orphan_client_times_out_on_its_own(lab):
    doc = lab.get("conntrack-orphan")
    assert about(doc, time_in(doc, "client", "FIN_WAIT2"), 3.0)


# ---- firewall-keepalive (seed 000) ----------------------------------------------------

def test_ipfw_keepalives_do_not_stretch_linux_fin_wait2(lab):
    doc = lab.get("firewall-keepalive")
    assert about(doc, time_in(doc, "server", "FIN_WAIT2"), 5.0)
    fw2_end = [s for s in states(doc, "server") if s["state"] == "FIN_WAIT2"][-1]["end_s"]
    cw = [s for s in states(doc, "client") if s["state"] == "CLOSE_WAIT"][-1]
    assert cw["end_s"] is not None and cw["end_s"] > fw2_end
    # ended by the server kernel's reset to the first keepalive after FIN_WAIT2 went
    resets = sent(doc, "server", "R")
    assert resets and resets[0]["t_s"] > fw2_end and abs(resets[0]["t_s"] - cw["end_s"]) < 0.05
    ka = sent(doc, "ipfw", ".", tag="forged-keepalive")
    assert ka and {p["dst"] for p in ka} == {"client", "server"}
    assert doc["middlebox"]["states"][-1]["label"].endswith("RST")


def test_ipfw_without_keepalive_lets_the_rule_expire(lab):
    doc = lab.get("firewall-no-keepalive")
    assert about(doc, time_in(doc, "server", "FIN_WAIT2"), 5.0)
    assert still_held(doc, "client", "CLOSE_WAIT")
    assert not sent(doc, "ipfw", ".")
    rule = doc["middlebox"]["states"][-1]
    assert rule["label"] == "BOTH_SYN|FIN_REV" and rule["end_s"] is not None


# ---- the runs together ------------------------------------------------------------------

def test_concurrent_runs_do_not_collide(lab):
    docs = {rid: lab.get(rid) for rid in RUNS}
    assert len({d["run_id"] for d in docs.values()}) == len(docs)
    held = {rid: (d["registered_at"], d["released_at"]) for rid, d in docs.items()}
    overlap = [(a, b) for a in docs for b in docs if a < b
               and held[a][0] < held[b][1] and held[b][0] < held[a][1]]
    assert overlap  # they did run at the same time
    for a, b in overlap:
        assert docs[a]["slot"] != docs[b]["slot"], (a, b)
        addrs_a = {s["local"].rsplit(":", 1)[0] for s in docs[a]["sockets"]}
        addrs_b = {s["local"].rsplit(":", 1)[0] for s in docs[b]["sockets"]}
        assert not addrs_a & addrs_b, (a, b)


def test_the_lab_suite_is_quick(lab):
    print(lab.check_quick(CPU_BUDGET_S))
