"""``tcplinger pcap`` against ``tshark -r FILE -q -z conv,tcp`` on a
capture of real load, measured in the same run (docs/performance.md).

The load: nginx (Debian ``nginx``) serving a 2 KiB file on the loopback of
a private namespace ``tl-wb-<pid>``, ``ab`` (``apache2-utils``) making
requests at concurrency 32, half of them with keep-alive (``-k``, 10
requests a connection... as ab spreads them), until tcpdump (``-s 128``,
``--immediate-mode``) has written the asked number of packets. Then each
tool reads the file, one after the other, ``--repeat`` times; wall clock
and peak RSS (``wait4()``'s ``ru_maxrss`` of the child) are recorded, and
the connection counts and bytes of both are compared.

    sudo python bench/wire_speed.py --packets 10M --repeat 1
    sudo python bench/wire_speed.py --packets 1M --keep /tmp/load.pcap
    python bench/wire_speed.py --file /tmp/load.pcap          # an existing capture

The capture is written under /tmp and deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def count(text: str) -> int:
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1].lower(), 1)
    return int(float(text[:-1] if mult > 1 else text) * mult)


def sh(*argv, **kw):
    return subprocess.run(argv, check=True, **kw)


def build(path: Path, packets: int) -> dict:
    ns = f"tl-wb-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="tl-wb-"))
    procs = []
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        (work / "www").mkdir()
        (work / "www" / "f").write_bytes(b"x" * 2048)
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (work / d).mkdir()
        (work / "nginx.conf").write_text(f"""
user root; worker_processes 1; pid {work}/nginx.pid; error_log {work}/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; client_body_temp_path {work}/body; proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fastcgi; uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
  keepalive_requests 10;
  server {{ listen 127.0.0.1:8080; root {work}/www; }} }}
""")
        nginx = subprocess.Popen(["ip", "netns", "exec", ns, "nginx", "-c", str(work / "nginx.conf"),
                                  "-g", "daemon off;"])
        procs.append(nginx)
        time.sleep(0.5)
        dump = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-i", "lo", "-n", "-s",
                                 "128", "--immediate-mode", "-c", str(packets), "-w", str(path),
                                 "tcp"], stderr=subprocess.PIPE)
        procs.append(dump)
        dump.stderr.readline()  # "listening on lo ..."
        t0 = time.monotonic()
        rounds = 0
        while dump.poll() is None:
            keep = ["-k"] if rounds % 2 else []
            ab = subprocess.Popen(["ip", "netns", "exec", ns, "ab", "-q", *keep, "-c", "32",
                                   "-n", "50000", "http://127.0.0.1:8080/f"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(ab)
            while ab.poll() is None and dump.poll() is None:
                time.sleep(0.2)
            if ab.poll() is None:
                os.kill(ab.pid, signal.SIGINT)
            ab.wait()
            rounds += 1
        return {"packets": packets, "ab_rounds": rounds, "seconds": round(time.monotonic() - t0, 1),
                "bytes": path.stat().st_size}
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait()
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


def measure(argv: list[str], out: Path) -> dict:
    t0 = time.monotonic()
    with open(out, "wb") as f:
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.PIPE)
        _, status, ru = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    err = proc.stderr.read().decode(errors="replace").strip()
    proc.stderr.close()
    return {"wall_s": round(wall, 3), "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
            "peak_rss_mb": round(ru.ru_maxrss / 1024, 1), "exit": os.waitstatus_to_exitcode(status),
            "stderr": err[-300:]}


def tshark_totals(path: Path) -> dict:
    """Conversations and bytes from tshark's conv,tcp table."""
    convs = frames = nbytes = 0
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) > 8 and "<->" in parts:
            i = parts.index("<->")
            nums = [p for p in parts[i + 2:] if p.replace(",", "").isdigit()]
            convs += 1
            if len(nums) >= 6:
                frames += int(nums[4].replace(",", ""))
                nbytes += int(nums[5].replace(",", ""))
    return {"conversations": convs, "frames": frames, "bytes": nbytes}


def tl_totals(path: Path) -> dict:
    """Connections and conn_states from the text output's head and table
    (the JSON of a 10M-packet capture is over a gigabyte: not parsed here)."""
    import re
    text = path.read_text()
    head = re.search(r"([\d,]+) TCP packets, ([\d,]+) connections", text)
    states = dict((m.group(1), int(m.group(2).replace(",", "")))
                  for m in re.finditer(r"^  (S0|S1|SF|REJ|S2|S3|RSTO|RSTR|RSTOS0|RSTRH|SH|SHR|OTH)"
                                       r"\s+([\d,]+)", text, re.M))
    return {"tcp_packets": int(head.group(1).replace(",", "")),
            "connections": int(head.group(2).replace(",", "")), "conn_states": states}


def _raise(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    signal.signal(signal.SIGTERM, _raise)  # so that the namespace and files go too
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=count, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--file", type=Path, help="measure an existing capture instead")
    ap.add_argument("--keep", type=Path, help="write the capture here and keep it")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tl-wb-out-", dir="/tmp"))
    path = args.file or args.keep or tmp / "load.pcap"
    result = {"load": None}
    try:
        if args.file is None:
            result["load"] = build(path, args.packets)
        py = os.path.realpath(sys.executable)
        env_pp = str(ROOT / "src")
        tl = ["env", f"PYTHONPATH={env_pp}", py, "-m", "tcplinger", "pcap"]
        cmds = {"tshark": ["tshark", "-n", "-r", str(path), "-q", "-z", "conv,tcp"],
                "tcplinger": tl + [str(path)],
                "tcplinger-json": tl + ["--json", str(path)]}
        runs = {k: [] for k in cmds}
        for _ in range(args.repeat):
            for name, argv in cmds.items():
                runs[name].append(measure(argv, tmp / f"{name}.out"))
                print(name, runs[name][-1], file=sys.stderr)
        result["runs"] = runs
        result["tshark"] = tshark_totals(tmp / "tshark.out")
        result["tcplinger"] = tl_totals(tmp / "tcplinger.out")
        med = {k: sorted(r["wall_s"] for r in v)[len(v) // 2] for k, v in runs.items()}
        result["ratio_wall"] = {k: round(med[k] / med["tshark"], 3) for k in med}
        result["load_average"] = os.getloadavg()
        result["file_bytes"] = path.stat().st_size
        print(json.dumps(result, indent=1))
    finally:
        if args.file is None and args.keep is None and path.exists():
            path.unlink()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
