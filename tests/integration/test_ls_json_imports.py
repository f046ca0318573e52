"""`ls --json` and `kill --comm`'s inode selection must not import numpy.ma
(issue 16: a plain np.unique of integers takes numpy 2.3+'s hash path,
which imports numpy.ma, 16-17 ms of CPU of a short-lived command; the
rules and the owner walk were cleared of it before, see
tests/unit/test_table_helpers.py). Real loopback sockets, a real start of
the command, Python's own import log."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _env():
    return dict(os.environ, PYTHONPATH=str(SRC))


def test_ls_json_imports_no_numpy_ma():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    cli = socket.create_connection(srv.getsockname())
    acc, _ = srv.accept()
    acc.close()  # cli in CLOSE_WAIT: a teardown row beside ESTABLISHED and LISTEN ones
    try:
        for extra in ([], ["--owners"]):
            out = subprocess.run([sys.executable, "-X", "importtime", "-m", "tcplinger", "ls",
                                  "--json", "--port", str(srv.getsockname()[1]), *extra],
                                 capture_output=True, text=True, env=_env(), timeout=120)
            assert out.returncode == 0, out.stderr[-2000:]
            assert json.loads(out.stdout), "the listener and its connection are listed"
            imported = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines()]
            assert "numpy.ma" not in imported, extra
    finally:
        cli.close()
        srv.close()


PROBE = """
import sys
import numpy as np
from tcplinger.model.owner_map import OwnerMap
from tcplinger.model.socket import Owner
owners = {ino: (Owner(pid=pid, comm=comm, fd=fd),) for ino, pid, comm, fd in
          ((9, 10, "a", 3), (4, 10, "a", 4), (7, 11, "b", 3), (4, 12, "a", 5))}
m = OwnerMap.of(owners)
assert m.inodes_held_by(lambda p: p.comm == "a").tolist() == [4, 9]
assert m.inodes_held_by(lambda p: False).tolist() == []
print("numpy.ma" in sys.modules)
"""


def test_kill_comm_selection_imports_no_numpy_ma():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         env=_env(), timeout=60, check=True)
    assert out.stdout.strip() == "False"
