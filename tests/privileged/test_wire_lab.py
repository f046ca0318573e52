"""The wire view of real lab runs against the socket truth recorded at the
same time.

Each run (`tcplinger lab run ... --json`) captures the router's two
interfaces with tcpdump and records every socket's states from the kernel
(tracepoint + sock_diag). Its JSON's ``wire`` part is what wire/ read from
the captures. The expectations here come from the kernel's record, not
from the analyser:

* conn_state: a FIN is on an interface's capture when its sender's kernel
  went through FIN_WAIT1/LAST_ACK (client-side capture of the client's FIN)
  or when the receiver's kernel took it (server-side capture: the server
  went to CLOSE_WAIT, CLOSING or TIME_WAIT); Zeek's SF/S2/S3/S1 follow, and
  a run whose scenario aborts says who sent the RST (RSTO/RSTR);
* history: ``F``/``f`` exactly when that FIN is on the capture;
* states: the endpoint next to the capture went through the same states as
  its kernel says, each entered within TOL of the kernel's time; a span the
  kernel ended without a packet (an orphan timing out) may stay open on the
  wire, nothing else may.
"""

from __future__ import annotations

import pytest
from labruns import LabRuns, lab_argv  # tests/privileged is on sys.path (conftest.py)

pytestmark = pytest.mark.privileged(needs=("nft", "tcpdump"))

#: Seconds between a kernel state change (tracepoint, or a poll every
#: 50 ms at worst) and the packet that proves it, on veths through a router.
TOL = 0.1

RUNS = {
    "half-close": ("half-close-fin-wait-2", ("hold=3", "tcp_fin_timeout=2"), None),
    "orphan": ("orphan-fin-wait-2", ("tcp_fin_timeout=2",), None),
    "proper": ("buggy-client-keepalive", ("client=proper",), None),
    "buggy": ("buggy-client-keepalive", ("tcp_fin_timeout=2",), None),
    "fin-dropped": ("fin-dropped", (), None),
    "linger": ("linger-abort", (), "server"),
    "linger-client": ("linger-abort", ("closer=client",), "client"),
}

LAB = LabRuns({rid: lab_argv(sc, sets) for rid, (sc, sets, _) in RUNS.items()}, parallel=4,
              name="wire-lab")

SENT_FIN = {"FIN_WAIT1", "LAST_ACK"}
GOT_FIN = {"CLOSE_WAIT", "CLOSING", "TIME_WAIT", "LAST_ACK"}


def states(spans) -> list:
    """Kernel spans with repeats merged (a FIN_WAIT2 handed to a minisocket
    is the same state)."""
    out = []
    for s in spans:
        if out and out[-1]["state"] == s["state"]:
            out[-1] = {**out[-1], "end_s": s["end_s"]}
        else:
            out.append(dict(s))
    return out


def kernel(doc, side):
    return states(next(s for s in doc["sockets"] if s["name"] == side)["states"])


def expected_state(doc, vantage: str, reset_by: str | None) -> str:
    client, server = ({s["state"] for s in kernel(doc, side)} for side in ("client", "server"))
    if vantage == "client":
        c_fin, s_fin = bool(client & SENT_FIN), bool(client & GOT_FIN - {"LAST_ACK"})
    else:
        c_fin, s_fin = bool(server & GOT_FIN - {"LAST_ACK"}), bool(server & SENT_FIN)
    if reset_by is not None:
        return "RSTO" if reset_by == "client" else "RSTR"
    return {(True, True): "SF", (True, False): "S2", (False, True): "S3",
            (False, False): "S1"}[(c_fin, s_fin)]


def the_conn(doc, vantage):
    conns = [c for c in doc["wire"][vantage] if c["orig"] == "client"]
    assert len(conns) == 1, doc["wire"][vantage]
    return conns[0]


@pytest.fixture(scope="module")
def lab():
    LAB.start()
    yield LAB
    LAB.shutdown()


@pytest.mark.parametrize("rid", sorted(RUNS))
@pytest.mark.parametrize("vantage", ["client", "server"])
def test_conn_state_and_history_follow_the_kernel(lab, rid, vantage):
    doc = lab.get(rid)
    conn = the_conn(doc, vantage)
    want = expected_state(doc, vantage, RUNS[rid][2])
    assert conn["conn_state"] == want, (conn, kernel(doc, "client"), kernel(doc, "server"))
    assert conn["history"].startswith("ShA")
    if want in ("SF", "S2"):
        assert "F" in conn["history"]
    if want in ("SF", "S3"):
        assert "f" in conn["history"]
    if want in ("S1",):
        assert "F" not in conn["history"].upper()


@pytest.mark.parametrize("rid", sorted(RUNS))
@pytest.mark.parametrize("side", ["client", "server"])
def test_endpoint_states_follow_the_kernel(lab, rid, side):
    doc = lab.get(rid)
    conn = the_conn(doc, side)
    wire = conn["orig_states" if side == "client" else "resp_states"]
    truth = kernel(doc, side)
    assert [w["state"] for w in wire] == [k["state"] for k in truth][:len(wire)], (wire, truth)
    assert len(wire) == len(truth), (wire, truth)
    for w, k in zip(wire, truth):
        assert abs(w["start_s"] - k["start_s"]) <= TOL, (w, k)
        if w["end_s"] is not None:
            assert k["end_s"] is not None and abs(w["end_s"] - k["end_s"]) <= TOL, (w, k)
    last_w, last_k = wire[-1], truth[-1]
    if last_w["end_s"] is None and last_k["end_s"] is not None:
        # the kernel dropped it without a word on the wire: only an orphan
        # timing out, or TIME_WAIT ending, do that
        assert last_k["state"] in ("FIN_WAIT2", "TIME_WAIT", "FIN_WAIT1", "CLOSE_WAIT"), truth
