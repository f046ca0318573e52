"""``tcplinger tune`` against a real kernel, in throwaway namespaces ``tl-k-…``.

The namespace is set up to need changes: settings below tcplinger's floors
(tcp_fin_timeout 5, one keepalive probe, tcp_retries2 3) and client-side
TIME_WAIT filling a tiny tcp_max_tw_buckets. ``--apply`` must change
exactly the proposed values; ``--revert`` must put back every value of the
namespace's /proc/sys/net/ipv4 exactly as it was (compared file by file).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged

import harness  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"
SETUP = {"net.ipv4.tcp_fin_timeout": 5, "net.ipv4.tcp_keepalive_probes": 1,
         "net.ipv4.tcp_retries2": 3, "net.ipv4.tcp_max_tw_buckets": 8,
         "net.ipv4.tcp_tw_reuse": 0}

#: Client-side TIME_WAIT: the client closes first, then the server; the
#: client's ports are ephemeral (no listener on them).
MAKE_TIME_WAIT = r'''
import socket, time
lst = socket.socket(); lst.bind(("127.0.0.1", 7201)); lst.listen(16)
for _ in range(6):
    c = socket.create_connection(("127.0.0.1", 7201)); s, _ = lst.accept()
    c.close(); time.sleep(0.02); s.close()
lst.close()
'''


def ipv4_tree(ns: harness.Netns) -> dict[str, str]:
    """Every readable file of /proc/sys/net/ipv4 in the namespace."""
    code = ("import os, json; out = {}\n"
            "for d, _, fs in os.walk('/proc/sys/net/ipv4'):\n"
            "    for f in fs:\n"
            "        p = os.path.join(d, f)\n"
            "        try: out[p] = open(p).read()\n"
            "        except OSError: pass\n"
            "print(json.dumps(out))")
    return json.loads(ns.run(["python3", "-c", code]).stdout)


def tcplinger(*args, input=None):
    env = {**os.environ, "PYTHONPATH": str(SRC), "LANG": "C"}
    p = subprocess.run(harness.tcplinger_argv(*args), capture_output=True, text=True, env=env,
                       input=input, timeout=120)
    try:
        return p.returncode, json.loads(p.stdout), p.stderr
    except json.JSONDecodeError:
        return p.returncode, p.stdout, p.stderr


@pytest.fixture
def ns():
    with harness.netns(SETUP, prefix="tl-k-") as n:
        n.run(["python3", "-c", MAKE_TIME_WAIT])
        yield n


def files(tmp_path):
    return ["--state-file", str(tmp_path / "state.json"), "--audit-log",
            str(tmp_path / "audit.jsonl")]


def test_plan_apply_revert_restores_every_value(ns, tmp_path):
    code, plan, err = tcplinger("tune", "--netns", ns.name, "--json")
    assert code == 0, err
    got = {p["sysctl"]: (p["current"], p["proposed"], p["rules"]) for p in plan["proposals"]}
    assert got["net.ipv4.tcp_fin_timeout"] == (5, 30, ["bounds"])
    assert got["net.ipv4.tcp_keepalive_probes"] == (1, 3, ["bounds"])
    assert got["net.ipv4.tcp_retries2"] == (3, 8, ["bounds"])
    assert got["net.ipv4.tcp_tw_reuse"] == (0, 1, ["time-wait-pressure"])
    assert got["net.ipv4.tcp_max_tw_buckets"] == (8, 1024, ["time-wait-pressure"])
    assert not any("recycle" in s for s in got)

    before = ipv4_tree(ns)
    code, doc, err = tcplinger("tune", "--netns", ns.name, "--apply", "--yes", "--json",
                               *files(tmp_path))
    assert code == 0, err
    assert all(o["ok"] for o in doc["applied"]) and len(doc["applied"]) == len(got)
    during = ipv4_tree(ns)
    changed = {k for k in before if before[k] != during.get(k)}
    assert changed == {"/proc/sys/" + name.replace(".", "/") for name in got}
    for name, (_, proposed, _) in got.items():
        assert during["/proc/sys/" + name.replace(".", "/")].split() == [str(proposed)]
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["namespaces"][str(ns.inode)]["values"]["net.ipv4.tcp_fin_timeout"] == {
        "path": "net/ipv4/tcp_fin_timeout", "previous": "5", "applied": "30"}

    code, doc, err = tcplinger("tune", "--netns", ns.name, "--revert", "--yes", "--json",
                               *files(tmp_path))
    assert code == 0, (err, doc)
    assert len(doc["reverted"]) == len(got) and all(o["ok"] for o in doc["reverted"])
    assert ipv4_tree(ns) == before
    assert not (tmp_path / "state.json").exists()
    events = [json.loads(x)["event"] for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert events == ["tune.apply.start", "tune.apply.result", "tune.revert.start",
                      "tune.revert.result"]


def test_apply_asks_first(ns, tmp_path):
    before = ipv4_tree(ns)
    code, out, err = tcplinger("tune", "--netns", ns.name, "--apply", *files(tmp_path),
                               input="n\n")
    assert code == 130 and "Not confirmed" in out and "[y/N]" in err
    assert ipv4_tree(ns) == before and not (tmp_path / "audit.jsonl").exists()
    code, out, err = tcplinger("tune", "--netns", ns.name, "--apply", *files(tmp_path),
                               input="y\n")
    assert code == 0, err
    assert ipv4_tree(ns)["/proc/sys/net/ipv4/tcp_fin_timeout"] == "30\n"
    code, out, err = tcplinger("tune", "--netns", ns.name, "--revert", *files(tmp_path),
                               input="y\n")
    assert code == 0, err
    assert ipv4_tree(ns) == before


def test_revert_leaves_a_value_someone_changed_since(ns, tmp_path):
    before = ipv4_tree(ns)
    code, _, err = tcplinger("tune", "--netns", ns.name, "--apply", "--yes", *files(tmp_path))
    assert code == 0, err
    ns.sysctl("net.ipv4.tcp_fin_timeout", 45)  # an operator's change after ours
    code, doc, err = tcplinger("tune", "--netns", ns.name, "--revert", "--yes", "--json",
                               *files(tmp_path))
    assert code == 1
    assert [d["sysctl"] for d in doc["drifted"]] == ["net.ipv4.tcp_fin_timeout"]
    after = ipv4_tree(ns)
    assert after["/proc/sys/net/ipv4/tcp_fin_timeout"] == "45\n"
    assert {k for k in before if before[k] != after[k]} == {"/proc/sys/net/ipv4/tcp_fin_timeout"}
    code, doc, err = tcplinger("tune", "--netns", ns.name, "--revert", "--yes", "--force",
                               "--json", *files(tmp_path))
    assert code == 0, err
    assert ipv4_tree(ns) == before


def test_write_snippet_loads_with_sysctl(ns, tmp_path):
    snippet = tmp_path / "90-tcplinger.conf"
    code, _, err = tcplinger("tune", "--netns", ns.name, "--write", str(snippet))
    assert code == 0, err
    text = snippet.read_text()
    assert "net.ipv4.tcp_fin_timeout = 30" in text
    assert not any("tcp_tw_recycle" in line for line in text.splitlines() if "=" in line
                   and not line.startswith("#"))
    # the snippet is what sysctl(8) loads: try it in a second, fresh namespace
    with harness.netns(prefix="tl-k-") as other:
        out = other.run(["sysctl", "-p", str(snippet)])
        assert "net.ipv4.tcp_fin_timeout = 30" in out.stdout
        assert other.sysctl("net.ipv4.tcp_max_tw_buckets") == "1024"


def test_apply_in_a_child_skips_host_wide_settings(tmp_path):
    """tcp_max_orphans exists in the host's namespace only: never written
    from a child (the plan may propose it only where it exists)."""
    with harness.netns(prefix="tl-k-") as n:
        code, doc, err = tcplinger("tune", "--netns", n.name, "--json")
        assert code == 0, err
        assert not any(p["host_wide"] for p in doc["proposals"])
