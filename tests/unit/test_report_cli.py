"""rules, explain and the report/check output, without privileges: the
CLI in process for the commands that need no kernel, the renderers and the
JSON document on built findings."""

import functools
import json

import pytest

from tcplinger.cli.commands import check as check_cmd
from tcplinger.diagnose.builder import SocketBuilder, namespace, owners_for
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.metadata import RULES
from tcplinger.diagnose.summary import namespace_summary
from tcplinger.export import findings as findings_export
from tcplinger.i18n import Messages
from tcplinger.model.socket import SocketRecord
from tcplinger.ui import report as report_view


@pytest.fixture(scope="module")
def cli(cli):
    """A 120-column terminal: the findings wrap as the assertions expect."""
    return functools.partial(cli, width=120)


def test_rules_lists_every_rule_with_thresholds(cli):
    rc, out, _ = cli("rules")
    assert rc == 0
    for r in RULES:
        assert r.id in out
        for t in r.thresholds:
            assert f"{r.id}.{t.name} = " in out
    assert "keepalive-vs-idle-timeout.warning_count = off" in out


def test_rules_show_each_rules_minimum_age(cli):
    """Issue 11: the age a socket needs before a rule accuses anyone."""
    rc, out, _ = cli("rules")
    rows = {line.split()[0]: line for line in out.splitlines() if line[:1].islower()}
    assert "MIN AGE" in out.splitlines()[0]
    assert "  10s  " in rows["close-wait-leak"] and "  10s  " in rows["half-closed-fin-wait-2"]
    assert "5s after close()" in rows["keepalive-timeout-fin-wait-2"]
    assert "5s after close()" in rows["orphan-fin-wait-2"]
    rc, out, _ = cli("rules", "--json")
    ages = {r["id"]: r["min_age"] for r in json.loads(out)["rules"]}
    assert ages["close-wait-leak"] == {"seconds": 10, "from": "state"}
    assert ages["orphan-fin-wait-2"] == {"seconds": 5, "from": "close"}
    assert ages["time-wait-pressure"] is None


def test_rules_json_is_the_metadata(cli):
    rc, out, _ = cli("rules", "--json")
    doc = json.loads(out)
    assert [r["id"] for r in doc["rules"]] == [r.id for r in RULES]
    cw = doc["rules"][0]
    assert cw["states"] == ["CLOSE_WAIT"]
    assert {"name": "warning_count", "default": 10, "unit": "count"}.items() <= \
        cw["thresholds"][0].items()
    assert any(ref["url"].startswith("https://www.rfc-editor.org/rfc/rfc9293")
               for ref in cw["references"])


@pytest.mark.parametrize("lang,needle", [
    ("en", "Do not \"fix\" a CLOSE_WAIT leak by lowering tcp_keepalive_time."),
    ("zh", "不要用调低 tcp_keepalive_time 的办法去\"修复\" CLOSE_WAIT 泄漏。"),
])
def test_explain(cli, lang, needle):
    rc, out, _ = cli("--lang", lang, "explain", "close-wait-leak")
    assert rc == 0
    flat = " ".join(out.split())  # paragraphs are wrapped to the terminal
    assert " ".join(needle.split()) in flat
    assert "https://man7.org/linux/man-pages/man2/close.2.html" in out
    assert "close-wait-leak.warning_age = 300" in out


def test_explain_every_rule_has_references(cli):
    for r in RULES:
        rc, out, _ = cli("explain", r.id)
        assert rc == 0 and "https://" in out and r.id in out


def test_explain_unknown_rule(cli):
    rc, out, err = cli("explain", "fin-wait-3")
    assert rc == 3 and "close-wait-leak" in err


def test_check_bad_threshold_is_unknown(cli):
    rc, out, _ = cli("check", "--threshold", "close-wait-leak.nope=3")
    assert rc == 3
    assert out.startswith("TCPLINGER UNKNOWN - ") and "nope" in out


def test_report_bad_threshold_is_a_usage_error(cli):
    rc, _, err = cli("report", "--threshold", "nope.x=1")
    assert rc == 2 and "unknown rule" in err


def built():
    b = SocketBuilder()
    b.add("LISTEN", "0.0.0.0:8080", inode=1)
    b.add("CLOSE_WAIT", "10.0.0.1:8080", "10.0.0.9:40000", inode=100, recv_q=1, count=25,
          last_ack_recv=900_000)
    b.add("TIME_WAIT", "10.0.0.1:41000", "10.0.0.7:5432", vary="sport", inode=0, timer=3,
          expires_ms=42_000, count=1200)
    ns = namespace(b.table(), name="blue", owners=owners_for(100, 25, 4242, "java"),
                   sysctls={"tcp_max_tw_buckets": 2000})
    return ns, diagnose([ns])


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_text_report(lang):
    ns, found = built()
    msg = Messages(lang)
    lines = report_view.render([namespace_summary(ns)], found, msg, width=90, sockets=3)
    text = "\n".join(lines)
    assert all(len(line) <= 90 or "sysctl" in line or "  " in line[:4] for line in lines)
    if lang == "en":
        assert text.splitlines()[0] == "namespace blue (net:[4026531840]): 1226 TCP sockets"
        assert "[WARNING] java (pid 4242) holds 25 sockets in CLOSE_WAIT" in text
        assert "run: sysctl -w net.ipv4.tcp_tw_reuse=1" in text
        assert "Sockets (3 of 25, oldest first):" in text
        assert "More: tcplinger explain close-wait-leak" in text
    else:
        assert "[警告] java（pid 4242）持有 25 个 CLOSE_WAIT 套接字" in text
        assert "执行： sysctl -w net.ipv4.tcp_tw_reuse=1" in text


def test_json_document():
    ns, found = built()
    msg = Messages("en")
    doc = json.loads(json.dumps(findings_export.document(found, [namespace_summary(ns)], msg)))
    assert doc["worst"] == "warning"
    assert doc["totals"] == {"info": 0, "warning": 2, "critical": 0}
    cw = next(f for f in doc["findings"] if f["rule"] == "close-wait-leak")
    assert set(cw) >= {"rule", "severity", "netns", "count", "owners", "evidence", "sockets",
                       "title", "cause", "lifetime", "fixes", "confidence"}
    assert cw["owners"] == [{"pid": 4242, "comm": "java", "command": "java", "inferred": False,
                             "basis": "owner", "where": None}]
    assert cw["netns"] == {"inode": 4026531840, "name": "blue", "container": None}
    assert cw["sockets_total"] == 25 and len(cw["sockets"]) == 20
    # The same objects as `ls --json`.
    sample = next(f for f in found if f.rule == "close-wait-leak").sockets
    first = sample.table.record(0, netns=ns.netns, owners=sample.owners[100 + 0]
                                if 100 in sample.owners else (), age=sample.ages[0])
    keys = set(SocketRecord.to_json(first))
    assert set(cw["sockets"][0]) == keys
    assert all(isinstance(x["command"], (str, type(None))) for x in cw["fixes"])


def test_check_perfdata_sums_states():
    ns, found = built()

    class D:
        inputs = [ns]
        findings = found

    perf = check_cmd.perfdata(D)
    assert "close_wait=25" in perf and "time_wait=1200" in perf
    assert "findings_warning=2" in perf
    # Every lingering state of the state table, CLOSING too, in the kernel's order.
    labels = [part.split("=")[0] for part in perf.split()]
    assert labels[:6] == ["fin_wait1", "fin_wait2", "time_wait", "close_wait", "last_ack", "closing"]
