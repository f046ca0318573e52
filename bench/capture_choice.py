"""Which live capture for ``tcplinger capture``: tcpdump, or a Python reader
on an AF_PACKET socket with the same kernel BPF filter? Measured under the
same load, one after the other (docs/wire.md, "Why tcpdump").

The load: nginx (Debian ``nginx``) on the loopback of a private namespace
``tl-cc-<pid>``, ``ab -c 32`` (``apache2-utils``, no keep-alive) for
``--seconds``. Each capturer runs for those seconds on ``lo`` with the
filter ``tcp``: tcpdump writes a pcap file (``-w``, ``--immediate-mode``,
snap length 200, as tcplinger runs it); the Python reader attaches the
filter tcpdump compiles (``tcpdump -dd``, SO_ATTACH_FILTER) to an
AF_PACKET socket, ``recv_into``s every packet (the least a reader must do)
and reads the kernel's PACKET_STATISTICS. Printed: packets captured,
packets the kernel dropped for each, the capturer's CPU seconds, and ab's
requests per second (the load must be comparable).

    sudo python bench/capture_choice.py --seconds 8
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

READER = r"""
import json, os, resource, socket, struct, sys, time
code = json.loads(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("lo", 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
prog = b"".join(struct.pack("HBBI", *c) for c in code)
buf = __import__("ctypes").create_string_buffer(prog)
fprog = struct.pack("HL", len(code), __import__("ctypes").addressof(buf))
s.setsockopt(socket.SOL_SOCKET, 26, fprog)  # SO_ATTACH_FILTER
s.settimeout(0.2)
mem = bytearray(262144)
end = time.monotonic() + float(sys.argv[1])
n = 0
print("ready", flush=True)
while time.monotonic() < end:
    try:
        s.recv_into(mem)
        n += 1
    except socket.timeout:
        pass
st = s.getsockopt(263, 6, 8)  # SOL_PACKET, PACKET_STATISTICS: tp_packets, tp_drops
packets, drops = struct.unpack("II", st)
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"received": n, "kernel_packets": packets, "kernel_drops": drops,
                  "cpu_s": round(ru.ru_utime + ru.ru_stime, 3)}), flush=True)
"""


def load(ns: str, seconds: float) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, "ab", "-q", "-c", "32", "-t",
                             str(seconds), "-n", "10000000", "http://127.0.0.1:8080/f"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def rps(ab: subprocess.Popen) -> float | None:
    out, _ = ab.communicate(timeout=120)
    m = re.search(r"Requests per second:\s+([\d.]+)", out)
    return float(m.group(1)) if m else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()
    ns = f"tl-cc-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="tl-cc-"))
    procs = []
    out = {}
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        (work / "www").mkdir()
        (work / "www" / "f").write_bytes(b"x" * 2048)
        (work / "nginx.conf").write_text(
            f"user root; worker_processes 1; pid {work}/nginx.pid; error_log {work}/e.log;\n"
            "events { worker_connections 4096; }\n"
            f"http {{ access_log off; client_body_temp_path {work}; proxy_temp_path {work};\n"
            f"fastcgi_temp_path {work}; uwsgi_temp_path {work}; scgi_temp_path {work};\n"
            f"server {{ listen 127.0.0.1:8080; root {work}/www; }} }}\n")
        procs.append(subprocess.Popen(["ip", "netns", "exec", ns, "nginx", "-c",
                                       str(work / "nginx.conf"), "-g", "daemon off;"]))
        time.sleep(0.5)
        dd = subprocess.run(["tcpdump", "-i", "lo", "-dd", "tcp"], capture_output=True,
                            text=True, check=True).stdout
        code = [[int(x, 0) for x in m] for m in re.findall(
            r"\{\s*(0x[0-9a-f]+),\s*(\d+),\s*(\d+),\s*(0x[0-9a-f]+)\s*\}", dd)]
        # tcpdump
        t = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-i", "lo", "-n", "-U",
                              "--immediate-mode", "-s", "200", "-w", str(work / "t.pcap"),
                              "tcp"], stderr=subprocess.PIPE, text=True)
        procs.append(t)
        while "listening" not in t.stderr.readline():
            pass
        ab = load(ns, args.seconds)
        r = rps(ab)
        t0 = os.times()
        os.kill(t.pid, signal.SIGINT)
        _, status, ru = os.wait4(t.pid, 0)
        err = t.stderr.read()
        got = {k: int(v) for v, k in re.findall(r"(\d+) packets? (captured|received by filter|"
                                                  r"dropped by kernel)", err)}
        out["tcpdump"] = {**got, "cpu_s": round(ru.ru_utime + ru.ru_stime, 3), "ab_rps": r}
        del t0
        # Python AF_PACKET reader
        py = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", READER,
                               str(args.seconds + 0.5), json.dumps(code)],
                              stdout=subprocess.PIPE, text=True)
        procs.append(py)
        assert py.stdout.readline().strip() == "ready"
        ab = load(ns, args.seconds)
        r = rps(ab)
        res = json.loads(py.stdout.readline())
        py.wait(30)
        out["python_af_packet"] = {**res, "ab_rps": r}
        out["load_average"] = os.getloadavg()
        print(json.dumps(out, indent=1))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    del socket, struct
    sys.exit(main())
