"""keepalive-timeout-fin-wait-2: whether the server closed on an idle
keep-alive timeout or right after its response, read from the visible
clients' tcp_info (last_data_recv - last_ack_recv). Figures from ss -tni
on real servers (the rule's docstring): Node.js keepAliveTimeout 3000 ms
left a 4.0 s gap, gunicorn's sync worker 0 ms."""

from tcplinger.diagnose.builder import SocketBuilder, namespace, owners_for
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.finding import FixKind, Severity
from tcplinger.i18n import LANGS, Messages

N = 12


def seed_002(data_ms: int, ack_ms: int, *, client_timer: int = 0):
    """``N`` orphaned FIN_WAIT2 on 127.0.0.1:8080 (30 s after close()),
    their clients in CLOSE_WAIT in the same namespace, held by pid 7."""
    b = SocketBuilder()
    b.add("LISTEN", "127.0.0.1:8080", inode=1)
    b.add("FIN_WAIT2", "127.0.0.1:8080", "127.0.0.1:40000", inode=0, timer=3,
          expires_ms=30_000, count=N)
    b.add("CLOSE_WAIT", "127.0.0.1:40000", "127.0.0.1:8080", vary="sport", inode=100,
          count=N, recv_q=1, timer=client_timer, last_data_recv=data_ms, last_ack_recv=ack_ms,
          last_data_sent=data_ms)
    owners = owners_for(1, 1, 5, "node") | owners_for(100, N, 7, "python3")
    return namespace(b.table(), owners=owners, sysctls={"tcp_fin_timeout": 60})


def finding(ns):
    [f] = diagnose([ns], rules=["keepalive-timeout-fin-wait-2"])
    return f


def app_fixes(f):
    return [x.text.key.rsplit(".", 1)[-1] for x in f.fixes if x.kind == FixKind.APP]


def test_idle_timeout_measured_from_the_clients():
    # Node.js, keepAliveTimeout 3000: the FIN came 4.0 s after the response
    f = finding(seed_002(34_000, 30_000))
    assert f.severity == Severity.WARNING
    assert f.title.key.endswith(".title")
    assert f.evidence["idle_before_close"] == {"median_s": 4.0, "min_s": 4.0, "max_s": 4.0,
                                               "clients": N}
    assert f.evidence["closed_after_response"] is False
    assert any(t.key.endswith("fact.idle") for t in f.facts)
    assert app_fixes(f) == ["clients", "server_timeout"]


def test_closed_right_after_the_response_is_no_keepalive_timeout():
    # gunicorn's sync worker (HTTP/1.0 style): FIN with the response
    f = finding(seed_002(30_000, 30_000))
    assert f.title.key.endswith(".title_after_response")
    assert f.evidence["closed_after_response"] is True
    assert any(t.key.endswith("fact.idle_immediate") for t in f.facts)
    assert any(t.key.endswith("cause.after_response") for t in f.cause)
    # no keep-alive timeout to lower
    assert app_fixes(f) == ["clients"]
    for lang in LANGS:
        msg = Messages(lang)
        assert "{" not in f.title.render(msg)
        assert all("{" not in t.render(msg) for t in f.facts)


def test_clients_with_so_keepalive_do_not_measure_it():
    # the orphan answers their probes: last_ack_recv moves, the gap lies
    f = finding(seed_002(34_000, 800, client_timer=2))
    assert f.evidence["idle_before_close"] is None
    assert f.evidence["closed_after_response"] is False
    assert f.title.key.endswith(".title")
