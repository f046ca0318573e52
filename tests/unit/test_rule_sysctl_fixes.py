"""Every sysctl value a rule's fix proposes keeps the bounds tune keeps
(diagnose/sysctl_bounds.py), and ``report`` and ``tune`` propose the same
values for the same findings.

Each rule is triggered by a table built by hand (diagnose/builder.py) over a
grid of settings: the floors and ceilings, the kernel defaults, values above
60 s for tcp_fin_timeout, tcp_orphan_retries 0 (which means 8), port ranges
already below 10000, conntrack timeouts on both sides of the proposals."""

from __future__ import annotations

import itertools
import json

import pytest

from tcplinger.act.tune_plan import NamespaceFacts, plan
from tcplinger.cli.commands import tune as tune_cmd
from tcplinger.diagnose import sysctl_bounds as sb
from tcplinger.diagnose import sysctl_proposals as propose
from tcplinger.diagnose.builder import SocketBuilder, namespace, owners_for
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.finding import Fix, FixKind, Severity, SysctlChange, Text
from tcplinger.diagnose.rules import MODULES
from tcplinger.diagnose.sysctl_files import SysctlSetting
from tcplinger.export import findings as findings_export
from tcplinger.i18n import LANGS, Messages
from tcplinger.model.kernel import SockStat

#: tune acts on WARNING and up: these make the info-only rules count.
THRESHOLDS = {"keepalive-vs-idle-timeout": {"warning_count": 1}}

FIN = [1, 5, 10, 29, 30, 31, 45, 59, 60, 61, 70, 75, 90, 120, 600]
ORPHAN_RETRIES = [0, 1, 3, 4, 5, 6, 7, 8, 15]
RANGES = [(32768, 60999), (40000, 41999), (1024, 60999), (1024, 65535), (10000, 65535),
          (50000, 50999), (9000, 9999)]
TW_REUSE = [0, 1, 2]
KEEPALIVE = [60, 120, 150, 191, 192, 600, 7200]
IDLE_TIMEOUTS = [100, 150, 151, 240, 350, 600, 3600]
CT_CLOSE_WAIT = [5, 60, 3600, 7200]
CT_ESTABLISHED = [1800, 7440, 86400, 432000]


# ---- one builder per rule ------------------------------------------------------------

def close_wait(**sysctls):
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:8080", "10.0.0.9:40000", inode=5000, recv_q=1,
          last_ack_recv=400_000, count=30)
    return [namespace(b.table(), owners=owners_for(5000, 30, 4242, "java"), sysctls=sysctls)]


def half_closed(**sysctls):
    b = SocketBuilder()
    b.add("FIN_WAIT2", "10.0.0.1:50000", "10.0.0.8:443", vary="sport", inode=300, count=12,
          shutdown=2, last_ack_recv=400_000)
    return [namespace(b.table(), owners=owners_for(300, 12, 11, "curl"), sysctls=sysctls)]


def orphan_fw2(fin, **sysctls):
    b = SocketBuilder()
    b.add("FIN_WAIT2", "10.0.0.1:80", "10.0.0.9:1000", inode=0, timer=3,
          expires_ms=min(fin, 60) * 500, count=2000)
    return [namespace(b.table(), sysctls={"tcp_fin_timeout": fin, **sysctls})]


def time_wait(client, buckets, reuse, rng=(32768, 60999), overflow=None):
    b = SocketBuilder()
    b.add("LISTEN", "0.0.0.0:80")
    if client:
        b.add("TIME_WAIT", "10.0.0.1:40000", "10.0.0.7:5432", vary="sport", inode=0, timer=3,
              expires_ms=30_000, count=1200)
    else:
        b.add("TIME_WAIT", "10.0.0.1:80", "10.0.0.9:1000", inode=0, timer=3,
              expires_ms=30_000, count=1200)
    kw = {}
    if overflow is not None:
        kw = {"tcpext": {"TCPTimeWaitOverflow": overflow + 5},
              "previous_tcpext": {"TCPTimeWaitOverflow": 5}, "interval": 1.0}
    return [namespace(b.table(), sysctls={"tcp_max_tw_buckets": buckets, "tcp_tw_reuse": reuse,
                                          "ip_local_port_range": rng}, **kw)]


def ports(rng, reuse, state="TIME_WAIT"):
    lo, hi = rng
    n = int((hi - lo + 1) * 0.95)
    b = SocketBuilder()
    b.add(state, f"10.0.0.1:{lo}", "10.0.0.7:5432", vary="sport", inode=0 if state ==
          "TIME_WAIT" else None, timer=3 if state == "TIME_WAIT" else 0, expires_ms=30_000,
          count=n)
    return [namespace(b.table(), sysctls={"ip_local_port_range": rng, "tcp_tw_reuse": reuse,
                                          "tcp_max_tw_buckets": 1 << 20})]


def unacked(state, retries, owned=False):
    b = SocketBuilder()
    b.add(state, "10.0.0.1:80", "10.0.0.11:3000", inode=700 if owned else 0, timer=1,
          retrans=4, count=20)
    owners = owners_for(700, 20, 5, "app") if owned else None
    return [namespace(b.table(), owners=owners, sysctls={"tcp_orphan_retries": retries})]


def orphan_limit(retries, maximum, tcp_mem, orphans, child_first=False):
    b = SocketBuilder()
    b.add("FIN_WAIT1", "10.0.0.1:80", "10.0.0.9:1000", inode=0, count=5)
    host = namespace(b.table(), name="host", inode=1,
                     sysctls={"tcp_max_orphans": maximum, "tcp_mem": tcp_mem,
                              "tcp_orphan_retries": retries},
                     sockstat=SockStat(orphan=orphans, mem_pages=5))
    if not child_first:
        return [host]
    child = namespace(SocketBuilder().table(), name="child", inode=2,
                      sysctls={"tcp_max_orphans": None, "tcp_orphan_retries": retries},
                      sockstat=SockStat(orphan=orphans, mem_pages=5))
    return [child, host]


def keepalive(idle_timeout, kt, with_ka=True):
    b = SocketBuilder()
    b.add("ESTABLISHED", "10.0.0.1:5000", "10.0.0.9:443", inode=10, timer=2 if with_ka else 0,
          expires_ms=3_000_000 if with_ka else 0, last_ack_recv=4_000_000,
          last_data_recv=4_000_000, last_data_sent=4_000_000, count=3)
    b.add("ESTABLISHED", "10.0.0.1:5001", "10.0.0.9:443", inode=20, last_ack_recv=4_000_000,
          last_data_recv=4_000_000, last_data_sent=4_000_000, count=2)
    ns = namespace(b.table(), sysctls={"tcp_keepalive_time": kt},
                   owners=owners_for(10, 3, 8, "worker") | owners_for(20, 2, 8, "worker"))
    return [ns], {"keepalive-vs-idle-timeout": {"idle_timeout": idle_timeout, "warning_count": 1}}


def conntrack_stale(close_wait_timeout, established, same):
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.98.2.1:9000", "10.98.1.1:59256", inode=500,
          last_ack_recv=30_000_000)
    ct = {"nf_conntrack_tcp_timeout_close_wait": close_wait_timeout,
          "nf_conntrack_tcp_timeout_established": established}
    server = namespace(b.table(), name="server", inode=10, conntrack=(3, 1000) if same else None,
                       owners=owners_for(500, 1, 77, "srv"), sysctls=ct if same else None)
    if same:
        return [server]
    router = namespace(SocketBuilder().table(), name="router", inode=20, conntrack=(1, 1000),
                       sysctls=ct)
    return [server, router]


def conntrack_full(established, count=900, maximum=1000):
    return [namespace(SocketBuilder().table(), conntrack=(count, maximum),
                      sysctls={"nf_conntrack_tcp_timeout_established": established})]


def folklore(fin, kt=600):
    b = SocketBuilder()
    b.add("LISTEN", "0.0.0.0:80")
    b.add("TIME_WAIT", "10.0.0.1:80", "10.0.0.9:1000", inode=0, timer=3, expires_ms=30_000,
          count=1200)
    b.add("FIN_WAIT2", "10.0.0.1:80", "10.0.0.10:2000", inode=0, timer=3, expires_ms=10_000,
          count=3)
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.12:3000", inode=900, recv_q=1, count=2)
    return [namespace(b.table(), sysctls={"tcp_fin_timeout": fin, "tcp_keepalive_time": kt,
                                          "tcp_tw_reuse": 1},
                      owners=owners_for(900, 2, 3, "py"))]


def scenarios():
    """(id, namespaces, thresholds) covering every rule over the grids."""
    yield "close-wait", close_wait(), None
    yield "half-closed", half_closed(tcp_fin_timeout=5), None
    for fin in FIN:
        yield f"orphan-fw2 fin={fin}", orphan_fw2(fin), None
        yield f"folklore fin={fin}", folklore(fin), None
    for client, buckets, reuse in itertools.product((True, False), (1000, 2000, 1 << 21, 1 << 22),
                                                    TW_REUSE):
        yield f"time-wait client={client} buckets={buckets} reuse={reuse}", \
            time_wait(client, buckets, reuse), None
    yield "time-wait overflow", time_wait(True, 100_000, 2, overflow=3), None
    for rng, reuse, state in itertools.product(RANGES, TW_REUSE, ("TIME_WAIT", "ESTABLISHED")):
        yield f"ports {rng} reuse={reuse} {state}", ports(rng, reuse, state), None
    for state, retries, owned in itertools.product(("FIN_WAIT1", "LAST_ACK"), ORPHAN_RETRIES,
                                                   (False, True)):
        yield f"{state} retries={retries} owned={owned}", unacked(state, retries, owned), None
    for retries, tcp_mem, child_first in itertools.product(
            ORPHAN_RETRIES, [(1, 2, 10_000_000), (100, 200, 300_000), None], (False, True)):
        yield f"orphan-limit retries={retries} mem={tcp_mem} child={child_first}", \
            orphan_limit(retries, 100_000, tcp_mem, 60_000, child_first), None
    for idle, kt, with_ka in itertools.product(IDLE_TIMEOUTS, KEEPALIVE, (True, False)):
        nss, th = keepalive(idle, kt, with_ka)
        yield f"keepalive idle={idle} kt={kt} ka={with_ka}", nss, th
    for cw, est, same in itertools.product(CT_CLOSE_WAIT, CT_ESTABLISHED, (True, False)):
        yield f"conntrack cw={cw} est={est} same={same}", conntrack_stale(cw, est, same), None
    for est in CT_ESTABLISHED:
        yield f"conntrack full est={est}", conntrack_full(est), None


SCENARIOS = list(scenarios())
FILES = [SysctlSetting("/etc/sysctl.conf", 3, "net.ipv4.tcp_tw_recycle", "1", False)]


def run(nss, th):
    thresholds = dict(THRESHOLDS)
    thresholds.update(th or {})
    return diagnose(nss, thresholds=thresholds, sysctl_files=FILES)


def changes(findings):
    """(finding, fix, change, the namespace the change applies in)."""
    for f in findings:
        for fix in f.fixes:
            if fix.sysctl is not None:
                yield f, fix, fix.sysctl, fix.sysctl.netns or f.netns


def sysctls_of(nss, ref):
    return next(ns.kernel.sysctls for ns in nss if ns.netns.inode == ref.inode)


# ---- the bounds --------------------------------------------------------------------

@pytest.mark.parametrize("name,nss,th", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_every_proposed_value_keeps_the_bounds(name, nss, th):
    for f, fix, c, where in changes(run(nss, th)):
        values = sysctls_of(nss, where)
        assert fix.kind is FixKind.SYSCTL
        assert c.key not in sb.NEVER and c.key in sb.BOUNDS, (f.rule, c)
        assert c.current == values.get(c.key), (f.rule, c)  # from the namespace it changes
        assert c.value != c.current, (f.rule, c)  # a proposal changes something
        assert sb.problems(c.key, c.value, c.current, values) == (), (f.rule, c)
        assert c.per_netns == sb.per_netns(c.key)
        assert fix.command == c.command and c.name in fix.command and fix.persist
        assert f"{c.name} = " in fix.persist and "/etc/sysctl.d/" in fix.persist


def test_every_rule_fires_and_every_proposing_rule_proposes():
    """The grid reaches every rule, and each rule that has a sysctl fix
    proposes it somewhere (else the bounds test above checks nothing)."""
    fired, proposing, keys = set(), set(), set()
    for _, nss, th in SCENARIOS:
        found = run(nss, th)
        fired |= {f.rule for f in found}
        for f, _, c, _ in changes(found):
            proposing.add(f.rule)
            keys.add(c.key)
    assert fired == set(MODULES)
    assert proposing == set(MODULES) - {"close-wait-leak", "half-closed-fin-wait-2"}
    assert keys == {"tcp_fin_timeout", "tcp_orphan_retries", "tcp_tw_reuse",
                    "ip_local_port_range", "tcp_keepalive_time", "tcp_max_tw_buckets",
                    "tcp_max_orphans", "nf_conntrack_tcp_timeout_close_wait",
                    "nf_conntrack_tcp_timeout_established", "nf_conntrack_max"}


@pytest.mark.parametrize("key,value,current", [
    ("tcp_fin_timeout", 10, 20),  # the old report: half of 20, down to 10 s
    ("tcp_fin_timeout", 30, 20),  # fine: a raise back to the floor
    ("tcp_orphan_retries", 3, 0),  # the old report: 3 for orphans
    ("ip_local_port_range", (1024, 65535), (32768, 60999)),  # the old report
    ("tcp_keepalive_time", 80, 7200),  # 0.8 x a 100 s middlebox
    ("tcp_max_tw_buckets", 1024, 4096),  # lowered
    ("tcp_tw_reuse", 2, 0),
    ("tcp_tw_recycle", 0, 1),
])
def test_the_check_catches_what_the_old_advice_proposed(key, value, current):
    bad = sb.problems(key, value, current)
    assert bool(bad) is not (key == "tcp_fin_timeout" and value == 30)


def test_proposals_are_fixed_points():
    """Applying a proposal and diagnosing again proposes nothing new for
    that setting (nothing tells the user to move it again), except limits
    that are only raised, which a still-full table may raise again."""
    for name, nss, th in SCENARIOS:
        first = list(changes(run(nss, th)))
        if not first:
            continue
        applied = []
        for ns in nss:
            values = dict(ns.kernel.sysctls)
            for _, _, c, where in first:
                if where.inode == ns.netns.inode:
                    values[c.key] = c.value
            applied.append(namespace(ns.table, name=ns.netns.name, inode=ns.netns.inode,
                                     sysctls=values, owners=ns.owners, processes=ns.processes,
                                     conntrack=ns.kernel.conntrack, sockstat=ns.kernel.sockstat,
                                     tcpext=ns.kernel.tcpext))
        again = {(where.inode, c.key) for _, _, c, where in changes(run(applied, th))
                 if sb.BOUNDS[c.key].direction != sb.Direction.RAISE}
        assert not again & {(where.inode, c.key) for _, _, c, where in first}, name


# ---- report and tune agree -------------------------------------------------------

def facts_for(nss):
    """Every namespace as the host's, with timestamps on: nothing in the way."""
    return [NamespaceFacts(ns.netns, {**ns.kernel.sysctls, "tcp_timestamps": 1}, True)
            for ns in nss]


@pytest.mark.parametrize("name,nss,th", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_report_and_tune_propose_the_same_values(name, nss, th):
    found = run(nss, th)
    acted = [f for f in found if f.severity >= Severity.WARNING or f.rule == "sysctl-folklore"]
    want: dict[tuple[int, str], tuple[object, set, list]] = {}
    for f, fix, c, where in changes(acted):
        value, rules, texts = want.setdefault((where.inode, c.key), (c.value, set(), []))
        assert value == c.value, (name, c)  # two findings never disagree on a setting
        rules.add(f.rule)
        texts.append(fix.text)
    p = plan(found, facts_for(nss))
    got = {(x.netns.inode, x.key): x for x in p.proposals if x.rules != ("bounds",)}
    assert set(got) == set(want), name
    for slot, x in got.items():
        value, rules, texts = want[slot]
        assert x.proposed == value and set(x.rules) == rules and list(x.why) == texts, name
    # The same shell line in `report --json` and `tune --json`.
    msg = Messages("en")
    report = findings_export.document(found, [], msg)
    report_cmds = {(f["netns"]["inode"] if x["sysctl"]["netns"] is None
                    else x["sysctl"]["netns"]["inode"], x["sysctl"]["key"]): x["command"]
                   for f in report["findings"] for x in f["fixes"] if x["sysctl"]
                   if f["severity"] != "info" or f["rule"] == "sysctl-folklore"}
    tune_doc = tune_cmd.plan_json(p, msg)
    tune_cmds = {(x["netns"]["inode"], x["path"].rsplit("/", 1)[-1]): x["command"]
                 for x in tune_doc["proposals"] if x["rules"] != ["bounds"]}
    assert tune_cmds == report_cmds


def test_host_wide_and_other_namespace_changes():
    """tcp_max_orphans is proposed where it exists (the host), a router's
    conntrack timeout in the router; outside the host a host-wide value is
    advice, not a change."""
    nss = orphan_limit(0, 100_000, (1, 2, 10_000_000), 60_000, child_first=True)
    [f] = [f for f in run(nss, None) if f.rule == "orphan-limit"]
    c = next(x.sysctl for x in f.fixes if x.sysctl and x.sysctl.key == "tcp_max_orphans")
    assert f.netns.name == "child" and c.netns.name == "host" and not c.per_netns
    p = plan([f], [NamespaceFacts(ns.netns, ns.kernel.sysctls, ns.netns.name == "host")
                   for ns in nss])
    assert {(x.netns.name, x.key, x.proposed) for x in p.proposals} == {
        ("host", "tcp_max_orphans", 200_000), ("child", "tcp_orphan_retries", 6)}
    p = plan([f], [NamespaceFacts(ns.netns, ns.kernel.sysctls, False) for ns in nss])
    assert "tcp_max_orphans" not in {x.key for x in p.proposals}
    assert any(t.key == "tune.advice.host_only" for a in p.advice for t in a.texts)

    nss = conntrack_stale(5, 432000, same=False)
    [f] = [f for f in run(nss, None) if f.rule == "conntrack-mismatch"]
    [c] = [x.sysctl for x in f.fixes if x.sysctl]
    assert c.netns.name == "router" and (c.current, c.value) == (5, 3600)
    p = plan([f], facts_for(nss))
    assert [(x.netns.name, x.key, x.proposed) for x in p.proposals] == [
        ("router", "nf_conntrack_tcp_timeout_close_wait", 3600)]
    p = plan([f], facts_for(nss[:1]))  # the router is not in scope
    assert p.proposals == [] and p.advice[0].texts[0].key == "tune.advice.other_netns"


def test_fix_json_carries_the_structure():
    [f] = [f for f in run(orphan_fw2(60), None) if f.rule == "orphan-fin-wait-2"]
    [fix] = [x for x in f.fixes if x.sysctl]
    doc = json.loads(json.dumps(fix.to_json(Messages("en"))))
    assert doc["command"] == "sysctl -w net.ipv4.tcp_fin_timeout=30"
    assert doc["sysctl"] == {
        "key": "tcp_fin_timeout", "name": "net.ipv4.tcp_fin_timeout", "value": 30, "current": 60,
        "per_netns": True, "netns": None, "requires": {},
        "bound": {"low": 30, "high": 60, "direction": "any",
                  "sources": list(sb.BOUNDS["tcp_fin_timeout"].sources)}}
    text = fix.text.render(Messages("en"))
    assert "60 s -> 30 s" in text and "30s" in text
    [ports_fix] = [x for f in run(ports((32768, 60999), 2), None) for x in f.fixes
                   if x.sysctl and x.sysctl.key == "ip_local_port_range"]
    assert ports_fix.sysctl.to_json()["value"] == [10000, 65535]
    assert ports_fix.command == 'sysctl -w net.ipv4.ip_local_port_range="10000 65535"'
    reuse = [x for f in run(ports((32768, 60999), 2), None) for x in f.fixes
             if x.sysctl and x.sysctl.key == "tcp_tw_reuse"]
    assert reuse[0].sysctl.to_json()["requires"] == {"tcp_timestamps": 1}


def test_a_fix_of_another_kind_cannot_carry_a_change():
    with pytest.raises(ValueError):
        Fix(FixKind.APP, Text("x"), SysctlChange("tcp_fin_timeout", 30))


@pytest.mark.parametrize("lang", LANGS)
def test_every_fix_text_renders(lang):
    msg = Messages(lang)
    for _, nss, th in SCENARIOS[::7]:
        for f in run(nss, th):
            for fix in f.fixes:
                assert "{" not in fix.text.render(msg), fix.text.key
    for key in sb.BOUNDS:
        from tcplinger.act.tune_plan import bound_text
        assert "{" not in bound_text(key).render(msg)


def test_proposals_module_values_are_within_bounds():
    for fin in range(0, 700):
        v = propose.fin_timeout(fin)
        assert v is None or sb.problems("tcp_fin_timeout", v, fin) == ()
    for r in range(0, 16):
        v = propose.orphan_retries(r)
        assert v is None or sb.problems("tcp_orphan_retries", v, r) == ()
    for idle in range(0, 8000, 7):
        for kt in (60, 120, 300, 7200):
            v = propose.keepalive_time(idle, kt)
            assert v is None or sb.problems("tcp_keepalive_time", v, kt) == ()


def test_fix_fields_are_documented_in_json_md():
    """Every key of a fix in `report --json` is named in docs/json.md's report section."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "json.md").read_text()
    section = text.split("## `tcplinger report --json`", 1)[1].split("\n## ", 1)[0]
    [f] = [f for f in run(conntrack_stale(5, 432000, same=False), None)
           if f.rule == "conntrack-mismatch"]
    fix = next(x for x in f.fixes if x.sysctl)
    doc = fix.to_json(Messages("en"))
    for key in [*doc, *doc["sysctl"], *doc["sysctl"]["bound"]]:
        assert f"`{key}`" in section or f'"{key}"' in section, key
