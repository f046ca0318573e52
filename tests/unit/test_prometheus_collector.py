"""The scrape-time collector on built and recorded snapshots.

Every test registers the collector in a fresh CollectorRegistry and reads
exact sample values and label sets back from it (and from its text
exposition): per-owner counts add up, caps hold, and sockets that are gone
leave no series.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tcplinger.collect import kernel as kernel_reader
from tcplinger.collect import procfs
from tcplinger.diagnose.builder import SocketBuilder, namespace, owners_for
from tcplinger.diagnose.engine import diagnose
from tcplinger.export.collector import TcplingerCollector
from tcplinger.export.prometheus import AGE_BUCKETS, Limits, Scrape, build
from tcplinger.model.kernel import KernelContext, SockStat
from tcplinger.model.workload import Workload
from tcplinger.model.socket import Age, AgeSource, NetnsRef, Owner

DATA = Path(__file__).resolve().parents[1] / "data" / "proc" / "netns-mix"


def registry_for(*scrapes, limits=Limits()):
    """A fresh registry whose collector returns ``scrapes`` in turn, the
    last one again and again (an exception instance is raised instead)."""
    queue = list(scrapes)

    def source():
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    reg = CollectorRegistry()
    reg.register(TcplingerCollector(source, limits))
    return reg


def samples(reg, name):
    """``{frozenset(labels.items()): value}`` of one sample name, from a
    single collection of the registry (parsed back from the exposition)."""
    return from_text(generate_latest(reg).decode(), name)


def from_text(text, name):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                out[frozenset(s.labels.items())] = s.value
    return out


def L(**labels):  # noqa: N802 - reads like a label set
    return frozenset(labels.items())


def sockets(reg):
    return {(dict(k)["netns"], dict(k)["state"], dict(k)["owner"]): v
            for k, v in samples(reg, "tcplinger_sockets").items()}


# ---- tcplinger_sockets: states, owners, caps ------------------------------------

def populated():
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:8080", "10.0.0.9:40000", inode=1000, count=5)  # api
    b.add("CLOSE_WAIT", "10.0.0.1:8081", "10.0.0.9:41000", inode=2000, count=3)  # worker
    b.add("CLOSE_WAIT", "10.0.0.1:8082", "10.0.0.9:42000", inode=3000, count=2)  # nobody found
    b.add("TIME_WAIT", "10.0.0.1:8080", "10.0.0.8:50000", inode=0, timer=3, expires_ms=30_000,
          count=4)
    b.add("ESTABLISHED", "10.0.0.1:8080", "10.0.0.7:45000", inode=4000, count=6)
    b.add("LISTEN", "0.0.0.0:8080", inode=900)
    owners = {**owners_for(1000, 5, 100, "api"), **owners_for(2000, 3, 200, "worker"),
              **owners_for(4000, 6, 100, "api")}
    return namespace(b.table(), name="web", owners=owners)


def test_sockets_by_state_and_owner():
    reg = registry_for(Scrape([populated()], owners_resolved=True))
    assert sockets(reg) == {
        ("web", "CLOSE_WAIT", "api"): 5,
        ("web", "CLOSE_WAIT", "worker"): 3,
        ("web", "CLOSE_WAIT", "unknown"): 2,  # owned (inode != 0) but no process found
        ("web", "TIME_WAIT", "none"): 4,  # inode 0: no process holds them
        # ESTABLISHED is not an owner state: never attributed, even when
        # the owner map happens to know the inode.
        ("web", "ESTABLISHED", "unknown"): 6,
        ("web", "LISTEN", "unknown"): 1,
    }


def test_owners_not_looked_up():
    ns = populated()
    reg = registry_for(Scrape([namespace(ns.table, name="web", owners=None)]))
    got = sockets(reg)
    assert got[("web", "CLOSE_WAIT", "unknown")] == 10
    assert got[("web", "TIME_WAIT", "none")] == 4
    assert not any(owner in ("api", "worker") for _, _, owner in got)


def test_top_owners_cap_sums_the_rest():
    b = SocketBuilder()
    owners = {}
    inode = 10_000
    for k in range(1, 16):  # process k holds k CLOSE_WAIT sockets
        b.add("CLOSE_WAIT", f"10.0.0.1:{9000 + k}", "10.0.0.9:30000", inode=inode, count=k)
        owners.update(owners_for(inode, k, 1000 + k, f"app{k:02d}"))
        inode += k
    ns = namespace(b.table(), name="big", owners=owners)
    reg = registry_for(Scrape([ns]), limits=Limits(top_owners=3))
    got = sockets(reg)
    assert got == {("big", "CLOSE_WAIT", "app15"): 15, ("big", "CLOSE_WAIT", "app14"): 14,
                   ("big", "CLOSE_WAIT", "app13"): 13,
                   ("big", "CLOSE_WAIT", "other"): sum(range(1, 13))}
    assert sum(got.values()) == 120


def test_top_owners_zero_puts_everyone_in_other():
    reg = registry_for(Scrape([populated()]), limits=Limits(top_owners=0))
    got = sockets(reg)
    assert got[("web", "CLOSE_WAIT", "other")] == 8
    assert got[("web", "CLOSE_WAIT", "unknown")] == 2


def test_same_name_processes_share_a_label_and_shared_sockets_count_once():
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.9:1000", inode=100, count=4)
    owners = owners_for(100, 2, 11, "nginx")
    owners.update(owners_for(102, 2, 12, "nginx"))
    # inode 100 is also held by pid 13 (an fd inherited over fork)
    owners[100] = owners[100] + (Owner(pid=13, comm="helper", fd=9),)
    reg = registry_for(Scrape([namespace(b.table(), name="n", owners=owners)]))
    assert sockets(reg) == {("n", "CLOSE_WAIT", "nginx"): 4}


def test_no_series_left_for_sockets_that_are_gone():
    b = SocketBuilder()
    b.add("LISTEN", "0.0.0.0:8080", inode=900)
    quiet = namespace(b.table(), name="web", owners={})
    first = Scrape([populated()], findings=diagnose([populated()]))
    reg = registry_for(first, Scrape([quiet], findings=diagnose([quiet])))
    before = generate_latest(reg).decode()
    assert 'owner="api"' in before and "tcplinger_socket_age_seconds_bucket" in before
    assert "tcplinger_finding{" in before
    after = generate_latest(reg).decode()
    assert sockets_from_text(after) == {("web", "LISTEN", "unknown"): 1}
    for gone in ('owner="api"', 'owner="worker"', 'state="CLOSE_WAIT"', 'state="TIME_WAIT"',
                 "tcplinger_socket_age_seconds_bucket{", "tcplinger_finding{",
                 "tcplinger_ephemeral_ports_used{"):
        assert gone not in after


def sockets_from_text(text):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "tcplinger_sockets":
                out[(s.labels["netns"], s.labels["state"], s.labels["owner"])] = s.value
    return out


def test_namespaces_and_containers_are_separate_series():
    a = populated()
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.1.0.1:80", "10.1.0.2:1000", inode=1000, count=7)
    pod = namespace(b.table(), name=None, inode=4026532999,
                    owners=owners_for(1000, 7, 300, "api"))
    workload = Workload("containerd", "5d1f3c2b9a8e", pod_namespace="shop", pod_name="cart",
                        containers=("api", "envoy"))
    pod = type(pod)(**{**pod.__dict__, "netns": NetnsRef(4026532999, None, workload.label(),
                                                         workload)})
    reg = registry_for(Scrape([a, pod]))
    got = samples(reg, "tcplinger_sockets")
    assert got[L(netns="web", container="", pod="", state="CLOSE_WAIT", owner="api")] == 5
    # one pod label per pod: bounded, whatever the number of its sockets
    assert got[L(netns="pod:shop/cart", container="pod:shop/cart", pod="shop/cart",
                 state="CLOSE_WAIT", owner="api")] == 7


# ---- ages --------------------------------------------------------------------------

def test_age_histograms_by_source():
    b = SocketBuilder()
    # TIME_WAIT: 60 s minus the timer left -> 10 s and 55 s, exact (timer)
    b.add("TIME_WAIT", "10.0.0.1:80", "10.0.0.2:1000", inode=0, timer=3, expires_ms=50_000)
    b.add("TIME_WAIT", "10.0.0.1:80", "10.0.0.2:2000", inode=0, timer=3, expires_ms=5_000)
    # CLOSE_WAIT: tcp_info last_ack_recv, a lower bound
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.3:1000", inode=100, last_ack_recv=400_000)
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.3:2000", inode=200, last_ack_recv=2_000)
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.3:3000", inode=300)  # no age: not observed
    reg = registry_for(Scrape([namespace(b.table(), name="n")]))
    buckets = samples(reg, "tcplinger_socket_age_seconds_bucket")

    def bucket(state, source, le):
        return buckets[L(netns="n", container="", pod="", state=state, source=source, le=le)]

    assert bucket("TIME_WAIT", "timer", "5.0") == 0
    assert bucket("TIME_WAIT", "timer", "15.0") == 1
    assert bucket("TIME_WAIT", "timer", "60.0") == 2
    assert bucket("CLOSE_WAIT", "last_recv", "1.0") == 0
    assert bucket("CLOSE_WAIT", "last_recv", "5.0") == 1
    assert bucket("CLOSE_WAIT", "last_recv", "300.0") == 1
    assert bucket("CLOSE_WAIT", "last_recv", "600.0") == 2
    assert bucket("CLOSE_WAIT", "last_recv", "+Inf") == 2
    assert len(buckets) == 2 * (len(AGE_BUCKETS) + 1)  # no timer series for CLOSE_WAIT
    sums = samples(reg, "tcplinger_socket_age_seconds_sum")
    assert sums[L(netns="n", container="", pod="", state="TIME_WAIT", source="timer")] == 65.0
    assert sums[L(netns="n", container="", pod="", state="CLOSE_WAIT", source="last_recv")] == 402.0
    oldest = samples(reg, "tcplinger_socket_oldest_age_seconds")
    assert oldest == {L(netns="n", container="", pod="", state="TIME_WAIT", source="timer"): 55.0,
                      L(netns="n", container="", pod="", state="CLOSE_WAIT", source="last_recv"): 400.0}


def test_tracker_ages_keep_their_source():
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.3:1000", inode=100, count=3)
    ages = [Age(700.0, False, AgeSource.TRACE), Age(20.0, False, AgeSource.FIRST_SEEN),
            Age(None, False, AgeSource.UNKNOWN)]
    reg = registry_for(Scrape([namespace(b.table(), name="n", ages=ages)]))
    oldest = samples(reg, "tcplinger_socket_oldest_age_seconds")
    assert oldest == {L(netns="n", container="", pod="", state="CLOSE_WAIT", source="trace"): 700.0,
                      L(netns="n", container="", pod="", state="CLOSE_WAIT", source="first_seen"): 20.0}


def test_fin_wait2_past_timeout():
    b = SocketBuilder()
    # held open by a process that only shut down its sending side
    b.add("FIN_WAIT2", "10.0.0.1:5000", "10.0.0.2:80", inode=100, last_ack_recv=120_000, count=2)
    b.add("FIN_WAIT2", "10.0.0.1:6000", "10.0.0.2:80", inode=200, last_ack_recv=59_000)
    # an orphan minisocket: its timer says 40 s of 60, never past the timeout
    b.add("FIN_WAIT2", "10.0.0.1:7000", "10.0.0.2:80", inode=0, timer=3, expires_ms=20_000)
    reg = registry_for(Scrape([namespace(b.table(), name="n", sysctls={"tcp_fin_timeout": 60})]))
    assert samples(reg, "tcplinger_fin_wait2_past_timeout") == {L(netns="n", container="", pod=""): 2}


# ---- limits, counters, conntrack, ports -----------------------------------------------

def test_limits_counters_and_conntrack():
    b = SocketBuilder()
    b.add("TIME_WAIT", "10.0.0.1:80", "10.0.0.2:1000", inode=0, timer=3, expires_ms=1000, count=3)
    b.add("FIN_WAIT2", "10.0.0.1:80", "10.0.0.3:1000", inode=0, timer=3, expires_ms=1000)
    b.add("LAST_ACK", "10.0.0.1:80", "10.0.0.4:1000", inode=0)  # orphan, full socket
    ns = namespace(b.table(), name="n", conntrack=(1200, 262144),
                   sysctls={"tcp_max_tw_buckets": 4096, "ip_local_port_range": (20000, 20999),
                            "tcp_max_orphans": 8192},
                   sockstat=SockStat(inuse=5, orphan=17, tw=3),
                   tcpext={"TCPTimeWaitOverflow": 7, "TCPAbortOnClose": 2, "TW": 40})
    reg = registry_for(Scrape([ns]))
    n = L(netns="n", container="", pod="")
    assert samples(reg, "tcplinger_orphans") == {n: 5}
    assert samples(reg, "tcplinger_timewait_sockets") == {n: 4}
    assert samples(reg, "tcplinger_ephemeral_ports") == {n: 1000}
    sysctl = samples(reg, "tcplinger_sysctl")
    assert sysctl[L(netns="n", container="", pod="", name="tcp_max_tw_buckets")] == 4096
    assert sysctl[L(netns="n", container="", pod="", name="tcp_fin_timeout")] == 60
    assert sysctl[L(netns="n", container="", pod="", name="tcp_max_orphans")] == 8192
    assert not any(dict(k)["name"] == "ip_local_port_range" for k in sysctl)
    assert samples(reg, "tcplinger_tcpext_total") == {
        L(netns="n", container="", pod="", counter="TW"): 40,
        L(netns="n", container="", pod="", counter="TCPTimeWaitOverflow"): 7,
        L(netns="n", container="", pod="", counter="TCPAbortOnClose"): 2}
    assert samples(reg, "tcplinger_conntrack_entries") == {n: 1200}
    assert samples(reg, "tcplinger_conntrack_max") == {n: 262144}
    assert samples(reg, "tcplinger_host_orphans") == {L(): 17}
    assert samples(reg, "tcplinger_host_max_orphans") == {L(): 8192}


def test_ephemeral_ports_busiest_destinations():
    b = SocketBuilder()
    b.add("ESTABLISHED", "10.0.0.1:40000", "10.0.0.50:5432", vary="sport", count=50)
    b.add("TIME_WAIT", "10.0.0.1:41000", "10.0.0.60:443", vary="sport", inode=0, timer=3,
          expires_ms=1000, count=30)
    b.add("ESTABLISHED", "10.0.0.1:42000", "10.0.0.70:80", vary="sport", count=10)
    b.add("ESTABLISHED", "[fd00::1]:43000", "[fd00::9]:80", vary="sport", count=20)
    b.add("ESTABLISHED", "10.0.0.1:10000", "10.0.0.80:80", vary="sport", count=99)  # not in range
    # a server listening inside the range: its accepted sockets are not client ports
    b.add("LISTEN", "0.0.0.0:45000", inode=5)
    b.add("ESTABLISHED", "10.0.0.1:45000", "10.0.0.90:1000", count=200)
    ns = namespace(b.table(), name="n", sysctls={"ip_local_port_range": (32768, 60999)})
    reg = registry_for(Scrape([ns]), limits=Limits(top_destinations=3))
    assert samples(reg, "tcplinger_ephemeral_ports_used") == {
        L(netns="n", container="", pod="", source="10.0.0.1", destination="10.0.0.50:5432"): 50,
        L(netns="n", container="", pod="", source="10.0.0.1", destination="10.0.0.60:443"): 30,
        L(netns="n", container="", pod="", source="fd00::1", destination="[fd00::9]:80"): 20,
    }


# ---- findings ---------------------------------------------------------------------

def test_findings_from_the_diagnosis():
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:8080", "10.0.0.9:40000", inode=5000, recv_q=1, count=12,
          last_ack_recv=15_000)  # past close-wait-leak's min_age
    ns = namespace(b.table(), name="web", owners=owners_for(5000, 12, 4242, "java"))
    findings = diagnose([ns])
    assert [f.rule for f in findings] == ["close-wait-leak"]
    reg = registry_for(Scrape([ns], findings=findings))
    key = L(rule="close-wait-leak", severity="warning", netns="web", container="", pod="",
            owner="java", command="java")
    assert samples(reg, "tcplinger_finding") == {key: 1}
    assert samples(reg, "tcplinger_finding_sockets") == {key: 12}


def test_findings_absent_when_diagnosis_did_not_run():
    reg = registry_for(Scrape([populated()], findings=None))
    assert samples(reg, "tcplinger_finding") == {}


# ---- the exporter's own metrics ---------------------------------------------------------

def test_scrape_errors_and_success():
    reg = registry_for(OSError("sock_diag went away"), Scrape([populated()], errors=["diagnose"]),
                       Scrape([populated()]))
    first = generate_latest(reg).decode()  # each collection is one scrape
    assert from_text(first, "tcplinger_scrape_success") == {L(): 0}
    assert from_text(first, "tcplinger_scrape_errors_total")[L(phase="scrape")] == 1
    assert from_text(first, "tcplinger_sockets") == {}
    second = generate_latest(reg).decode()
    assert from_text(second, "tcplinger_scrape_success") == {L(): 1}
    assert from_text(second, "tcplinger_scrape_errors_total") == {
        L(phase="scrape"): 1, L(phase="owners"): 0, L(phase="diagnose"): 1}
    assert len(from_text(second, "tcplinger_sockets")) == 6
    third = generate_latest(reg).decode()  # counters keep their value, nothing new failed
    assert from_text(third, "tcplinger_scrape_errors_total") == {
        L(phase="scrape"): 1, L(phase="owners"): 0, L(phase="diagnose"): 1}


def test_scrape_metadata():
    reg = registry_for(Scrape([populated()], skipped=2, owners_resolved=True,
                              phases={"snapshot": 0.25}))
    text = generate_latest(reg).decode()
    got = {s.name: s for fam in text_string_to_metric_families(text) for s in fam.samples
           if s.name.startswith("tcplinger_scrape") or s.name.startswith("tcplinger_namespaces")
           or s.name == "tcplinger_owners_resolved"}
    assert got["tcplinger_namespaces"].value == 1
    assert got["tcplinger_namespaces_skipped"].value == 2
    assert got["tcplinger_owners_resolved"].value == 1
    phases = samples(reg, "tcplinger_scrape_phase_seconds")
    assert phases[L(phase="snapshot")] == 0.25 and L(phase="build") in phases
    assert 0 < got["tcplinger_scrape_duration_seconds"].value < 5


def test_registering_takes_no_snapshot():
    calls = []
    reg = CollectorRegistry()
    reg.register(TcplingerCollector(lambda: calls.append(1) or Scrape([])))
    assert calls == []
    generate_latest(reg)
    assert calls == [1]


def test_label_collision_gets_the_inode():
    one = namespace(SocketBuilder().table(), name="x", inode=1)
    two = namespace(SocketBuilder().table(), name="x", inode=2)
    fams = {f.name: f for f in build(Scrape([one, two]))}
    assert {s.labels["netns"] for s in fams["tcplinger_orphans"].samples} == {"x", "x@2"}


# ---- a recorded namespace ---------------------------------------------------------------

def recorded():
    table = procfs.read_sockets(DATA / "net")
    kernel = kernel_reader.read_kernel_context(DATA, proc_net=DATA / "net")
    from tcplinger.diagnose.inputs import NamespaceInput
    return NamespaceInput(NetnsRef(4026532500, "mix"), kernel, table), table, kernel


def test_recorded_namespace_matches_ss():
    inp, table, kernel = recorded()
    reg = registry_for(Scrape([inp]))
    by_state = {}
    for (_, state, _), v in sockets(reg).items():
        by_state[state] = by_state.get(state, 0) + v
    ss_names = {"ESTAB": "ESTABLISHED", "FIN-WAIT-2": "FIN_WAIT2", "FIN-WAIT-1": "FIN_WAIT1",
                "TIME-WAIT": "TIME_WAIT", "CLOSE-WAIT": "CLOSE_WAIT", "LAST-ACK": "LAST_ACK",
                "LISTEN": "LISTEN", "SYN-SENT": "SYN_SENT", "CLOSING": "CLOSING",
                "SYN-RECV": "SYN_RECV"}
    expected = {}
    for line in (DATA / "ss.txt").read_text().splitlines():
        state = ss_names[line.split()[0]]
        expected[state] = expected.get(state, 0) + 1
    assert by_state == expected
    want = json.loads((DATA / "expected_kernel.json").read_text())
    sysctl = samples(reg, "tcplinger_sysctl")
    for name in ("tcp_fin_timeout", "tcp_max_tw_buckets", "tcp_tw_reuse"):
        assert sysctl[L(netns="mix", container="", pod="", name=name)] == want["sysctls"][name]
    assert samples(reg, "tcplinger_tcpext_total")[
        L(netns="mix", container="", pod="", counter="TW")] == want["tcpext"]["TW"]
    # orphans as ss recorded them: closed by their process (ino:0) in a
    # teardown state; the ino:0 ESTAB lines are not accepted yet, not orphans
    teardown = ("FIN-WAIT-1", "FIN-WAIT-2", "CLOSING", "LAST-ACK", "TIME-WAIT")
    orphans = [line.split()[0] for line in (DATA / "ss.txt").read_text().splitlines()
               if " ino:0 " in line and line.split()[0] in teardown]
    # two full FIN_WAIT2 (timer keepalive), two FIN_WAIT2 minisockets, two TIME_WAIT
    assert sorted(orphans) == ["FIN-WAIT-2"] * 4 + ["TIME-WAIT"] * 2
    assert samples(reg, "tcplinger_orphans") == {L(netns="mix", container="", pod=""): 6}


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool not installed (Debian package prometheus)")
def test_exposition_passes_promtool_lint():
    inp, _, _ = recorded()
    ns = populated()
    reg = registry_for(Scrape([inp, ns], findings=diagnose([ns])))
    text = generate_latest(reg)
    proc = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_kernel_context_without_sysctls_still_exports():
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.3:1000", inode=100)
    from tcplinger.diagnose.inputs import NamespaceInput
    inp = NamespaceInput(NetnsRef(9, "bare"), KernelContext(), b.table())
    reg = registry_for(Scrape([inp]))
    assert sockets(reg) == {("bare", "CLOSE_WAIT", "unknown"): 1}
    assert samples(reg, "tcplinger_fin_wait2_past_timeout") == {}
    assert samples(reg, "tcplinger_ephemeral_ports_used") == {}


def test_age_histograms_can_be_left_out():
    b = SocketBuilder()
    b.add("TIME_WAIT", "10.0.0.1:80", "10.0.0.2:1000", inode=0, timer=3, expires_ms=50_000)
    reg = registry_for(Scrape([namespace(b.table(), name="n")]),
                       limits=Limits(age_histograms=False))
    assert samples(reg, "tcplinger_socket_age_seconds_bucket") == {}
    assert samples(reg, "tcplinger_socket_oldest_age_seconds") == {
        L(netns="n", container="", pod="", state="TIME_WAIT", source="timer"): 10.0}


def test_name_filter_of_the_exposition():
    """``/metrics?name[]=...`` (restricted registry) needs describe()."""
    reg = registry_for(Scrape([populated()]))
    text = generate_latest(reg.restricted_registry(["tcplinger_sockets"])).decode()
    assert sockets_from_text(text)[("web", "CLOSE_WAIT", "api")] == 5
    assert "tcplinger_orphans" not in text
