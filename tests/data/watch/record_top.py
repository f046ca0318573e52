#!/usr/bin/env python3
"""Record top_model.json: `tcplinger top`'s model of a namespace tl-w-rec-…
holding CLOSE_WAIT sockets from one process (a leak of 2/s for 6 s), a
few ESTABLISHED and TIME_WAIT, watched at 1 s: owners (the CLOSE_WAIT's
and the inferred culprit of the orphans and TIME_WAIT) and findings as
the report finds them. Run as root:

    python tests/data/watch/record_top.py > tests/data/watch/top_model.json
"""

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tcplinger.app.live_view import LiveOptions, live_view
from tcplinger.collect.snapshot import Scope
from tcplinger.i18n import Messages

PEER = r'''
import socket, time, sys
lst = socket.socket(); lst.bind(("127.0.0.1", 8080)); lst.listen(100)
keep = []
for i in range(3):
    c = socket.create_connection(("127.0.0.1", 8080)); s, _ = lst.accept(); keep += [c, s]
for i in range(4):
    c = socket.create_connection(("127.0.0.1", 8080)); s, _ = lst.accept(); c.close(); s.close()
for i in range(12):
    c = socket.create_connection(("127.0.0.1", 8080)); s, _ = lst.accept(); c.close(); keep.append(s)
    time.sleep(0.5)
print("ready", flush=True); sys.stdin.read()
'''

def main() -> None:
    name = "tl-w-rec-" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", name], check=True)
    procs = []
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        db = Path(tempfile.mkdtemp()) / "w.db"
        procs.append(subprocess.Popen([sys.executable, "-m", "tcplinger", "watch", "--netns", name,
                                       "--interval", "1", "--db", str(db)], stderr=subprocess.DEVNULL))
        time.sleep(2.5)
        peer = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-c", PEER],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(peer)
        peer.stdout.readline()
        time.sleep(2.5)
        model = live_view(LiveOptions(Scope(netns=name), db), Messages("en"))
        doc = model.to_json()
        # the namespace name is random: keep the recording stable
        text = json.dumps(doc, indent=1, ensure_ascii=False).replace(name, "tl-w-rec")
        print(text)
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", name])


if __name__ == "__main__":
    main()
