"""The HTML report page from plain data (ui/html.py): self-contained,
escaped, every finding's text present; charts for ages and history."""

from __future__ import annotations

import re

from tcplinger.i18n import Messages
from tcplinger.ui import html
from tcplinger.ui.svgchart import split_at_gaps

FINDING = {
    "rule": "close-wait-leak", "severity": "warning", "confidence": "high",
    "confidence_reason": "a leak", "netns": {"inode": 7, "name": "blue", "container": None},
    "title": "app <script>alert(1)</script> holds 40 sockets in CLOSE_WAIT",
    "facts": ["40 sockets in CLOSE_WAIT & more"], "cause": ["the peer closed"],
    "lifetime": ["until close()"],
    "fixes": [{"kind": "sysctl", "text": "lower it", "command": "sysctl -w net.ipv4.x=1",
               "persist": "echo 'x' > /etc/sysctl.d/90.conf"}],
    "sockets": [{"state": "CLOSE_WAIT", "recv_q": 1, "local": {"address": "::1", "port": 80},
                 "remote": {"address": "10.0.0.2", "port": 4000},
                 "age": {"seconds": 75.0, "at_least": True, "source": "last_recv"},
                 "owners": [{"pid": 42, "comm": "app"}]}],
    "sockets_total": 40, "references": [{"label": "close(2)", "url": "https://man7.org/x"}],
}
SUMMARY = {"netns": {"inode": 7, "name": "blue", "container": "podman:web1"},
           "workload": {"runtime": "podman", "id": "26870dd9a74d", "name": "web1",
                        "image": "localhost/bb:1", "pod": None, "containers": []},
           "label": "blue", "total": 41,
           "states": [{"state": "CLOSE_WAIT", "count": 40, "limit": "tcp_keepalive_time",
                       "limit_value": 7200}],
           "timewait_type": 0, "tcp_max_tw_buckets": 4096, "sockstat_orphans": 3500,
           "tcp_max_orphans": 4096, "ip_local_port_range": [32768, 60999],
           "conntrack": {"count": 10, "max": 100}}
DOC = {"worst": "warning", "totals": {"critical": 0, "warning": 1, "info": 0},
       "findings": [FINDING], "summary": [SUMMARY]}


def page(lang="en", **kw):
    return html.render_page(DOC, Messages(lang), generated="2026-12-07 12:00:00",
                            host="node-1", lang=lang, **kw)


def test_self_contained_and_escaped():
    out = page()
    assert "<script" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert not re.search(r'\b(src|href)\s*=', out)
    assert "Content-Security-Policy" in out and "default-src 'none'" in out
    assert '<pre class="cmd">sysctl -w net.ipv4.x=1</pre>' in out
    assert "podman, container web1, image localhost/bb:1" in out
    assert "40 sockets in CLOSE_WAIT &amp; more" in out
    assert "[::1]:80" in out and "≥1m15s (last_recv)" in out
    # orphans at 85% of tcp_max_orphans: the gauge turns red
    assert 'class="hot" style="width:85.4%"' in out


def test_histograms_and_history():
    ages = {7: {"CLOSE_WAIT": [0, 0, 0, 0, 38, 0, 0, 0, 2]}}
    hist = {"series": [{"label": "CLOSE_WAIT", "times": [0, 1, 2, 10, 11],
                        "values": [1, 2, 3, 4, 5]}], "limits": [("RLIMIT_NOFILE", 20)]}
    out = page(ages=ages, history=hist)
    assert out.count("<svg") == 2
    assert "&lt;5m: 38 sockets" in out and "unknown: 2 sockets" in out
    assert out.count("<polyline") == 2  # the 8 s gap splits the line
    assert "RLIMIT_NOFILE 20" in out


def test_chinese_page():
    out = page("zh")
    assert '<html lang="zh">' in out and "tcplinger 报告：node-1" in out and "发现（1）" in out


def test_gaps():
    assert split_at_gaps([0, 1, 2, 3]) == [(0, 4)]
    assert split_at_gaps([0, 1, 2, 20, 21, 22, 60]) == [(0, 3), (3, 6), (6, 7)]
    assert split_at_gaps([5]) == [(0, 1)] and split_at_gaps([]) == []
