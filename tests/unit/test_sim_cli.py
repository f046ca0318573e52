"""`tcplinger sim` in process: output contracts, exit codes, languages."""

import functools
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "sim"


@pytest.fixture(scope="module")
def cli(cli):
    """A 100-column terminal: the timelines' width."""
    return functools.partial(cli, width=100)


def test_presets_lists_every_preset_with_knobs(cli):
    code, out, err = cli("sim", "presets", "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    names = {p["name"]: p for p in doc["presets"]}
    assert "linux-close-wait" in names and names["seed-000-freebsd-ipfw"]["seed"] == "000"
    knobs = {k["name"]: k for k in names["linux-close-wait"]["knobs"]}
    assert knobs["peer"]["choices"] == ["alive", "gone", "silent"]
    assert all(p["description"] for p in doc["presets"])
    code, out, _ = cli("sim", "presets")
    assert code == 0 and "--set tcp_fin_timeout=60  (net.ipv4.tcp_fin_timeout" in out
    assert "--set close_at=inf" in out
    code, out, _ = cli("sim", "presets", lang="zh_CN.UTF-8")
    assert "服务器套接字上的 SO_KEEPALIVE" in out


def test_run_json_contract(cli):
    code, out, err = cli("sim", "run", "--preset", "linux-orphan-fin-wait-2", "--set",
                         "tcp_fin_timeout=90", "--json")
    assert code == 0, err
    doc = json.loads(out)
    client = doc["parties"]["client"]["states"]
    assert [s["state"] for s in client][-2:] == ["FIN_WAIT2", "FIN_WAIT2"]
    assert client[-1]["minisock"] is True and client[-1]["end_s"] == pytest.approx(63.0521)
    server = doc["parties"]["server"]["states"]
    assert server[-1] == {"state": "CLOSE_WAIT", "start_s": pytest.approx(1.00005),
                          "end_s": None}
    v = doc["verdict"]
    assert v["first_to_forget"]["party"] == "client"
    assert v["held_at_horizon"] == ["server"]
    assert v["next_packet"]["reply"] == "R"
    assert doc["notes"] and all("text" in n for n in doc["notes"])


def test_run_text_and_svg(cli, tmp_path):
    svg = tmp_path / "t.svg"
    code, out, err = cli("sim", "run", "--preset", "seed-000-freebsd-ipfw", "--horizon", "2h",
                         "--svg", str(svg), "--packets")
    assert code == 0, err
    assert "FIN_WAIT2" in out and "Nobody forgets the connection within 2h00m." in out
    assert "forged-keepalive" in out
    assert re.search(r"and \d+ more times", out)  # repeated keepalive events collapsed
    root = ET.fromstring(svg.read_text())
    assert root.tag.endswith("svg")
    assert {"client", "server", "ipfw"} <= {t.text for t in root.iter() if t.tag.endswith("text")}


def test_run_scenario_file(cli):
    code, out, err = cli("sim", "run", str(DATA / "orphan_behind_conntrack.toml"), "--json",
                         "--set", "client.tcp_fin_timeout=10")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc["parties"]) == {"client", "server", "conntrack"}
    assert doc["parties"]["conntrack"]["role"] == "middlebox"


def test_sweep_table_json_and_chart(cli, tmp_path):
    code, out, err = cli("sim", "sweep", "--preset", "linux-orphan-fin-wait-2", "--vary",
                         "tcp_fin_timeout=30,61,90")
    assert code == 0, err
    lines = out.splitlines()
    assert "client LINGERS" in lines[0] and len(lines) == 5
    assert "1m02s" in lines[-2]  # 90 -> 2*(90-60) + slack
    code, out, err = cli("sim", "sweep", "--preset", "linux-close-wait", "--vary",
                         "keepidle=2,4", "--vary", "peer=gone,alive", "--set",
                         "so_keepalive=1", "--json", "--svg", str(tmp_path / "c.svg"))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["varied"] == ["keepidle", "peer"] and len(doc["points"]) == 4
    pt = doc["points"][0]
    assert pt["values"] == {"keepidle": 2.0, "peer": "gone"}
    assert pt["parties"]["server"]["states"]["CLOSE_WAIT"] == pytest.approx(2.02, abs=0.01)
    alive = [p for p in doc["points"] if p["values"]["peer"] == "alive"][0]
    assert alive["parties"]["server"]["states"]["CLOSE_WAIT"] is None
    assert ET.fromstring((tmp_path / "c.svg").read_text()).tag.endswith("svg")


def test_sweep_progress_on_a_terminal(cli):
    code, out, err = cli("sim", "sweep", "--preset", "linux-orphan-fin-wait-2", "--vary",
                         "tcp_fin_timeout=1..3000:1", tty=True)
    assert code == 0
    assert "/3000 points" in err


@pytest.mark.parametrize("argv,code,fragment", [
    (["sim", "run", "--preset", "nope"], 3, "no preset named 'nope'"),
    (["sim", "run", "/nonexistent/x.toml"], 3, "no such scenario file"),
    (["sim", "run"], 2, "either --preset"),
    (["sim", "run", "--preset", "linux-time-wait", str(DATA / "freebsd_dialup.toml")], 2,
     "either --preset"),
    (["sim", "run", "--preset", "linux-close-wait", "--set", "peer=asleep"], 2, "one of"),
    (["sim", "run", "--preset", "linux-close-wait", "--set", "keepidle"], 2, "KEY=VALUE"),
    (["sim", "run", "--preset", "linux-close-wait", "--horizon", "soon"], 2, "duration"),
    (["sim", "run", str(DATA / "bad_unknown_key.toml")], 2, "tcp_fin_timout"),
    (["sim", "run", str(DATA / "bad_syntax.toml")], 2, "TOML"),
    (["sim", "sweep", "--preset", "linux-close-wait", "--vary", "keepidle=a,b"], 2,
     "--vary keepidle: invalid duration 'a'"),
    (["sim", "sweep", "--preset", "linux-close-wait", "--vary", "nothing.here=1"], 2,
     "no such parameter"),
    (["sim"], 2, "choose an action"),
])
def test_errors_are_one_line_with_exit_code(cli, argv, code, fragment):
    got, out, err = cli(*argv)
    assert got == code, err
    assert err.count("\n") == 1 and fragment in err and "Traceback" not in err


def test_chinese_output(cli):
    code, out, err = cli("sim", "run", "--preset", "linux-time-wait", lang="zh_CN.UTF-8")
    assert code == 0
    assert "结论：" in out and "事件：" in out
