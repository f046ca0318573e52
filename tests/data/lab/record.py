"""Record what the lab's recorder saw in real runs, for
tests/unit/test_lab_merge.py: the tracepoint transitions, the sock_diag
views, the application actions, and the timelines merge() made of them
(reviewed once by eye against the run's text output, then kept).

Run as root: ``python tests/data/lab/record.py``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from tcplinger.i18n import Messages
from tcplinger.lab import runner
from tcplinger.lab.scenarios import get

HERE = Path(__file__).resolve().parent

RUNS = {
    "orphan_fin_wait2": ("orphan-fin-wait-2", (("tcp_fin_timeout", "2"),)),
    "half_close": ("half-close-fin-wait-2", (("hold", "2"), ("tcp_fin_timeout", "1"))),
    "proper_close": ("buggy-client-keepalive", (("client", "proper"),)),
    "tw_reuse": ("port-exhaustion", (("tcp_tw_reuse", "1"),)),
}


def key_json(key):
    return [list(key[0]), list(key[1])] if key else None


def main() -> None:
    msg = Messages("en")
    for fixture, (name, sets) in RUNS.items():
        res = runner.run(runner.RunOptions(name, sets, capture=False, diagnose=False), get(name),
                         msg)
        raw = res.raw
        doc = {
            "scenario": name, "set": dict(sets), "kernel": res.kernel, "t0": raw["t0"],
            "transitions": [asdict(t) for t in raw["transitions"]],
            "views": [{"side": v.side, "t_first": v.t_first, "t_last": v.t_last,
                       "socks": [{"key": key_json(k), **asdict(sv)} for k, sv in v.socks.items()]}
                      for v in raw["views"]],
            "actions": [{"t": a.t, "side": a.side, "key": key_json(a.key), "what": a.what}
                        for a in raw["actions"]],
            "expected": [s.to_json() for s in res.sockets],
        }
        (HERE / f"{fixture}.json").write_text(json.dumps(doc, indent=1) + "\n")
        bad = [c.id for c in res.checks if not c.ok and not c.id.startswith("diagnosed:")]
        print(fixture, "ok" if not bad else f"FAILED {bad}", len(doc["views"]), "views")


if __name__ == "__main__":
    main()
