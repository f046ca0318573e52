"""How many connection teardowns per second `tcplinger sim sweep` simulates
on one core (issue 7 asks for at least 100 000).

Each grid point of a sweep is one complete connection (handshake, the
teardown, every timer to the end or to the horizon), simulated by the same
event engine as ``sim run``; numeric parameters are simulated in lockstep
(sim/sweep.py). The process is pinned to one CPU.

    python bench/sim_speed.py            # the full table (~1 minute)
    python bench/sim_speed.py --quick    # smaller grids
    python bench/sim_speed.py --json     # one JSON object per line

Each case also checks a sample of points against one scalar run each, so a
fast wrong answer cannot pass for a result.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time

from tcplinger.sim import presets
from tcplinger.sim.scenario import param_for, with_values
from tcplinger.sim.sweep import parse_vary, run_sweep

#: (name, preset, --vary arguments, horizon or None)
CASES = [
    ("orphan FIN_WAIT2 over tcp_fin_timeout", "linux-orphan-fin-wait-2",
     ["tcp_fin_timeout=0.5..300:0.003"], None),
    ("orphan FIN_WAIT2 x TCP_LINGER2", "linux-orphan-fin-wait-2",
     ["tcp_fin_timeout=1..120:0.5", "linger2=-1..240:0.6"], None),
    ("CLOSE_WAIT keepalive grid, silent peer", "linux-close-wait",
     ["keepidle=1..100:1", "keepintvl=1..50:1", "keepcnt=1..20:1", "so_keepalive=1",
      "peer=silent"], None),
    ("dropped FIN: retries x RTT", "linux-fin-dropped",
     ["tcp_orphan_retries=0..15:1", "orphan=0,1", "rtt=0.0001..0.3:0.0002"], None),
    ("FreeBSD behind ipfw, 24 h: lifetimes x mode", "seed-000-freebsd-ipfw",
     ["dyn_ack_lifetime=30..3000:0.5", "dyn_keepalive=0,1", "refresh=any,both"], None),
    ("cloud idle timeout x provider", "cloud-idle-timeout",
     ["send_at=10..2000:0.1", "provider=aws-nlb,gcp-nat,azure-lb"], 4000.0),
]
QUICK_DIVISOR = 20


def grid_size(varies):
    n = 1
    for v in varies:
        n *= len(parse_vary(v).values)
    return n


def thin(varies, factor):
    """The same grid with ranges ``factor`` times coarser (for --quick)."""
    out = []
    for v in varies:
        key, _, rest = v.partition("=")
        if ".." in rest and ":" in rest:
            head, _, step = rest.partition(":")
            rest = f"{head}:{float(step) * factor:g}"
        out.append(f"{key}={rest}")
    return out


def maker(preset_name):
    """Document builder: preset knobs, and any other key as a dotted path
    into the scenario (rtt, client.tcp_fin_timeout, ...)."""
    p = presets.get(preset_name)

    def make(values):
        knobs = {k: v for k, v in values.items() if p.knob(k) is not None}
        paths = {k: v for k, v in values.items() if p.knob(k) is None}
        return with_values(presets.build(preset_name, knobs), paths)
    return make


def kind_of(preset_name, key):
    p = presets.get(preset_name)
    if p.knob(key) is not None:
        return p.knob(key).kind
    return param_for(presets.build(preset_name), key).kind


def check_sample(preset_name, res, kinds, horizon, n=25):
    """A random sample of points against one scalar run each."""
    from tcplinger.sim.scenario import from_document
    from tcplinger.sim.simulation import simulate
    rnd = random.Random(7)
    make = maker(preset_name)
    for i in rnd.sample(range(len(res)), min(n, len(res))):
        pt = res[i]
        doc = make(dict(pt.values))
        if horizon is not None:
            doc["horizon"] = horizon
        tl = simulate(from_document(doc)).timeline()
        for p in tl.parties:
            want, got = p.forgotten_at(), pt.forgotten[p.name]
            ok = (want is None and got is None) or (
                want is not None and got is not None and math.isclose(want, got, abs_tol=1e-9))
            if not ok:
                raise AssertionError(f"{preset_name} {pt.values}: {p.name} {got} != {want}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="grids 20 times smaller")
    ap.add_argument("--json", action="store_true", help="JSON lines")
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU (default: the first allowed)")
    args = ap.parse_args(argv)
    allowed = sorted(os.sched_getaffinity(0))
    cpu = args.cpu if args.cpu is not None else allowed[0]
    os.sched_setaffinity(0, {cpu})
    rows = []
    for name, preset_name, varies, horizon in CASES:
        if args.quick:
            varies = thin(varies, QUICK_DIVISOR)
        axes = [parse_vary(v) for v in varies]
        kinds = {a.key: kind_of(preset_name, a.key) for a in axes}
        t0 = time.perf_counter()
        res = run_sweep(maker(preset_name), axes, kinds, horizon_s=horizon)
        secs = time.perf_counter() - t0
        check_sample(preset_name, res, kinds, horizon)
        row = {"case": name, "preset": preset_name, "points": len(res),
               "seconds": round(secs, 3), "teardowns_per_s": round(len(res) / secs)}
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"{name:42} {len(res):>9} points {secs:7.2f} s "
                  f"{len(res) / secs:>12,.0f} teardowns/s", flush=True)
    total_pts = sum(r["points"] for r in rows)
    total_s = sum(r["seconds"] for r in rows)
    summary = {"case": "all", "points": total_pts, "seconds": round(total_s, 3),
               "teardowns_per_s": round(total_pts / total_s), "cpu": cpu,
               "python": sys.version.split()[0]}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{'all (CPU ' + str(cpu) + ')':42} {total_pts:>9} points {total_s:7.2f} s "
              f"{total_pts / total_s:>12,.0f} teardowns/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
