"""``tcplinger pcap`` as a user meets it: text, JSON, SVG, zh, the filter,
and one line with a documented exit code for everything that is not a
capture (README, "Exit codes": 7)."""

import json
import os
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "wire"
FIN = str(DATA / "retransmitted_fin.pcap")
SEED000 = str(DATA / "seed000_ipfw_keepalives.pcap")


def test_text_names_the_state_the_finding_and_the_timeline(cli):
    code, out, err = cli("pcap", FIN)
    assert code == 0 and not err
    assert "S2" in out and "ShAF" in out
    assert "[WARNING]" in out and "left 4 times" in out
    assert "FIN_WAIT1" in out and "still held" in out  # the sender's timeline


def test_json_has_every_connection_and_the_finding_evidence(cli):
    code, out, _ = cli("pcap", "--json", FIN, SEED000)
    assert code == 0
    files = json.loads(out)["files"]
    assert [f["summary"]["conn_states"] for f in files] == [{"S2": 1}, {"S3": 1}]
    fin = files[0]["findings"][0]
    assert fin["rule"] == "fin-unacked" and fin["facts"]["sent"] == 4
    assert [e["flags"] for e in fin["evidence"]] == ["F."] * 4
    rules = sorted(f["rule"] for f in files[1]["findings"])
    assert rules == ["half-close-unanswered", "keepalive-foreign", "keepalive-foreign",
                     "keepalive-one-sided"]
    [one_sided] = [f for f in files[1]["findings"] if f["rule"] == "keepalive-one-sided"]
    assert one_sided["severity"] == "critical"  # forged keepalives (foreign TTL)
    assert one_sided["facts"]["answerer"] == "resp"  # the server answers, the client not


def test_zh(cli):
    code, out, _ = cli("--lang", "zh", "pcap", FIN)
    assert code == 0 and "警告" in out and "始终未被确认" in out


def test_svg_draws_the_connection_with_a_finding(cli, tmp_path):
    svg = tmp_path / "c.svg"
    code, _, _ = cli("pcap", "--svg", str(svg), FIN)
    text = svg.read_text()
    assert code == 0 and text.startswith("<svg") and "FIN_WAIT1" in text and "C1" in text


def test_filter(cli):
    code, out, _ = cli("pcap", "--json", "--filter", "port 9 or host 10.9.9.9", FIN)
    f = json.loads(out)["files"][0]
    assert code == 0 and f["counts"]["filtered_out"] == 7 and f["connections"] == []
    code, out, _ = cli("pcap", "--json", "--filter", "src host 10.1.0.1 and dst port 8080", FIN)
    f = json.loads(out)["files"][0]
    assert f["counts"]["filtered_out"] == 1  # the SYN-ACK, from the server
    code, _, err = cli("pcap", "--filter", "port eighty", FIN)
    assert code == 2 and err.count("\n") == 1 and "not a port" in err


def test_bad_input_is_one_line_and_exit_7(cli, tmp_path):
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"\x00" * 100)
    code, out, err = cli("pcap", str(bad))
    assert (code, out) == (7, "") and err.count("\n") == 1 and "not a pcap or pcapng" in err
    code, _, err = cli("pcap", str(tmp_path / "missing.pcap"))
    assert code == 3 and "no such capture file" in err


def test_cut_file_is_read_with_a_notice(cli, tmp_path):
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(Path(FIN).read_bytes()[:-30])
    code, out, err = cli("pcap", str(cut))
    assert code == 0 and "ends in the middle of a record" in err and "S2" in out


def test_checksums_inactivity_and_merged_interfaces_from_the_command_line(cli):
    bad = str(DATA / "bad_checksums.pcap")

    def conns(*args):
        code, out, err = cli("pcap", "--json", *args)
        assert code == 0, err
        f = json.loads(out)["files"][0]
        return f, [(c["conn_state"], c["history"]) for c in f["connections"]]
    f, got = conns("--checksums", bad)
    assert got == [("SF", "ShACDcaFf"), ("S1", "ShACC")] and f["counts"]["bad_checksum"] == 12
    f, got = conns(bad)  # as zeek -C: the corrupt copy is the data, its good twin a T
    assert got[0] == ("SF", "ShADTaFf") and f["counts"]["bad_checksum"] == 0
    assert conns("--inactivity", "5m", str(DATA / "idle_split.pcap"))[1] == [
        ("S1", "ShADa"), ("SF", "FfA")]
    assert conns(str(DATA / "idle_split.pcap"))[1] == [("SF", "ShADaFf")]
    twice = str(DATA / "pcapng_one_link_twice.pcapng")
    assert conns("--merge-interfaces", twice)[1] == [("SF", "ShADTaFf")]
    assert conns(twice)[1] == [("SF", "ShADaFf")] * 2  # kept apart per interface
    code, _, err = cli("pcap", "--inactivity", "soon", twice)
    assert code == 2 and err.count("\n") == 1


def test_html_page_next_to_the_text_or_the_json(cli, tmp_path):
    """``--html`` adds the page; the text and the JSON stay as they are."""
    page = tmp_path / "wire.html"
    _, plain, _ = cli("pcap", FIN, SEED000)
    code, out, err = cli("pcap", FIN, SEED000, "--html", str(page))
    assert code == 0 and out == plain and err == f"report written to {page}\n"
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text
    assert "left 4 times" in text and "Capture " + FIN in text and "Capture " + SEED000 in text
    _, plain_json, _ = cli("--lang", "zh", "pcap", "--json", FIN)
    code, out, _ = cli("--lang", "zh", "pcap", "--json", FIN, "--html", str(page))
    assert code == 0 and json.loads(out) == json.loads(plain_json)
    assert '<html lang="zh">' in page.read_text()


@pytest.mark.parametrize("target,code", [("dir", 2), ("fifo", 2), ("missing/x.html", 3),
                                         ("", 2)])
def test_html_target_refused_before_any_work(cli, tmp_path, target, code):
    """A directory, a FIFO (which would block the writer), a file in a
    directory that does not exist: one line and the README's exit code
    before any packet is read (nothing on stdout, nothing left behind)."""
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    before = sorted(os.listdir(tmp_path))
    path = str(tmp_path / target) if target else ""
    got, out, err = cli("pcap", FIN, "--html", path)
    assert (got, out) == (code, "") and err.count("\n") == 1 and "Traceback" not in err, err
    assert sorted(os.listdir(tmp_path)) == before and os.listdir(tmp_path / "dir") == []
