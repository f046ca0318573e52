"""The alert rules and the Grafana dashboard in docs/, checked with promtool
(Debian package ``prometheus``): rules load, their unit tests pass, every
dashboard query parses, and every metric they name is one the exporter
produces."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tcplinger.diagnose.builder import SocketBuilder, namespace, owners_for
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.metadata import BY_ID
from tcplinger.export.collector import TcplingerCollector
from tcplinger.export.prometheus import Scrape
from tcplinger.model.kernel import SockStat

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "docs" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "docs" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "docs" / "grafana" / "tcplinger.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None,
                                    reason="promtool not installed (Debian package prometheus)")

#: Grafana variables -> values that keep a query's syntax (regex matchers
#: get ".*", range selectors a duration).
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h",
                "$instance": ".*", "$netns": ".*", "$state": ".*"}


def promtool(*args, cwd=None):
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            out.append(target["expr"])
    return out


def variable_queries() -> list[str]:
    """The series selector inside each ``label_values(SELECTOR, label)``."""
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+),\s*\w+\)", var["definition"])
        assert m, var["definition"]
        out.append(m.group(1))
    return out


def substitute(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


@needs_promtool
def test_alert_rules_load():
    proc = promtool("check", "rules", str(ALERTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 9 rules found" in proc.stdout


@needs_promtool
def test_alert_rules_unit_tests():
    proc = promtool("test", "rules", ALERT_TESTS.name, cwd=ALERT_TESTS.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_has_summary_description_and_runbook():
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    tested = ALERT_TESTS.read_text()
    for rule in rules:
        ann = rule["annotations"]
        assert ann["summary"] and ann["description"], rule["alert"]
        assert "tcplinger " in ann["runbook"], rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        if "rule" in rule["labels"]:  # the tcplinger rule it stands for
            assert rule["labels"]["rule"] in BY_ID, rule["alert"]
            assert f"tcplinger explain {rule['labels']['rule']}" in ann["runbook"]
        assert f"alertname: {rule['alert']}" in tested, f"{rule['alert']} has no promtool test"


@needs_promtool
def test_every_dashboard_query_parses(tmp_path):
    """promtool parses each expression of a rules file: the dashboard's
    queries become recording rules of a scratch file."""
    exprs = [substitute(e) for e in dashboard_queries()]
    exprs += [substitute(s) for s in variable_queries()]
    assert len(exprs) >= 20
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    proc = promtool("check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dashboard_is_well_formed():
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24


def exported_names() -> set[str]:
    """Every family and sample name the collector produces for a rich scrape."""
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:8080", "10.0.0.9:40000", inode=5000, recv_q=1, count=12,
          last_ack_recv=1000)
    b.add("FIN_WAIT2", "10.0.0.1:40000", "10.0.0.8:80", inode=6000, last_ack_recv=90_000)
    b.add("TIME_WAIT", "10.0.0.1:41000", "10.0.0.7:443", inode=0, timer=3, expires_ms=1000)
    ns = namespace(b.table(), name="web", owners=owners_for(5000, 12, 42, "java"),
                   conntrack=(10, 100), sockstat=SockStat(orphan=1),
                   tcpext={c: 1 for c in ("TW", "TCPTimeWaitOverflow", "TCPAbortOnData")})
    scrape = Scrape([ns], findings=diagnose([ns]))
    names = set()
    for fam in TcplingerCollector(lambda: scrape).collect():
        names.add(fam.name)
        names.update(s.name for s in fam.samples)
    return names


def test_alerts_and_dashboard_name_only_exported_metrics():
    names = exported_names()
    text = ALERTS.read_text() + "\n".join(dashboard_queries() + variable_queries())
    used = set(re.findall(r"\btcplinger_[a-z_]+\b", text))
    assert used, "no metric found"
    assert used <= names, sorted(used - names)
