"""Record tcpdump captures of the router's two interfaces for
tests/unit/test_lab_packets.py: a connection whose client FIN the router
drops (nftables), retransmitted until tcp_orphan_retries=1 gives up.

Run as root: ``python tests/data/lab/record_pcap.py``. Writes
``fin_dropped.client.pcap``, ``fin_dropped.server.pcap`` and
``fin_dropped.expected.json`` (the packets lab/packets.py made of them,
reviewed once by eye; times relative to the first SYN).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from tcplinger.lab import packets, registry
from tcplinger.lab.capture import Capture
from tcplinger.lab.pcap import read_segments
from tcplinger.lab.peer_process import PeerProcess
from tcplinger.lab.topology import Addressing, Topology

HERE = Path(__file__).resolve().parent


def main() -> None:
    rec = registry.register("record-pcap")
    topo = Topology(rec.run_id, Addressing(rec.slot))
    a = topo.addr
    cap = None
    peers = []
    try:
        topo.create()
        topo.set_sysctls("client", {"net.ipv4.tcp_orphan_retries": "1"})
        cap = Capture(topo.ns("router"), {"client": topo.link("a"), "server": topo.link("b")},
                      filter=f"tcp port {a.server_port}", run_id=rec.run_id)
        cap.start()
        srv, cli = PeerProcess("server", topo.ns("server")), PeerProcess("client", topo.ns("client"))
        peers = [srv, cli]
        srv.call("listen", name="l", addr=a.server, port=a.server_port)
        cli.call("connect", name="c", addr=a.server, port=a.server_port)
        srv.call("accept", listener="l", name="s")
        subprocess.run(["ip", "netns", "exec", topo.ns("router"), "nft", "-f", "-"], check=True,
                       text=True, input="table inet t {\n chain f {\n  type filter hook forward "
                       f"priority 0;\n  ip saddr {a.client} tcp flags & fin == fin drop\n }}\n}}\n")
        cli.call("close", name="c")
        time.sleep(3)
        cap.stop()
        for side in ("client", "server"):
            shutil.copy(cap.dir / f"{side}.pcap", HERE / f"fin_dropped.{side}.pcap")
    finally:
        for p in peers:
            p.kill()
        if cap is not None:
            cap.cleanup()
        topo.destroy()
        registry.unregister(rec.run_id)
    segs = {s: read_segments((HERE / f"fin_dropped.{s}.pcap").read_bytes())
            for s in ("client", "server")}
    t0 = min(x.t for v in segs.values() for x in v)
    caps = packets.split(segs["client"], segs["server"], a.client, a.server)
    out = packets.attribute(caps, {a.client: "client", a.server: "server"}, t0=t0,
                            router="nftables")
    (HERE / "fin_dropped.expected.json").write_text(json.dumps(
        {"client": a.client, "server": a.server, "packets": [p.to_json() for p in out]},
        indent=1) + "\n")
    for p in out:
        print(p.to_json())


if __name__ == "__main__":
    main()
