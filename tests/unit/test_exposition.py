"""export/exposition.py writes the bytes prometheus_client's generate_latest
writes: on the exporter's own families (many namespaces, pods, findings),
the process collector, and every kind of family with odd names, values,
timestamps and the samples generate_latest moves to families of their own."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (CounterMetricFamily, GaugeHistogramMetricFamily,
                                    GaugeMetricFamily, HistogramMetricFamily,
                                    InfoMetricFamily, StateSetMetricFamily,
                                    SummaryMetricFamily, UnknownMetricFamily)
from prometheus_client.exposition import generate_latest

from tcplinger.diagnose.builder import SocketBuilder, namespace, owners_for
from tcplinger.diagnose.engine import diagnose
from tcplinger.export.collector import TcplingerCollector
from tcplinger.export.exposition import text
from tcplinger.export.prometheus import Scrape
from tcplinger.model.socket import NetnsRef
from tcplinger.model.workload import Workload


def _pods(n: int) -> Scrape:
    inputs = []
    for i in range(n):
        b = SocketBuilder()
        b.add("LISTEN", "127.0.0.1:9090", inode=900 + i)
        b.add("CLOSE_WAIT", "127.0.0.1:9090", "127.0.0.1:40000", inode=1000 + i * 10, count=7)
        b.add("FIN_WAIT2", "127.0.0.1:40000", "127.0.0.1:9090", inode=2000 + i * 10, count=7,
              shutdown=2)
        b.add("TIME_WAIT", "127.0.0.1:9090", "127.0.0.1:50000", inode=0, timer=3,
              expires_ms=30_000, count=3)
        b.add("ESTABLISHED", "127.0.0.1:8080", "127.0.0.1:45000", inode=3000 + i, count=4)
        pod = Workload("containerd", f"{i:012x}", pod_namespace="shop", pod_name=f'app-"{i}"\\x')
        owners = {**owners_for(1000 + i * 10, 7, 100 + i, "app"),
                  **owners_for(2000 + i * 10, 7, 100 + i, "app")}
        inp = namespace(b.table(), name=f"pod-{i}", inode=4026532000 + i, owners=owners)
        if i % 2:  # a pod's namespace, named by its runtime (labels netns, container, pod)
            inp = replace(inp, netns=NetnsRef(inp.netns.inode, None, pod.label(), pod))
        inputs.append(inp)
    return Scrape(inputs, findings=diagnose(inputs), owners_resolved=True,
                  phases={"snapshot": 0.5})


class _Odd:
    """Every family kind, names and values that need escaping."""

    def collect(self):
        c = CounterMetricFamily("odd_requests", 'help with \\ and\nnewline "q"',
                                labels=["path", "le.x"], created=1_700_000_000.5)
        c.add_metric(["/a\\b\n\"c\"", "ü"], 3, created=1_700_000_001.0, timestamp=12.345)
        c.add_metric(["", "plain"], float("inf"))
        g = GaugeMetricFamily("odd.gauge", "dots in the name", labels=["b", "a", "ünï"])
        g.add_metric(["2", "1", "x"], -0.0)
        g.add_metric(["2", "1", "y"], float("nan"))
        yield c
        yield g
        yield GaugeMetricFamily("odd_plain", "no labels", value=1e21)
        h = HistogramMetricFamily("odd_hist", "h", labels=["k"])
        h.add_metric(["v"], [("1.0", 1), ("+Inf", 4)], 7.5)
        yield h
        gh = GaugeHistogramMetricFamily("odd_gh", "gh", labels=["k"])
        gh.add_metric(["v"], [("1.0", 1), ("+Inf", 2)], gsum_value=3.0)
        yield gh
        s = SummaryMetricFamily("odd_summary", "s", labels=["k"])
        s.add_metric(["v"], count_value=3, sum_value=1.5)
        yield s
        i = InfoMetricFamily("odd_build", "i", labels=["k"])
        i.add_metric(["v"], {"version": "1.2\n3"})
        yield i
        st = StateSetMetricFamily("odd_state", "st", labels=["k"])
        st.add_metric(["v"], {"on": True, "off": False})
        yield st
        u = UnknownMetricFamily("odd_unknown", "u", labels=["k"])
        u.add_metric(["v"], 5, timestamp=1.0)
        yield u


class _Once:
    """The families of one collection of ``reg``, collected again unchanged
    (a scrape's durations differ between two collections)."""

    def __init__(self, reg):
        self.families = list(reg.collect())

    def collect(self):
        return iter(self.families)


def test_the_exporters_families_as_generate_latest():
    reg = CollectorRegistry()
    reg.register(TcplingerCollector(lambda: _pods(12)))
    ProcessCollector(registry=reg)
    once = _Once(reg)
    want = generate_latest(once)
    assert b"tcplinger_finding{" in want and b'pod="shop/app-\\"1\\"\\\\x"' in want
    assert b"process_max_fds" in want
    assert text(once) == want


def test_every_family_kind_and_escape_as_generate_latest():
    reg = CollectorRegistry()
    reg.register(_Odd())
    want = generate_latest(reg)
    assert text(reg) == want
    assert b"odd_gh_gsum" in want and b"odd_requests_created" in want  # moved families
    assert b"le_x=" in want and b"\\n" in want  # escaped name and value


def test_empty_registry():
    assert text(CollectorRegistry()) == generate_latest(CollectorRegistry()) == b""
