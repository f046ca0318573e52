"""Ages one snapshot tells from the timers (track/age.py), against the
kernel's arithmetic written out by hand.

The facts (net/ipv4/tcp.c ``__tcp_close()``, net/ipv4/tcp_timer.c
``tcp_keepalive_timer()``, net/ipv4/tcp_minisocks.c ``tcp_time_wait()``;
measured by the lab, docs/kernel-behaviour.md):

* TIME_WAIT: a minisocket armed for TCP_TIMEWAIT_LEN = 60 s, so
  age = 60 - timer left.
* orphaned FIN_WAIT2 with fin time T <= 60: a minisocket armed for T
  (``tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)``), age = T - left.
* T > 60: first the full socket with the keepalive timer armed for
  T - 60 (``inet_csk_reset_keepalive_timer(sk, tmo - TCP_TIMEWAIT_LEN)``,
  ss shows timer 2 = keepalive, inode 0), age = (T - 60) - left; then a
  minisocket armed for another T - 60, age = (T - 60) + (T - 60) - left.
"""

import math

import pytest

from tcplinger.diagnose.builder import SocketBuilder
from tcplinger.model.kernel import KernelContext
from tcplinger.track.age import timer_ages

KEEPALIVE, TIMEWAIT = 2, 3  # ss timer codes (the "timer" column)


def ages(fin_timeout, *rows):
    b = SocketBuilder()
    for state, timer, timewait, inode, left_ms in rows:
        b.add(state, "10.0.0.1:80", "10.0.0.2:4000", inode=inode, timer=timer,
              timewait=timewait, expires_ms=left_ms)
    got = timer_ages(b.table(), KernelContext(sysctls={"tcp_fin_timeout": fin_timeout}))
    return [None if math.isnan(a) else round(a, 3) for a in got.tolist()]


def test_time_wait_is_60_minus_left_whatever_fin_timeout():
    for fin in (2, 60, 90):
        assert ages(fin, ("TIME_WAIT", TIMEWAIT, True, 0, 45_000)) == [15.0]


@pytest.mark.parametrize("fin,left_ms,expected", [
    (30, 29_000, 1.0),     # 30 - 29
    (60, 59_000, 1.0),     # T = 60 is still one minisocket phase: 60 - 59
    (60, 250, 59.75),
])
def test_orphan_fin_wait2_at_most_60_is_one_minisocket(fin, left_ms, expected):
    assert ages(fin, ("FIN_WAIT2", TIMEWAIT, True, 0, left_ms)) == [expected]


@pytest.mark.parametrize("fin,left_ms,expected", [
    (90, 12_000, 18.0),   # phase 30 s: 30 - 12
    (90, 30_000, 0.0),    # just became an orphan
    (61, 800, 0.2),       # phase 1 s: 1 - 0.8
    (120, 1_000, 59.0),   # phase 60 s
])
def test_orphan_fin_wait2_above_60_first_phase_full_socket(fin, left_ms, expected):
    assert ages(fin, ("FIN_WAIT2", KEEPALIVE, False, 0, left_ms)) == [expected]


@pytest.mark.parametrize("fin,left_ms,expected", [
    (90, 10_000, 50.0),   # 30 s full + (30 - 10) s as a minisocket
    (90, 30_000, 30.0),   # just became a minisocket: the whole first phase behind it
    (61, 500, 1.5),       # 1 + (1 - 0.5)
    (120, 59_000, 61.0),  # 60 + 1
])
def test_orphan_fin_wait2_above_60_second_phase_minisocket(fin, left_ms, expected):
    assert ages(fin, ("FIN_WAIT2", TIMEWAIT, True, 0, left_ms)) == [expected]


def test_what_the_timer_does_not_tell_stays_unknown():
    """An owned FIN_WAIT2 (inode != 0) has no fin timer (it never times
    out); its keepalive timer says nothing of its age. CLOSE_WAIT neither."""
    assert ages(90, ("FIN_WAIT2", KEEPALIVE, False, 1234, 5_000),
                ("CLOSE_WAIT", KEEPALIVE, False, 1235, 5_000),
                ("FIN_WAIT2", 0, False, 0, 0)) == [None, None, None]


def test_never_a_negative_age():
    """A socket with its own TCP_LINGER2 (which cannot be read back) can
    show more time left than the namespace's T: the age is then 0."""
    assert ages(30, ("FIN_WAIT2", TIMEWAIT, True, 0, 40_000)) == [0.0]
