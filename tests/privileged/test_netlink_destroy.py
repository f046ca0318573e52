"""SOCK_DESTROY against a real kernel, in throwaway namespaces ``tl-nl-…``.

What Linux 6.18 did when these tests were written (they assert it, so a
different kernel shows up as a failure worth reading):

* CLOSE_WAIT socket we own: destroy answers 0; the socket leaves the
  tables; the owner's SO_ERROR is ECONNABORTED and its next send() fails
  with ECONNABORTED, while recv() keeps returning b"" (it had the peer's FIN
  already); the peer (half-closed FIN_WAIT2 with an fd) gets a RST and
  reads ECONNRESET.
* TIME_WAIT and orphaned FIN_WAIT2 minisockets: destroy answers 0 and the
  minisocket is gone (tcp_abort() handles TCP_TIME_WAIT on this kernel).
* Wrong cookie, and a 4-tuple nobody has: ENOENT.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import nlpopulation  # noqa: E402  (tests/privileged is on sys.path: conftest.py)

pytestmark = pytest.mark.privileged


P = nlpopulation.load()

from tcplinger.collect.netlink import wire  # noqa: E402
from tcplinger.collect.netlink.destroy import destroy, probe_destroy  # noqa: E402
from tcplinger.collect.netlink.dump import DiagSocket, lookup  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def world():
    """A fresh population per test: destroying changes it."""
    with P.Netns("destroy") as ns, P.Population(ns) as pop:
        diag = ns.run(DiagSocket)
        try:
            yield ns, pop, diag
        finally:
            diag.close()


def _find(pop, diag, label):
    e = next(e for e in pop.expected if e.label == label)
    table = lookup(e.family, *e.local, *e.remote, sock=diag)
    assert len(table) == 1, label
    return e, int(table.rows["cookie"][0])


def _destroy(pop, diag, label):
    e, cookie = _find(pop, diag, label)
    err = destroy(diag, e.family, *e.local, *e.remote, cookie)
    gone = len(lookup(e.family, *e.local, *e.remote, cookie, sock=diag)) == 0
    return e, err, gone


@pytest.mark.parametrize("fam", ["4", "6"])
def test_destroy_close_wait(world, fam, record_property):
    ns, pop, diag = world
    _, err, gone = _destroy(pop, diag, f"half{fam}_server")
    record_property("errno", err)
    assert err == 0 and gone
    owner = pop.socks[f"half{fam}_server"]
    assert owner.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNABORTED
    owner.settimeout(5)
    assert owner.recv(10) == b""  # it had the FIN already; SOCK_DONE wins in tcp_recvmsg()
    peer = pop.socks[f"half{fam}_client"]
    peer.settimeout(5)
    with pytest.raises(ConnectionResetError):
        peer.recv(10)  # tcp_abort() sent a RST from CLOSE_WAIT
    ss = P.parse_ss(ns.exec("ss", "-tanoe"))
    assert not any(line.state == "CLOSE_WAIT" and line.local[1] == P.PORT
                   and line.remote[1] == peer.getsockname()[1] for line in ss)


def test_destroyed_owner_send_fails(world):
    _, pop, diag = world
    _, err, _ = _destroy(pop, diag, "half4_server")
    assert err == 0
    with pytest.raises(ConnectionAbortedError):
        pop.socks["half4_server"].send(b"x")


def test_destroyed_established_owner_reads_data_then_error(world):
    _, pop, diag = world
    _, err, gone = _destroy(pop, diag, "est4_client")
    assert err == 0 and gone
    owner = pop.socks["est4_client"]
    owner.settimeout(5)
    assert owner.recv(1000) == b"x" * 100  # queued data is still delivered
    with pytest.raises(ConnectionAbortedError):
        owner.recv(1000)


@pytest.mark.parametrize("label", ["tw4_client", "tw6_client", "orphan4_client", "orphan6_client"])
def test_destroy_timewait_type(world, label, record_property):
    """6.18 destroys TIME_WAIT and orphaned FIN_WAIT2 minisockets (answer 0)."""
    ns, pop, diag = world
    e, err, gone = _destroy(pop, diag, label)
    record_property("errno", err)
    assert err == 0, errno.errorcode.get(err, err)
    assert gone
    ss = P.parse_ss(ns.exec("ss", "-tanoe"))
    assert not any(line.local == e.local and line.remote == e.remote for line in ss)


def test_destroy_wrong_cookie_and_missing(world, record_property):
    _, pop, diag = world
    e, cookie = _find(pop, diag, "half4_server")
    err = destroy(diag, e.family, *e.local, *e.remote, cookie ^ 1)
    record_property("wrong_cookie_errno", err)
    assert err == errno.ENOENT
    assert len(lookup(e.family, *e.local, *e.remote, cookie, sock=diag)) == 1
    err = destroy(diag, socket.AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 12345)
    assert err == errno.ENOENT


def test_destroy_refuses_without_cookie(world):
    _, pop, diag = world
    e, _ = _find(pop, diag, "half4_server")
    with pytest.raises(ValueError):
        destroy(diag, e.family, *e.local, *e.remote, wire.NO_COOKIE)


def test_probe_destroy_in_namespace():
    with P.Netns("probe") as ns:
        ok, why = ns.run(probe_destroy)
        assert ok, why
        assert "CONFIG_INET_DIAG_DESTROY" in why
        left = P.parse_ss(ns.exec("ss", "-tanoe"))
    # Its own sockets are closed again (a TIME_WAIT may remain from close()).
    assert all(line.state in ("TIME_WAIT", "FIN_WAIT2") for line in left)


def test_probe_destroy_without_privilege():
    """Root without capabilities (setpriv drops them all; uid 0 keeps the
    Python installation readable): the probe answers EPERM."""
    code = ("from tcplinger.collect.netlink.destroy import probe_destroy; "
            "ok, why = probe_destroy(); print(ok); print(why)")
    with P.Netns("probeuser") as ns:
        out = subprocess.run(
            ["ip", "netns", "exec", ns.name, "setpriv", "--bounding-set=-all", "--inh-caps=-all",
             sys.executable, "-c", code],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SRC)})
    assert out.returncode == 0, out.stderr
    ok, why = out.stdout.splitlines()[:2]
    assert ok == "False" and "EPERM" in why


def test_probe_destroy_without_loopback():
    with P.Netns("nolo") as ns:
        subprocess.run(["ip", "-n", ns.name, "link", "set", "lo", "down"], check=True)
        ok, why = ns.run(probe_destroy)
    assert not ok and "loopback" in why
