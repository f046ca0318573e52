"""The hand-built corner cases of tests/data/wire (build.py documents each
packet and why the expectation is what Zeek and RFC 793 say): conn_state,
history, each endpoint's states, the tagged packets and the findings."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tcplinger.app.pcap import PcapOptions, analyse_file
from tcplinger.model.states import name as state_name

DATA = Path(__file__).resolve().parents[1] / "data" / "wire"
_spec = importlib.util.spec_from_file_location("wire_build", DATA / "build.py")
build = sys.modules["wire_build"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)


def analyse(path: Path, **options):
    recs, found = [], {}

    def on_record(rec, fs):
        recs.append(rec)
        found[rec.uid] = sorted(f.rule for f in fs)
    res = analyse_file(path, PcapOptions((path,), keep=100, **options), on_record)
    return res, {r.uid: r for r in recs}, found


def spans(ss):
    return [[state_name(s.state), s.start_s, s.end_s] for s in ss]


def close(a, b):
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) < 2e-6
    return a == b


@pytest.mark.parametrize("name", sorted(build.CASES))
def test_fixture_is_built_by_build_py(name):
    blob, expected = build.build(name)
    assert build.path_of(name).read_bytes() == blob
    assert json.loads((DATA / f"{name}.expected.json").read_text()) == \
        json.loads(json.dumps(expected))


@pytest.mark.parametrize("name", sorted(build.CASES))
def test_case(name):
    expected = json.loads((DATA / f"{name}.expected.json").read_text())
    res, recs, found = analyse(build.path_of(name), **build.CASES[name][2])
    assert sorted(recs) == sorted(expected)
    for uid, exp in expected.items():
        rec = recs[uid]
        assert rec.conn_state == exp["conn_state"], uid
        assert rec.history == exp["history"], uid
        assert found[uid] == sorted(exp["findings"]), uid
        if "orig" in exp:
            assert close(spans(rec.orig_spans), exp["orig"]), spans(rec.orig_spans)
        if "resp" in exp:
            assert close(spans(rec.resp_spans), exp["resp"]), spans(rec.resp_spans)
        if "notable" in exp:
            got = [[round(p.t - rec.ts, 6), p.sender, p.flag_text, p.tag] for p in rec.packets]
            assert close(got, exp["notable"]), got
        for key in ("orig_h", "resp_h", "orig_p", "resp_p", "interface", "orig_bytes",
                    "resp_bytes", "duration", "orig_pkts", "resp_pkts"):
            if key in exp:
                assert close(getattr(rec, key), exp[key]), (key, getattr(rec, key))
        if "keepalives" in exp:
            assert rec.orig_facts.keepalives == exp["keepalives"]["orig"]
            assert rec.orig_facts.keepalives_answered == exp["keepalives"]["answered"]


def test_snaplen_cut_headers_are_counted(tmp_path):
    recs, _ = build.simultaneous_close()
    path = tmp_path / "cut.pcap"
    path.write_bytes(build.pcap(recs, snaplen=40))  # Ethernet 14 + IPv4 20: no TCP header
    res, got, _ = analyse(path)
    assert res.counts.cut == len(recs) and not got
    assert [n.key for n in res.notices] == ["wire.notice.cut"]


def test_snaplen_short_keeps_byte_counts(tmp_path):
    recs, _ = build.no_syn_midstream()
    path = tmp_path / "short.pcap"
    path.write_bytes(build.pcap(recs, snaplen=54))  # headers only, payload cut
    _, got, _ = analyse(path)
    assert (got["C1"].orig_bytes, got["C1"].resp_bytes) == (10, 20)


def test_file_cut_mid_record_is_read_up_to_there(tmp_path):
    blob = build.path_of("retransmitted_fin").read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(blob[:-30])
    res, got, _ = analyse(path)
    assert res.counts.records == 6
    assert [n.key for n in res.notices] == ["wire.notice.truncated"]
    assert got["C1"].history == "ShAF"


@pytest.mark.parametrize("blob,key", [
    (b"", "wire.error.empty"),
    (b"GET / HTTP/1.1\r\n\r\n" * 4, "wire.error.not_capture"),
    (bytes.fromhex("d4c3b2a1") + b"\0" * 8, "wire.error.short_header"),
])
def test_garbage_is_one_error(tmp_path, blob, key):
    from tcplinger.app.pcap import CaptureFileError
    path = tmp_path / "bad"
    path.write_bytes(blob)
    with pytest.raises(CaptureFileError) as err:
        analyse(path)
    assert err.value.error.key == key


def test_unsupported_link_type(tmp_path):
    from tcplinger.app.pcap import CaptureFileError
    recs, _ = build.retransmitted_fin()
    path = tmp_path / "wifi.pcap"
    path.write_bytes(build.pcap(recs, linktype=105))  # 802.11
    with pytest.raises(CaptureFileError) as err:
        analyse(path)
    assert err.value.error.key == "wire.error.linktype"


def test_checksum_sums_like_rfc1071_at_any_offset_and_length():
    """wire/checksum.py's block sums against RFC 1071 one segment at a
    time (the lab's checksum), for IPv4 and IPv6 segments of odd and even
    lengths at odd and even offsets, right, wrong and cut by the snap
    length."""
    import random
    import struct

    import numpy as np

    from tcplinger.lab.bridge import checksum as rfc1071
    from tcplinger.wire.checksum import bad

    rng = random.Random(5)
    blob, rows, want = b"", [], []
    for k in range(400):
        v6 = k % 3 == 0
        src, dst = rng.randbytes(16 if v6 else 4), rng.randbytes(16 if v6 else 4)
        tcp = bytearray(struct.pack("!HHIIBBHHH", rng.randrange(65536), 80, rng.randrange(1 << 32),
                                    0, 5 << 4, 0x10, 500, 0, 0) + rng.randbytes(rng.randrange(40)))
        pseudo = src + dst + (struct.pack("!IxxxB", len(tcp), 6) if v6 else
                              struct.pack("!BBH", 0, 6, len(tcp)))
        wrong = rng.random() < 0.5
        struct.pack_into("!H", tcp, 16, rfc1071(pseudo + bytes(tcp)) ^ (0x0101 if wrong else 0))
        ip = (struct.pack("!IHBB", 6 << 28, len(tcp), 6, 64) + src + dst if v6 else
              struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0) + src + dst)
        blob += rng.randbytes(rng.randrange(3))  # any alignment
        cut = rng.random() < 0.1
        rows.append((len(blob), len(blob) + len(ip), len(ip) + len(tcp),
                     len(blob) + len(ip) + len(tcp) - (5 if cut else 0), not v6))
        want.append(wrong and not cut)
        blob += ip + bytes(tcp)
    cols = [np.array(c) for c in zip(*rows)]
    got = bad(np.frombuffer(blob, np.uint8), *cols[:2], cols[2], cols[3], cols[4])
    assert got.tolist() == want and 150 < sum(want) < 250


def test_pcapng_interface_names():
    """pcapng's if_name (option 2) names interface 0; interface 1 has none."""
    res, _, _ = analyse(build.path_of("pcapng_two_interfaces"))
    assert res.counts.interface_names == {0: "eth0"}
    assert res.counts.to_json()["interfaces"] == [{"number": 0, "name": "eth0"},
                                                 {"number": 1, "name": None}]


def test_pcapng_interface_name_bounded():
    """An if_name of 300 bytes (the option allows 65535) is cut at NAME_MAX."""
    from tcplinger.wire.pcapfile import NAME_MAX, _idb
    import struct
    body = struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 2, 300) + b"x" * 300
    name = _idb(body, "<").name
    assert len(name) == NAME_MAX and name.endswith("…")
