"""`tcplinger lab` in process: listing, and every refusal as one line with
a documented exit code before anything is created."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tcplinger.lab.scenarios import ALL

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_list_text_shows_every_scenario_and_parameter(cli):
    code, out, err = cli("lab", "list")
    assert code == 0 and err == ""
    for s in ALL:
        assert f"\n{s.name}  [seeds " in "\n" + out
        for p in s.params:
            assert f"--set {p.name}=" in out
    assert "tcp_keepalive_time" in out  # the generic sysctls
    code, out_zh, _ = cli("--lang", "zh", "lab", "list")
    assert code == 0 and "预期" in out_zh


def test_list_json(cli):
    code, out, _ = cli("lab", "list", "--json")
    doc = json.loads(out)
    assert code == 0 and len(doc["scenarios"]) == 10
    ofw = next(s for s in doc["scenarios"] if s["name"] == "orphan-fin-wait-2")
    assert ofw["seeds"] == ["003"] and ofw["expected"]
    fin = next(p for p in ofw["params"] if p["name"] == "tcp_fin_timeout")
    assert fin == {"name": "tcp_fin_timeout", "default": 5, "kind": "int", "min": 0,
                   "max": 3600, "choices": None, "unit": "s",
                   "sysctl": "net.ipv4.tcp_fin_timeout", "namespaces": ["client"],
                   "doc": fin["doc"]} and fin["doc"]
    assert any(s["name"] == "net.ipv4.ip_local_port_range" for s in doc["sysctls"])


@pytest.mark.parametrize("argv,code,fragment", [
    (["lab", "run", "no-such-scenario"], 3, "no scenario named 'no-such-scenario'"),
    (["lab", "run", "orphan-fin-wait-2", "--set", "colour=blue"], 2, "colour: no such"),
    (["lab", "run", "orphan-fin-wait-2", "--set", "tcp_fin_timeout=-5"], 2,
     "tcp_fin_timeout: invalid value '-5' (must not be negative)"),
    (["lab", "run", "close-wait-leak", "--set", "peer=asleep"], 2, "expected one of"),
    (["lab", "run", "orphan-fin-wait-2", "--set", "tcp_fin_timeout"], 2, "NAME=VALUE"),
    (["lab", "run", "orphan-fin-wait-2", "--interval", "0.2"], 2, "--interval"),
    # below one dump's time the poller would only spin
    (["lab", "run", "orphan-fin-wait-2", "--interval", "0.0001"], 2, "(at least 1ms)"),
    (["lab", "run", "orphan-fin-wait-2", "--duration", "0"], 2, "--duration"),
    (["lab"], 2, "choose an action"),
])
def test_refusals(cli, argv, code, fragment):
    got, out, err = cli(*argv)
    assert got == code
    assert out == "" and err.count("\n") == 1 and fragment in err
    assert "Traceback" not in err


def test_not_root_is_one_line():
    """Really not root: run as nobody (skipped where that user cannot
    import this Python's packages, e.g. numpy installed under /root)."""
    cmd = [sys.executable, "-c", "import sys; sys.path.insert(0, %r); "
           "from tcplinger.cli.main import main; sys.exit(main())" % SRC,
           "lab", "run", "orphan-fin-wait-2"]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd="/", env={"LANG": "C"})
    if "ModuleNotFoundError" in done.stderr or "Permission denied: '/root" in done.stderr:
        pytest.skip("this Python cannot run as nobody here")
    assert done.returncode == 4, done.stderr
    assert done.stderr.count("\n") == 1 and "root" in done.stderr
