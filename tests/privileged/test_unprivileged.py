"""Run as a normal user, tcplinger shows what it can and says what it could
not see. The CLI runs in a child that imports everything as root, then drops
to nobody (65534): this machine's Python lives under /root (mode 700), so a
fresh interpreter could not even start as another user."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.privileged  # root makes the namespace, then drops to nobody

AS_NOBODY = r"""
import io, json, os, sys
from tcplinger.cli.main import main
from tcplinger.cli.terminal import Terminal
import tcplinger.cli.commands.ls, tcplinger.cli.commands.stats  # noqa: F401
import tcplinger.collect.netlink.dump, tcplinger.collect.procfs  # noqa: F401
import argparse, gettext, locale  # noqa: F401,E401  (argparse loads them lazily)
# Warm-up as root: the command imports what it needs lazily (numpy
# submodules, command modules), which nobody could not read under /root.
main(sys.argv[1:], term=Terminal(stdout=io.StringIO(), stderr=io.StringIO(), env={"LANG": "C"},
                                 is_tty=False))
os.setgroups([]); os.setgid(65534); os.setuid(65534)
out, err = io.StringIO(), io.StringIO()
code = main(sys.argv[1:], term=Terminal(stdout=out, stderr=err, env={"LANG": "C"}, is_tty=False))
print(json.dumps({"code": code, "out": out.getvalue(), "err": err.getvalue()}))
"""


def as_nobody(*argv):
    res = subprocess.run([sys.executable, "-c", AS_NOBODY, *argv], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.fixture
def named_netns():
    name = f"tl-un-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_own_namespace_works(named_netns):
    r = as_nobody("ls", "--json")
    assert r["code"] == 0
    doc = json.loads(r["out"])
    assert doc["namespaces"][0]["source"] == "netlink"


def test_named_namespace_is_a_permission_error(named_netns):
    r = as_nobody("stats", "--netns", named_netns)
    assert r["code"] == 4
    assert r["out"] == ""
    assert r["err"].count("\n") == 1 and named_netns in r["err"] and "root" in r["err"]
    assert "Traceback" not in r["err"]


def test_all_netns_says_what_it_could_not_see(named_netns):
    r = as_nobody("ls", "--all-netns", "--json")
    assert r["code"] == 0
    doc = json.loads(r["out"])
    skipped = {s["netns"]["name"]: s["reason"] for s in doc["skipped"] if s["netns"]}
    assert named_netns in skipped and "permission denied" in skipped[named_netns]
    assert any(s["netns"] is None and "not root" in s["reason"] for s in doc["skipped"])
    assert named_netns in r["err"]
