"""Record ss output of the standard population for tests/unit/test_ss_parse.py.

Run as root: ``python3 tests/privileged/record_ss.py [OUTDIR]`` (default
tests/data/ss). It builds the standard population (plus keepalive timers
long enough for ss's minute formats) in a fresh namespace, then writes

- ``ss-tanoe.txt``, ``ss-tanp.txt``, ``ss-tanoep.txt``: ss's stdout, taken
  one right after the other;
- ``population.json``: what holder.py promised (state, endpoints, owners,
  uid, timewait-type for every socket), the expected decode that the
  parser is checked against, plus the ss and kernel versions.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
from ssparse import parse_ss  # noqa: E402

OPTIONS = ("tanoe", "tanp", "tanoep")


def record(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    owners = harness.standard_owners()
    items = harness.standard_items() + [
        harness.Item("established", "ipv4", client=("tl-cli",), server=("tl-web",),
                     keepidle=7200),  # "119min..." (minutes > 9: seconds dropped)
        harness.Item("established", "ipv6", client=("tl-cli",), server=("tl-web",),
                     keepidle=300),  # "4min59sec"
    ]
    with harness.netns({"net.ipv4.tcp_fin_timeout": 45}) as ns:
        pop = harness.populate(ns, owners, items)
        for opt in OPTIONS:
            out = subprocess.run(["ss", "-N", ns.name, "-" + opt], capture_output=True,
                                 text=True, check=True).stdout
            missing, unexpected = pop.diff(parse_ss(out, opt))
            if missing or unexpected:  # something else touched the namespace
                sys.exit(f"ss -{opt} differs from the population: missing {missing},"
                         f" unexpected {unexpected}")
            (outdir / f"ss-{opt}.txt").write_text(out)
        version = subprocess.run(["ss", "-V"], capture_output=True, text=True).stdout.strip()
        doc = {"ss_version": version, "kernel": platform.release(),
               "fin_timeout": pop.fin_timeout, "owners": pop.owners, "sockets": pop.sockets}
        (outdir / "population.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("record_ss.py: needs root")
    record(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent / "data" / "ss")
