"""The ss-output parser of the privileged tests (tests/privileged/ssparse.py),
on ss output recorded from a known population (tests/data/ss/, made by
tests/privileged/record_ss.py: iproute2 6.1.0, Linux 6.18).

The expected decode is what holder.py promised when it built the sockets
(population.json), not what the parser said, so a parser bug shows up as a
disagreement with the builder.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

TESTS = Path(__file__).resolve().parents[1]
DATA = TESTS / "data" / "ss"


def _load_ssparse():
    # tests/privileged is not a package; load the module by path.
    spec = importlib.util.spec_from_file_location("tl_ssparse", TESTS / "privileged" / "ssparse.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ssparse = _load_ssparse()
POP = json.loads((DATA / "population.json").read_text())
PROMISED = {ssparse.key(s): s for s in POP["sockets"]}


def rows(options: str) -> list[dict]:
    return ssparse.parse_ss((DATA / f"ss-{options}.txt").read_text(), options)


@pytest.mark.parametrize("options", ["tanoe", "tanp", "tanoep"])
def test_recording_decodes_to_the_promised_population(options):
    got = rows(options)
    assert sorted(ssparse.key(r) for r in got) == sorted(PROMISED)
    for r in got:
        p = PROMISED[ssparse.key(r)]
        assert r["family"] == p["family"], ssparse.key(r)
        assert r["extra"] == [], f"unparsed tokens {r['extra']}"
        if "e" in options:
            assert r["uid"] == p["uid"], ssparse.key(r)
            assert r["timewait_type"] == p["timewait_type"], ssparse.key(r)
            assert (r["inode"] == 0) == (not p["owners"]), ssparse.key(r)
            assert r["cookie"] > 0
            # tw sockets carry no attributes at all, full ones always do.
            assert (r["cgroup"] is None) == r["timewait_type"]
        if "p" in options:
            want = sorted((o["pid"], o["comm"], o["fd"]) for o in p["owners"])
            assert sorted((u["pid"], u["comm"], u["fd"]) for u in r["users"]) == want
        if "o" in options:
            assert (r["timer"]["kind"] == "timewait") == p["timewait_type"]


def test_the_three_listings_agree():
    """Same sockets, same cookies and inodes in -tanoe and -tanoep, same
    users in -tanp and -tanoep (recorded one after the other)."""
    oe = {ssparse.key(r): r for r in rows("tanoe")}
    oep = {ssparse.key(r): r for r in rows("tanoep")}
    p = {ssparse.key(r): r for r in rows("tanp")}
    for k, r in oep.items():
        assert (r["cookie"], r["inode"], r["uid"], r["shutdown"]) == \
            (oe[k]["cookie"], oe[k]["inode"], oe[k]["uid"], oe[k]["shutdown"])
        assert r["users"] == p[k]["users"]
        assert p[k]["timer"] is None and p[k]["inode"] is None  # -p alone: no -o/-e fields


def test_recording_covers_the_formats():
    got = rows("tanoe")
    assert {r["ss_state"] for r in got} == {
        "LISTEN", "ESTAB", "SYN-SENT", "CLOSE-WAIT", "FIN-WAIT-1", "FIN-WAIT-2",
        "TIME-WAIT", "LAST-ACK"}
    assert {r["timer"]["ss_kind"] for r in got} == {"off", "on", "keepalive", "timewait",
                                                    "persist"}
    assert {r["timer"]["resolution_ms"] for r in got} == {1, 1000, 60_000}
    assert {r["shutdown"] for r in got} == {None, 0, 1, 2, 3}
    assert any(r["local"].get("device") == "lo" for r in got)
    assert any(r["local"]["address"] == "::" for r in got)  # "*:port"
    assert any(r["local"]["address"].startswith("::ffff:") for r in got)


@pytest.mark.parametrize("line, expected", [
    ("LISTEN     1      0               127.0.0.1:55039            0.0.0.0:*"
     "     ino:3791992 sk:ffc5c cgroup:unreachable:1 <->",
     {"state": "LISTEN", "recv_q": 1, "send_q": 0, "family": "ipv4",
      "local": {"address": "127.0.0.1", "port": 55039},
      "remote": {"address": "0.0.0.0", "port": 0}, "uid": 0, "inode": 3791992,
      "cookie": 0xffc5c, "shutdown": 0, "timewait_type": False,
      "timer": {"kind": "off", "ss_kind": "off", "expires_ms": 0, "resolution_ms": 1,
                "retransmits": 0}}),
    # Empty expiry (timer fired, not yet re-armed), recorded here on LAST-ACK.
    ("LAST-ACK   0      8193                [::1]:37069              [::1]:57356"
     " timer:(persist,,1) ino:0 sk:ffcae cgroup:unreachable:1 ---",
     {"state": "LAST_ACK", "send_q": 8193, "family": "ipv6", "inode": 0, "shutdown": 3,
      "timer": {"kind": "probe", "ss_kind": "persist", "expires_ms": 0, "resolution_ms": 1,
                "retransmits": 1},
      "timewait_type": False}),
    ("TIME-WAIT  0      0                   [::1]:50862              [::1]:57303"
     " timer:(timewait,58sec,0) ino:0 sk:ffc95",
     {"state": "TIME_WAIT", "uid": 0, "shutdown": None, "timewait_type": True,
      "cgroup": None, "timer": {"kind": "timewait", "ss_kind": "timewait",
                                "expires_ms": 58000, "resolution_ms": 1000, "retransmits": 0}}),
    ("LISTEN     0      16                      *:43657                  *:*"
     "     ino:3820789 sk:ffc7c cgroup:unreachable:1 v6only:0 <->",
     {"family": "ipv6", "local": {"address": "::", "port": 43657},
      "remote": {"address": "::", "port": 0}, "v6only": False}),
    ("LISTEN     0      16               [::1]%lo:58531               [::]:*"
     "     uid:65534 ino:3820788 sk:ffc7b cgroup:unreachable:1 v6only:1 <->",
     {"local": {"address": "::1", "port": 58531, "device": "lo"}, "uid": 65534,
      "v6only": True}),
    ("ESTAB      0      0      [::ffff:127.0.0.1]:43657 [::ffff:127.0.0.1]:47672"
     " ino:3820791 sk:ffc8a cgroup:unreachable:1 <->",
     {"family": "ipv6", "local": {"address": "::ffff:127.0.0.1", "port": 43657}}),
])
def test_recorded_lines(line, expected):
    row = ssparse.parse_line(line, "tanoe")
    assert {k: row[k] for k in expected} == expected


def test_users_with_awkward_comms():
    line = ('ESTAB 0 0 127.0.0.1:1 127.0.0.1:2 users:(("a b",pid=3,fd=4),'
            '("x)y",pid=5,fd=6)) ino:7 sk:8 <->')
    row = ssparse.parse_line(line, "tanoep")
    assert row["users"] == [{"comm": "a b", "pid": 3, "fd": 4}, {"comm": "x)y", "pid": 5, "fd": 6}]
    assert row["inode"] == 7 and row["extra"] == []


def test_absent_tokens_depend_on_the_flags():
    line = "ESTAB 0 0 127.0.0.1:1 127.0.0.1:2"
    plain = ssparse.parse_line(line, "tan")
    assert (plain["uid"], plain["timer"], plain["users"], plain["timewait_type"]) == \
        (None, None, None, None)
    full = ssparse.parse_line(line, "tanoep")
    assert (full["uid"], full["timer"]["kind"], full["users"]) == (0, "off", [])


@pytest.mark.parametrize("bad", [
    "BOGUS 0 0 127.0.0.1:1 127.0.0.1:2",
    "ESTAB 0 0 127.0.0.1:1",
    "ESTAB 0 0 127.0.0.1 127.0.0.1:2",
])
def test_malformed_lines_raise(bad):
    with pytest.raises(ValueError):
        ssparse.parse_line(bad)


@pytest.mark.parametrize("bad", ["1.ms", "ms", "abc", "1min.5ms", "5.12"])
def test_malformed_timer_values_raise(bad):
    with pytest.raises(ValueError):
        ssparse.parse_ms_timer(bad)


def print_ms_timer(timeout: int) -> str:
    """iproute2 6.1 misc/ss.c print_ms_timer(), line for line."""
    secs, msecs = timeout // 1000, timeout % 1000
    minutes, secs = secs // 60, secs % 60
    buf = ""
    if minutes:
        msecs = 0
        buf = f"{minutes}min"
        if minutes > 9:
            secs = 0
    if secs:
        if secs > 9:
            msecs = 0
        buf += f"{secs}{'.' if msecs else 'sec'}"
    if msecs:
        buf += f"{msecs:03d}ms"
    return buf


@given(st.integers(min_value=0, max_value=10 * 3600 * 1000))
def test_ms_timer_brackets_the_true_value(ms):
    value, resolution = ssparse.parse_ms_timer(print_ms_timer(ms))
    assert value <= ms < value + resolution
