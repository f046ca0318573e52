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
from tcplinger.collect.netlink import destroy as destroy_mod  # noqa: E402
from tcplinger.collect.netlink.destroy import destroy  # noqa: E402
from tcplinger.collect.netlink.dump import DiagSocket, lookup  # noqa: E402
from tcplinger.model.sock_destroy import Kind, Status  # noqa: E402

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


def test_probe_in_namespace():
    """The probe kill and doctor share: every kind ends on 6.18, probed in a
    namespace of its own that leaves nothing behind in the caller's."""
    with P.Netns("probe") as ns:
        support = ns.run(destroy_mod.probe)
        left = P.parse_ss(ns.exec("ss", "-tanoe"))
    assert support.where == "private", support
    assert {k: support.get(k).status for k in Kind} == {k: Status.WORKS for k in Kind}, support
    assert left == []


PROBE_CODE = ("from tcplinger.collect.netlink import destroy; s = destroy.probe(); "
              "print(s.where); print(s.get('full').status.value); print(s.get('full').detail)")


def _probe_with_caps(ns, caps: str) -> list[str]:
    out = subprocess.run(
        ["ip", "netns", "exec", ns.name, "setpriv", f"--bounding-set={caps}", "--inh-caps=-all",
         sys.executable, "-c", PROBE_CODE],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SRC)})
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()[:3]


def test_probe_without_privilege():
    """Root without capabilities (setpriv drops them all; uid 0 keeps the
    Python installation readable): no private namespace (unshare needs
    CAP_SYS_ADMIN), and in the current one the kernel answers EPERM."""
    with P.Netns("probeuser") as ns:
        where, status, why = _probe_with_caps(ns, "-all")
    assert (where, status) == ("current", "denied") and "EPERM" in why


def test_probe_without_loopback():
    """CAP_NET_ADMIN but no CAP_SYS_ADMIN: the probe runs in the current
    namespace, whose loopback is down, and says it could not build its
    connection (instead of claiming anything about the kernel)."""
    with P.Netns("nolo") as ns:
        subprocess.run(["ip", "-n", ns.name, "link", "set", "lo", "down"], check=True)
        where, status, why = _probe_with_caps(ns, "-all,+net_admin")
    assert (where, status) == ("current", "unknown") and "loopback" in why

def test_doctor_reports_the_probe_kill_runs():
    """doctor's SOCK_DESTROY line is destroy.probe()'s answer: they cannot
    disagree."""
    from tcplinger.collect import features
    with P.Netns("doctor") as ns:
        [feature] = ns.run(features._sock_destroy)
    assert feature.ok and feature.reason == "destroy_ok", feature
    assert feature.fields == {"full": "works", "timewait": "works", "orphan": "works"}
