"""A real Prometheus scrapes ``tcplinger exporter`` while a CLOSE_WAIT leak grows.

The test starts, on loopback and each with its own files under tmp_path:

* a namespace ``tl-t-<random>`` (harness.netns, tcp_fin_timeout 300 so the
  leak's orphaned FIN_WAIT2 outlive the test) holding a known population:
  one process named ``tl-leaky`` with 2 listeners and 5 established pairs,
  which then accepts LEAK connections whose clients close while it never
  closes its side: LEAK CLOSE_WAIT (owner tl-leaky) and LEAK orphaned
  FIN_WAIT2 (owner none), one more every 0.2 s;
* ``tcplinger exporter --netns NS`` on 127.0.0.1;
* ``prometheus`` (Debian package ``prometheus``) with a 1 s scrape and
  evaluation interval and docs/prometheus/alerts.yml as its rules, with the
  ``for:`` hold times cut to 2 s (the expressions are as shipped).

It asserts through Prometheus's HTTP API that the series hold the known
population exactly, that TcplingerCloseWaitGrowing fires for tl-leaky in
that namespace, that the close-wait-leak finding is exported, and that
every dashboard query evaluates. All processes are ended by pid and the
namespace deleted, pass or fail.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged(needs=("prometheus",))  # Debian package prometheus
PROMETHEUS = shutil.which("prometheus")

import harness  # noqa: E402  (tests/privileged/conftest.py puts it on the path)

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "docs" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "docs" / "grafana" / "tcplinger.json"
LEAK = 30
STEADY_PAIRS = 5

POPULATION = r"""
import ctypes, socket, sys, time
libc = ctypes.CDLL(None)
libc.prctl(15, b"tl-leaky", 0, 0, 0)   # PR_SET_NAME: the owner label
libc.prctl(1, 9, 0, 0, 0)              # PR_SET_PDEATHSIG: SIGKILL with the test
steady = socket.create_server(("127.0.0.1", 9000))
leaky = socket.create_server(("127.0.0.1", 8080), backlog=256)
held = []
for _ in range(int(sys.argv[1])):
    c = socket.create_connection(("127.0.0.1", 9000))
    s, _ = steady.accept()
    held += [c, s]
print("ready", flush=True)
n, pause = sys.stdin.readline().split()
for _ in range(int(n)):
    c = socket.create_connection(("127.0.0.1", 8080))
    s, _ = leaky.accept()
    held.append(s)   # never closed: CLOSE_WAIT once the client's FIN arrives
    c.close()        # the client side: an orphaned FIN_WAIT2
    time.sleep(float(pause))
print("done", flush=True)
sys.stdin.read()     # hold everything until the test closes stdin
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, timeout: float, interval: float = 0.25):
    """Poll ``check()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:  # not listening yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


class Api:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params):
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                doc = json.loads(r.read())
        except urllib.error.HTTPError as exc:  # 400 bad_data: the query does not parse
            raise AssertionError(f"{params}: {exc.read().decode(errors='replace')}") from None
        assert doc["status"] == "success", doc
        return doc["data"]

    def ready(self) -> bool:
        """``/-/ready`` answers 200: until then (the TSDB opening, the
        config loading) every API call is 503 "Service Unavailable"
        (web/web.go testReady), which the first query met under load."""
        with urllib.request.urlopen(self.base + "/-/ready", timeout=10) as r:
            return r.status == 200

    def query(self, expr: str) -> dict:
        """``{frozenset(labels without __name__): value}`` of an instant query."""
        data = self.get("/api/v1/query", query=expr)
        return {frozenset((k, v) for k, v in r["metric"].items() if k != "__name__"):
                float(r["value"][1]) for r in data["result"]}

    def firing(self, name: str) -> list[dict]:
        return [a for a in self.get("/api/v1/alerts")["alerts"]
                if a["labels"]["alertname"] == name and a["state"] == "firing"]


def start(argv, log: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT, **kw)


def stop(proc: subprocess.Popen | None) -> int | None:
    """SIGTERM by pid, SIGKILL after 10 s; the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def short_holds(text: str) -> str:
    """alerts.yml with every ``for:`` hold time cut to 2 s."""
    out, n = re.subn(r"(?m)^(\s+for:\s*)\d+[smh]\s*$", r"\g<1>2s", text)
    assert n >= 5, "alerts.yml changed shape: no `for:` to shorten"
    return out


def dashboard_queries(netns: str) -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    subst = {"$__rate_interval": "1m", "$instance": ".*", "$netns": netns,  # tl-t-<hex>: nothing to escape
             "$state": "CLOSE_WAIT"}
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for k, v in subst.items():
                expr = expr.replace(k, v)
            out.append(expr)
    return out


def L(**labels):  # noqa: N802
    return frozenset(labels.items())


def test_prometheus_scrapes_exporter_and_close_wait_alert_fires(tmp_path):
    with harness.netns({"net.ipv4.tcp_fin_timeout": 300}) as ns:  # deleted at the end
        _scenario(ns, tmp_path)


def _scenario(ns, tmp_path):
    t0 = time.monotonic()
    pop = ns.spawn([sys.executable, "-c", POPULATION, str(STEADY_PAIRS)], stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE, text=True)
    assert pop.stdout.readline().strip() == "ready"

    exporter_port, prom_port = free_port(), free_port()
    (tmp_path / "alerts.yml").write_text(short_holds(ALERTS.read_text()))
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        "rule_files: [alerts.yml]\n"
        "scrape_configs:\n  - job_name: tcplinger\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n")
    exporter = prometheus = None
    try:
        # min_age 0: the leak is 6 s old when it ends, younger than
        # close-wait-leak's 10 s min_age (INFO); how much older it is at the
        # scrape asserted on depends on the load, so the severity would too
        exporter = start(harness.tcplinger_argv("exporter", "--netns", ns.name, "--listen",
                                                f"127.0.0.1:{exporter_port}", "--threshold",
                                                "close-wait-leak.min_age=0"),
                         tmp_path / "exporter.log")
        prometheus = start([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                            f"--storage.tsdb.path={tmp_path / 'data'}",
                            f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                           tmp_path / "prometheus.log", cwd=tmp_path)
        api = Api(prom_port)
        wait_for("Prometheus to be ready", api.ready, 40)  # a 503 is an OSError: waited out
        wait_for("the exporter's first good scrape", lambda: api.query(
            'up{job="tcplinger"} == 1 and on() tcplinger_scrape_success == 1'), 40)
        t_up = time.monotonic()

        # The steady population, before any leak: exactly what was built.
        sel = f'netns="{ns.name}"'
        before = api.query(f"tcplinger_sockets{{{sel}}}")
        assert {(dict(k)["state"], dict(k)["owner"]): v for k, v in before.items()} == {
            ("ESTABLISHED", "unknown"): 2 * STEADY_PAIRS, ("LISTEN", "unknown"): 2}
        assert api.firing("TcplingerCloseWaitGrowing") == []

        # The leak: one more CLOSE_WAIT every 0.2 s.
        pop.stdin.write(f"{LEAK} 0.2\n")
        pop.stdin.flush()
        alert = wait_for("TcplingerCloseWaitGrowing to fire",
                         lambda: api.firing("TcplingerCloseWaitGrowing"), 60)
        t_alert = time.monotonic()
        assert len(alert) == 1
        labels = alert[0]["labels"]
        assert (labels["netns"], labels["owner"], labels["state"]) == (ns.name, "tl-leaky",
                                                                       "CLOSE_WAIT")
        assert labels["rule"] == "close-wait-leak" and labels["severity"] == "warning"
        assert labels["instance"] == f"127.0.0.1:{exporter_port}"
        assert "tcplinger explain close-wait-leak" in alert[0]["annotations"]["runbook"]
        assert pop.stdout.readline().strip() == "done"

        # After the leak: the series hold exactly the population (one more
        # scrape after "done"), and ss agrees.
        def settled():
            got = api.query(f"tcplinger_sockets{{{sel}}}")
            flat = {(dict(k)["state"], dict(k)["owner"]): v for k, v in got.items()}
            return flat if flat.get(("CLOSE_WAIT", "tl-leaky")) == LEAK else None

        flat = wait_for("the last scrape to see the whole leak", settled, 20)
        assert flat == {("ESTABLISHED", "unknown"): 2 * STEADY_PAIRS, ("LISTEN", "unknown"): 2,
                        ("CLOSE_WAIT", "tl-leaky"): LEAK, ("FIN_WAIT2", "none"): LEAK}
        ss_states = {}
        for row in ns.ss("tan"):
            ss_states[row["state"]] = ss_states.get(row["state"], 0) + 1
        assert ss_states == {"ESTABLISHED": 2 * STEADY_PAIRS, "LISTEN": 2, "CLOSE_WAIT": LEAK,
                             "FIN_WAIT2": LEAK}

        n = L(instance=f"127.0.0.1:{exporter_port}", job="tcplinger", netns=ns.name)
        assert api.query(f"tcplinger_orphans{{{sel}}}") == {n: LEAK}
        assert api.query(f'tcplinger_sysctl{{{sel},name="tcp_fin_timeout"}}') == {
            n | {("name", "tcp_fin_timeout")}: 300}
        assert api.query(f"tcplinger_fin_wait2_past_timeout{{{sel}}}") == {n: 0}
        # ages: the orphans' timers count from close() (a lower bound of the
        # time in FIN_WAIT2, source since_close), CLOSE_WAIT's tcp_info too
        counts = api.query(f"tcplinger_socket_age_seconds_count{{{sel}}}")
        assert {(dict(k)["state"], dict(k)["source"]): v for k, v in counts.items()} == {
            ("FIN_WAIT2", "since_close"): LEAK, ("CLOSE_WAIT", "last_recv"): LEAK}
        finding = api.query(f'tcplinger_finding_sockets{{{sel},rule="close-wait-leak"}}')
        [(labels, count)] = finding.items()
        command = dict(labels)["command"]  # the owner's command line, shortened
        assert command.startswith(f"{Path(sys.executable).name} -c import ctypes"), command
        assert (labels, count) == (n | {("rule", "close-wait-leak"), ("severity", "warning"),
                                        ("owner", "tl-leaky"), ("command", command)}, LEAK)
        assert api.query('tcplinger_owners_resolved{job="tcplinger"}') == {
            L(instance=f"127.0.0.1:{exporter_port}", job="tcplinger"): 1}

        # Every dashboard query evaluates on the live server.
        for expr in dashboard_queries(ns.name):
            api.get("/api/v1/query", query=expr)
        nonempty = sum(1 for expr in dashboard_queries(ns.name) if api.query(expr))
        assert nonempty >= 15
        # No other alert fires for this healthy-but-leaking namespace.
        others = {a["labels"]["alertname"] for a in api.get("/api/v1/alerts")["alerts"]
                  if a["state"] == "firing"} - {"TcplingerCloseWaitGrowing"}
        assert others == set(), others
        print(f"\nexporter up after {t_up - t0:.1f}s, alert firing {t_alert - t_up:.1f}s after "
              f"the leak started, test {time.monotonic() - t0:.1f}s")
    finally:
        pop.stdin.close()
        code_e, code_p = stop(exporter), stop(prometheus)
        for log in ("exporter.log", "prometheus.log"):
            text = (tmp_path / log).read_text() if (tmp_path / log).exists() else ""
            if "Traceback" in text or "level=error" in text:
                print(f"--- {log}\n{text}")
    assert code_e == 0, (tmp_path / "exporter.log").read_text()
    assert code_p == 0


# ---- the privileges docs/exporter.md lists ------------------------------------------

CAPLEAK = r"""
import ctypes, socket, sys
libc = ctypes.CDLL(None)
libc.prctl(15, b"tl-capleak", 0, 0, 0)
libc.prctl(1, 9, 0, 0, 0)
srv = socket.create_server(("127.0.0.1", 8080))
held = []
for _ in range(3):
    c = socket.create_connection(("127.0.0.1", 8080))
    s, _ = srv.accept()
    held.append(s)
    c.close()
print("ready", flush=True)
sys.stdin.read()
"""
NEEDED = ("sys_admin", "sys_ptrace", "dac_read_search")


def scrape_with_caps(ns, caps, tmp_path) -> dict:
    """One textfile scrape of ``ns`` by uid 0 holding only ``caps``:
    ``{(metric, frozenset(labels)): value}`` of the namespace's series."""
    from prometheus_client.parser import text_string_to_metric_families

    out_dir = tmp_path / ("caps-" + ("-".join(caps) or "none"))
    out_dir.mkdir()
    bounding = "-all" + "".join(f",+{c}" for c in caps)
    proc = subprocess.run(["setpriv", f"--bounding-set={bounding}", "--inh-caps=-all", "--",
                           *harness.tcplinger_argv("exporter", "--netns", ns.name, "--owners",
                                                   "--no-findings", "--textfile", str(out_dir))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = {}
    for fam in text_string_to_metric_families((out_dir / "tcplinger.prom").read_text()):
        for s in fam.samples:
            if s.labels.get("netns") == ns.name:
                got[(s.name, frozenset(s.labels.items()))] = s.value
    return got


# setpriv (util-linux) and the system python3 run a holder as another user
@pytest.mark.privileged(needs=("setpriv", "/usr/bin/python3"))
def test_the_three_capabilities_and_what_each_one_buys(tmp_path):
    """uid 0 with a reduced bounding set; the socket holder runs as nobody
    (started by exec, so it is dumpable and its /proc/PID/fd is nobody's)."""
    with harness.netns() as ns:
        holder = ns.spawn(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "/usr/bin/python3", "-c", CAPLEAK],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "ready"

        def close_wait(got):
            return {dict(k)["owner"]: v for (name, k), v in got.items()
                    if name == "tcplinger_sockets" and dict(k)["state"] == "CLOSE_WAIT"}

        def has_sysctls(got):
            return any(name == "tcplinger_sysctl" for name, _ in got)

        full = scrape_with_caps(ns, NEEDED, tmp_path)
        assert close_wait(full) == {"tl-capleak": 3} and has_sysctls(full)
        no_dac = scrape_with_caps(ns, ("sys_admin", "sys_ptrace"), tmp_path)
        assert close_wait(no_dac) == {"unknown": 3} and has_sysctls(no_dac)
        no_ptrace = scrape_with_caps(ns, ("sys_admin", "dac_read_search"), tmp_path)
        assert close_wait(no_ptrace) == {"unknown": 3} and has_sysctls(no_ptrace)
        no_admin = scrape_with_caps(ns, ("sys_ptrace", "dac_read_search"), tmp_path)
        # read through /proc/PID/net: the sockets, not the namespace's settings
        assert close_wait(no_admin) == {"tl-capleak": 3} and not has_sysctls(no_admin)
        holder.stdin.close()


# ---- a scrape leaves no TIME_WAIT in the namespace it measures ---------------------

API_QUERY = r"""
import json, sys, urllib.parse, urllib.request
url = sys.argv[1] + "/api/v1/query?" + urllib.parse.urlencode({"query": sys.argv[2]})
print(urllib.request.urlopen(url, timeout=10).read().decode())
"""


def test_prometheus_keeps_one_connection_and_no_time_wait_appears(tmp_path):
    """The exporter watches its own namespace (as a pod's sidecar does) and
    Prometheus scrapes it there every second. Across 20+ scrapes the
    namespace holds one kept-alive connection to the exporter and no
    TIME_WAIT at all (the HTTP/1.0 server left one per scrape: the server
    closed first). The API is asked only after the TIME_WAIT census, since
    that request's own connection would leave one."""
    with harness.netns() as ns:
        exporter_port, prom_port = 9469, 9090  # the namespace is ours: fixed ports are free
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: tcplinger\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n")
        ns.spawn(harness.tcplinger_argv("exporter", "--listen", f"127.0.0.1:{exporter_port}"),
                 stdout=(tmp_path / "exporter.log").open("w"), stderr=subprocess.STDOUT)
        ns.spawn([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                  f"--storage.tsdb.path={tmp_path / 'data'}",
                  f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                 stdout=(tmp_path / "prometheus.log").open("w"), stderr=subprocess.STDOUT,
                 cwd=tmp_path)

        def scrape_connections():
            return [r for r in ns.ss("tan", states=("ESTABLISHED",))
                    if r["remote"]["port"] == exporter_port]

        wait_for("Prometheus's first connection to the exporter", scrape_connections, 60)
        client_ports, time_waits, t0 = set(), 0, time.monotonic()
        while time.monotonic() - t0 < 24:  # 1 s interval: 20+ scrapes
            client_ports.update(r["local"]["port"] for r in scrape_connections())
            time_waits = max(time_waits, len(ns.ss("tan", states=("TIME_WAIT",))))
            time.sleep(0.5)
        final_tw = ns.ss("tan", states=("TIME_WAIT",))
        up = ns.run([sys.executable, "-c", API_QUERY, f"http://127.0.0.1:{prom_port}",
                     'count_over_time(up{job="tcplinger"}[1m])'])
        doc = json.loads(up.stdout)
        scrapes = float(doc["data"]["result"][0]["value"][1])
        ok = ns.run([sys.executable, "-c", API_QUERY, f"http://127.0.0.1:{prom_port}",
                     'min_over_time(up{job="tcplinger"}[1m])'])
        print(f"\n{scrapes:.0f} scrapes over client ports {sorted(client_ports)}; "
              f"TIME_WAIT seen at most {time_waits}, at the end {len(final_tw)}")
        assert scrapes >= 20
        assert float(json.loads(ok.stdout)["data"]["result"][0]["value"][1]) == 1
        assert len(client_ports) == 1, client_ports
        assert time_waits == 0 and final_tw == []
