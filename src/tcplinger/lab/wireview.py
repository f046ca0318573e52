"""The wire view of a lab run: the router's captures analysed by wire/
(the same reader and analyser as ``tcplinger pcap``), each connection's
Zeek conn_state and history and each endpoint's inferred states, with
times on the lab's clock so they sit next to the states the kernel
reported (the socket truth).

Pure but for reading the capture files it is given.
"""

from __future__ import annotations

from pathlib import Path

from ..model.states import name as state_name
from ..wire.pcapfile import CaptureError, read_blocks
from ..wire.tracker import analyse_stream


def analyse(path: Path) -> list:
    """Every connection of one capture file (ConnRecord), oldest first."""
    recs: list = []
    try:
        with open(path, "rb") as f:
            analyse_stream(read_blocks(f, []), recs.append, [])
    except (OSError, CaptureError):
        return []
    return sorted(recs, key=lambda r: (r.ts, r.uid))


def conn_json(rec, *, shift: float, names: dict) -> dict:
    """One connection with times on the lab's clock (``shift``: seconds
    to add to a time relative to the connection's first packet)."""
    def spans(ss):
        return [{"state": state_name(s.state), "start_s": round(s.start_s + shift, 6),
                 "end_s": None if s.end_s is None else round(s.end_s + shift, 6)} for s in ss]
    return {"uid": rec.uid, "orig": names.get(rec.orig_h, rec.orig_h), "orig_p": rec.orig_p,
            "resp": names.get(rec.resp_h, rec.resp_h), "resp_p": rec.resp_p,
            "conn_state": rec.conn_state, "history": rec.history,
            "orig_pkts": rec.orig_pkts, "resp_pkts": rec.resp_pkts,
            "orig_states": spans(rec.orig_spans), "resp_states": spans(rec.resp_spans)}


def view(paths: dict, *, offset: float, t0: float, names: dict) -> dict:
    """``paths``: capture label -> file; ``offset``: realtime - monotonic
    (capture times are realtime); ``t0``: the run's start (monotonic)."""
    out = {}
    for label, path in paths.items():
        out[label] = [conn_json(r, shift=r.ts - offset - t0, names=names)
                      for r in analyse(Path(path))]
    return out
