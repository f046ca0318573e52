"""tune planning from real findings (the diagnose engine over built tables):
proposals within bounds, never tcp_tw_recycle, advice where no sysctl
helps; the sysctl.d snippet; apply/revert against a recorded /proc/sys."""

import io
import itertools
import json

import pytest

from tcplinger.act import sysctl_state as st
from tcplinger.diagnose import sysctl_bounds as sb
from tcplinger.act.tune_plan import NamespaceFacts, format_value, plan
from tcplinger.cli.commands import tune as tune_cmd
from tcplinger.cli.terminal import Terminal
from tcplinger.diagnose.builder import DEFAULT_SYSCTLS, SocketBuilder, namespace, owners_for
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.sysctl_files import parse as parse_sysctl_file
from tcplinger.i18n import LANGS, Messages
from tcplinger.model.kernel import SockStat


def facts_of(ns, *, host=False, extra=None):
    sysctls = dict(ns.kernel.sysctls)
    sysctls.setdefault("tcp_timestamps", 1)
    sysctls.update(extra or {})
    return NamespaceFacts(ns.netns, sysctls, host)


def tune(ns, *, host=False, extra=None, **kw):
    findings = diagnose([ns], **kw)
    return plan(findings, [facts_of(ns, host=host, extra=extra)])


def orphans(n, fin=60):
    b = SocketBuilder()
    # 5 s left: at least 10 s after close() whatever fin (past min_age)
    b.add("FIN_WAIT2", "10.0.0.1:80", "10.0.0.9:1000", inode=0, timer=3, expires_ms=5_000,
          count=n)
    return namespace(b.table(), sysctls={"tcp_fin_timeout": fin})


def props(p):
    return {x.key: (x.current, x.proposed, x.rules) for x in p.proposals}


# ---- findings to proposals ---------------------------------------------------------

@pytest.mark.parametrize("fin,proposed", [(60, 30), (45, 30), (120, 30), (70, 30), (30, None),
                                          (20, 30)])
def test_orphan_fin_wait2(fin, proposed):
    p = tune(orphans(2000, fin))
    got = props(p).get("tcp_fin_timeout")
    assert (got[1] if got else None) == proposed
    if fin == 30:
        assert any(t.key == "tune.advice.no_lower" for a in p.advice for t in a.texts)
    if fin in (70, 120):  # the folklore finding (above 60) proposes the same value: one proposal
        assert got[2] == ("orphan-fin-wait-2", "sysctl-folklore")
    if fin == 20:  # below the floor: raised back, by the bounds check
        assert got[2] == ("bounds",)


def test_few_orphans_are_info_and_change_nothing():
    p = tune(orphans(10))
    assert p.proposals == [] and p.below_warning == 1


def test_close_wait_leak_is_a_code_bug():
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:8080", "10.0.0.9:40000", inode=5000, recv_q=1,
          last_ack_recv=60_000, count=50)  # a minute old: past min_age, a leak that lasts
    ns = namespace(b.table(), owners=owners_for(5000, 50, 4242, "java"))
    p = tune(ns)
    assert p.proposals == []
    [a] = p.advice
    assert a.rule == "close-wait-leak"
    assert [t.key for t in a.texts] == ["tune.advice.close_wait", "tune.remedy.close_wait"]
    assert "tcplinger kill --pid 4242" in a.texts[1].render(Messages("en"))


def tw(n, *, buckets=1000, server=True):
    b = SocketBuilder()
    b.add("LISTEN", "0.0.0.0:80")
    if server:
        b.add("TIME_WAIT", "10.0.0.1:80", "10.0.0.9:1000", inode=0, timer=3,
              expires_ms=30_000, count=n)
    else:
        b.add("TIME_WAIT", "10.0.0.1:40000", "10.0.0.7:5432", vary="sport", inode=0, timer=3,
              expires_ms=30_000, count=n)
    return namespace(b.table(), sysctls={"tcp_max_tw_buckets": buckets, "tcp_tw_reuse": 2})


def test_time_wait_client_side():
    p = tune(tw(600, server=False))
    got = props(p)
    assert got["tcp_tw_reuse"][:2] == (2, 1)
    assert got["tcp_max_tw_buckets"][:2] == (1000, 2048)


def test_time_wait_server_side_has_no_knob():
    p = tune(tw(600, server=True))
    assert "tcp_tw_reuse" not in props(p)
    assert any(t.key == "tune.advice.tw_server" for a in p.advice for t in a.texts)


def test_tw_reuse_needs_timestamps():
    p = tune(tw(600, server=False), extra={"tcp_timestamps": 0})
    assert "tcp_tw_reuse" not in props(p)
    [t] = [t for a in p.advice for t in a.texts if t.key == "tune.advice.requires"]
    assert t.fields["need"] == "net.ipv4.tcp_timestamps" and t.fields["have"] == 0


def test_keepalive_only_for_sockets_with_so_keepalive():
    b = SocketBuilder()
    b.add("ESTABLISHED", "10.0.0.1:5000", "10.0.0.9:443", inode=10, timer=2,
          expires_ms=3_000_000, last_ack_recv=600_000, last_data_recv=600_000,
          last_data_sent=600_000, count=3)
    th = {"keepalive-vs-idle-timeout": {"warning_count": 1}}
    p = tune(namespace(b.table()), thresholds=th)
    assert props(p)["tcp_keepalive_time"][:2] == (7200, 192)
    b = SocketBuilder()
    b.add("ESTABLISHED", "10.0.0.1:5000", "10.0.0.9:443", inode=10, last_ack_recv=600_000,
          last_data_recv=600_000, last_data_sent=600_000, count=3)
    p = tune(namespace(b.table()), thresholds=th)
    assert "tcp_keepalive_time" not in props(p)
    assert any(t.key == "tune.advice.keepalive_none" for a in p.advice for t in a.texts)


def orphan_limit_ns(orphans=60_000, maximum=100_000, tcp_mem=(100, 200, 300_000)):
    b = SocketBuilder()
    b.add("FIN_WAIT1", "10.0.0.1:80", "10.0.0.9:1000", inode=0, count=5)
    return namespace(b.table(), sysctls={"tcp_max_orphans": maximum, "tcp_mem": tcp_mem},
                     sockstat=SockStat(orphan=orphans))


def test_orphan_limit_on_the_host_and_in_a_child():
    host = tune(orphan_limit_ns(), host=True)
    got = props(host)
    assert got["tcp_orphan_retries"][1] == 6
    # 300000 pages * 4 KiB / 64 KiB = 18750 orphans fit in tcp_mem: below the current max
    assert "tcp_max_orphans" not in got
    assert any(t.key == "tune.advice.orphan_mem" for a in host.advice for t in a.texts)
    big = tune(orphan_limit_ns(tcp_mem=(100, 200, 10_000_000)), host=True)
    assert props(big)["tcp_max_orphans"][1] == 200_000
    assert props(big)["tcp_max_orphans"] and big.proposals[-1].host_wide
    child = tune(orphan_limit_ns(tcp_mem=(100, 200, 10_000_000)), host=False)
    assert "tcp_max_orphans" not in props(child)
    assert any(t.key == "tune.advice.host_only" for a in child.advice for t in a.texts)


def test_bounds_check_raises_what_is_below_the_floors():
    ns = namespace(SocketBuilder().table(), sysctls={
        "tcp_fin_timeout": 5, "tcp_keepalive_probes": 1, "tcp_retries2": 3,
        "tcp_orphan_retries": 2})
    got = props(tune(ns))
    assert {k: v[:2] for k, v in got.items()} == {
        "tcp_fin_timeout": (5, 30), "tcp_keepalive_probes": (1, 3), "tcp_retries2": (3, 8),
        "tcp_orphan_retries": (2, 5)}
    assert tune(namespace(SocketBuilder().table())).proposals == []  # defaults are fine


# ---- the promises, over many inputs -----------------------------------------------

SCENARIOS = [
    lambda fin: orphans(5000, fin),
    lambda fin: tw(900, server=False),
    lambda fin: tw(900, server=True),
    lambda fin: orphan_limit_ns(tcp_mem=(1, 2, 50_000_000)),
]


def p_facts(ns, extra):
    return {**ns.kernel.sysctls, **extra}


@pytest.mark.parametrize("make,fin,host", list(itertools.product(
    SCENARIOS, [1, 5, 10, 29, 30, 31, 59, 60, 61, 90, 600], [False, True])))
def test_every_proposal_is_within_bounds(make, fin, host):
    ns = make(fin)
    extra = {"tcp_fin_timeout": fin, "tcp_keepalive_time": fin * 10}
    p = plan(diagnose([ns]), [facts_of(ns, host=host, extra=extra)])
    for x in p.proposals:
        assert x.key not in sb.NEVER and "recycle" not in x.sysctl
        assert sb.problems(x.key, x.proposed, x.current, p_facts(ns, extra)) == (), x
        if x.key in ("tcp_max_tw_buckets", "tcp_max_orphans", "nf_conntrack_max"):
            assert x.proposed > x.current  # only ever raised
        assert x.why and x.risk.key.startswith("tune.risk.") and x.bound.key.startswith(
            "sysctl.bound.")
        if x.host_wide:
            assert host


@pytest.mark.parametrize("lang", LANGS)
def test_every_text_renders(lang):
    msg = Messages(lang)
    plans = [tune(orphans(5000)), tune(tw(900, server=False)), tune(tw(900)),
             tune(orphan_limit_ns(tcp_mem=(1, 2, 50_000_000)), host=True)]
    for p in plans:
        for x in p.proposals:
            for t in x.why + (x.risk, x.bound):
                assert "{" not in t.render(msg)
        for a in p.advice:
            for t in a.texts:
                assert "{" not in t.render(msg)


# ---- the snippet and the JSON ----------------------------------------------------------

def test_snippet_is_a_valid_sysctl_file():
    p = tune(tw(600, server=False))
    text = tune_cmd.snippet(p, Messages("en"), p.proposals[0].netns.inode, host=False)
    settings = {s.key: s.value for s in parse_sysctl_file("x", text)}
    assert settings == {"net.ipv4.tcp_tw_reuse": "1", "net.ipv4.tcp_max_tw_buckets": "2048"}
    assert "child network namespace" in text
    assert all(line.startswith("#") or "=" in line or not line for line in text.splitlines())


def test_plan_json():
    p = tune(orphans(5000))
    doc = json.loads(json.dumps(tune_cmd.plan_json(p, Messages("en"))))
    [x] = doc["proposals"]
    assert x["sysctl"] == "net.ipv4.tcp_fin_timeout" and (x["current"], x["proposed"]) == (60, 30)
    assert x["command"] == "sysctl -w net.ipv4.tcp_fin_timeout=30"
    assert x["rules"] == ["orphan-fin-wait-2"] and "ip-sysctl" in " ".join(x["sources"])
    assert doc["never"] == ["tcp_tw_recycle"]
    assert doc["findings"][0]["rule"] == "orphan-fin-wait-2"


def test_format_value():
    assert format_value((10000, 65535)) == "10000 65535" and format_value(7) == "7"


# ---- apply and revert on a recorded /proc/sys -------------------------------------------

def fake_proc_sys(tmp_path, values):
    root = tmp_path / "sys"
    for path, text in values.items():
        f = root / path
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text + "\n")
    return root


def test_apply_then_revert_restores_every_value_exactly(tmp_path):
    root = fake_proc_sys(tmp_path, {"net/ipv4/tcp_fin_timeout": "60",
                                     "net/ipv4/ip_local_port_range": "32768\t60999"})
    from tcplinger.model.socket import NetnsRef
    ref = NetnsRef(42, "blue")
    state = st.StateFile(tmp_path / "state" / "tune.json")
    changes = [st.Change("net.ipv4.tcp_fin_timeout", "net/ipv4/tcp_fin_timeout", "30"),
               st.Change("net.ipv4.ip_local_port_range", "net/ipv4/ip_local_port_range",
                         "10000 65535")]
    before = st.read_values([c.path for c in changes], root)
    st.record_intent(state, ref, changes, before, "t0", "r1")
    out = st.write_values(changes, root)
    assert all(o.ok for o in out)
    # applying again keeps the first previous values
    st.record_intent(state, ref, changes[:1], st.read_values(["net/ipv4/tcp_fin_timeout"], root),
                     "t1", "r2")
    entry = state.entry(ref)
    assert entry["values"]["net.ipv4.tcp_fin_timeout"]["previous"] == "60"
    items = st.revert_items(entry, st.read_values([c.path for c in changes], root))
    assert not any(i.drifted for i in items)
    back = st.write_values([st.Change(i.sysctl, i.path, i.previous) for i in items], root)
    assert all(o.ok for o in back)
    st.forget(state, ref, [o.sysctl for o in back])
    assert (root / "net/ipv4/ip_local_port_range").read_text() == "32768\t60999\n"
    assert (root / "net/ipv4/tcp_fin_timeout").read_text() == "60\n"
    assert not state.path.exists()  # nothing left to revert


def test_revert_leaves_values_changed_by_someone_else(tmp_path):
    entry = {"values": {"net.ipv4.tcp_fin_timeout": {"path": "p", "previous": "60",
                                                     "applied": "30"}}}
    [i] = st.revert_items(entry, {"p": "45"})
    assert i.drifted
    [i] = st.revert_items(entry, {"p": "60"})
    assert not i.drifted  # already back: nothing to fear


def test_cli_revert_with_nothing_recorded(cli, tmp_path):
    state = tmp_path / "s.json"
    state.write_text('{"version": 1, "namespaces": {}}\n')
    code, out, _ = cli("tune", "--revert", "--state-file", str(state))
    assert code == 0 and "Nothing to revert" in out


def test_cli_revert_with_a_named_state_file_that_is_missing(cli, tmp_path):
    """Issue 13: it said "... records no change made there" and exit 0."""
    missing = tmp_path / "none" / "s.json"
    code, out, err = cli("tune", "--revert", "--yes", "--state-file", str(missing))
    assert (code, out) == (3, "")
    assert err == f"tcplinger: No such file or directory: {missing}\n"


@pytest.mark.parametrize("content,reason", [(b"precious\n", "not JSON"),
                                            (b"\xff\xfe\x00", "not JSON"),
                                            (b'{"not": "tcplinger"}', "other JSON")])
def test_cli_revert_names_a_state_file_that_is_not_ours(cli, tmp_path, content, reason):
    state = tmp_path / "s.json"
    state.write_bytes(content)
    code, out, err = cli("tune", "--revert", "--yes", "--state-file", str(state))
    assert (code, out) == (7, "")
    assert err == (f"tcplinger: {state} is not a tcplinger tune state file ({reason});"
                   " it was left as it is\n")
    assert state.read_bytes() == content


def test_cli_apply_refuses_all_netns(cli):
    code, _, err = cli("tune", "--apply", "--all-netns")
    assert code == 2 and "one namespace" in err


def test_defaults_have_no_tw_recycle():
    assert "tcp_tw_recycle" not in DEFAULT_SYSCTLS and "tcp_tw_recycle" not in sb.BOUNDS


@pytest.mark.parametrize("lang", LANGS)
def test_every_act_message_formats(lang):
    """Fields are passed as keywords to Messages(key, **fields): a field
    named ``key`` would collide (TypeError), and every field must fill."""
    import string

    from tcplinger.i18n import catalog

    msg = Messages(lang)
    for key, text in catalog(lang).items():
        if not key.startswith(("kill.", "tune.")):
            continue
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        assert "key" not in fields, key
        assert "{" not in msg(key, **{f: "x" for f in fields}), key


@pytest.mark.parametrize("lang,answer,ok", [("en", "y\n", True), ("en", "yes\n", True),
                                            ("en", "n\n", False), ("en", "", False),
                                            ("en", "\n", False), ("zh", "是\n", True)])
def test_confirmation_reads_the_injected_stdin(lang, answer, ok):
    out, err = io.StringIO(), io.StringIO()
    term = Terminal(stdout=out, stderr=err, env={}, is_tty=False)
    term.stdin = io.StringIO(answer)
    opts = tune_cmd.TuneOptions(diagnose=None)
    assert tune_cmd._confirm(opts, term, Messages(lang), "tune.confirm.apply", n=2,
                             netns="blue") is ok
    assert "[y/N]" in err.getvalue() and out.getvalue() == ""
    assert tune_cmd._confirm(tune_cmd.TuneOptions(diagnose=None, yes=True), term,
                             Messages(lang), "tune.confirm.apply", n=2, netns="blue")
