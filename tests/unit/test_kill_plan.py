"""kill planning without a kernel: selection, refusals, ages, --max, what
the peer sees, kernel limits, audit records, and the CLI's refusals."""

import ast
import errno
import json
import math
from pathlib import Path

import numpy as np
import pytest

from tcplinger.act import audit, kill_exec, kill_plan
from tcplinger.model.sock_destroy import Kind, Probe, Status, Support, kinds, peer_sees
from tcplinger.act.kill_plan import PlanPart, Refusal, plan
from tcplinger.act.selection import KillCriteria, parse_peer
from tcplinger.cli.commands import kill as kill_cmd
from tcplinger.cli.options import LONGEST
from tcplinger.diagnose.builder import SocketBuilder, owners_for
from tcplinger.i18n import Messages
from tcplinger.model import units
from tcplinger.model.socket import NetnsRef
from tcplinger.model.states import TcpState, parse_states

SRC = Path(__file__).resolve().parents[2] / "src" / "tcplinger"
REF = NetnsRef(4026532000, "blue")
WORKS = Support({k: Probe(Status.WORKS, "ok", 0) for k in Kind}, "private")


def part(builder, *, exact=None, lower=None, owners=None, source="netlink", ref=REF, prefix=""):
    """A namespace's rows; ages unknown (NaN) unless given."""
    t = builder.table()
    unknown = np.full(len(t), np.nan)
    ex = unknown if exact is None else np.asarray(exact, dtype=float)
    lo = unknown if lower is None else np.asarray(lower, dtype=float)
    return PlanPart(ref, t, ex, lo, owners or {}, source, prefix)


def mixed():
    """One of everything kill must tell apart."""
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.2:4000", inode=100, count=3)  # rows 0-2
    b.add("LISTEN", "10.0.0.1:80", inode=200)  # 3
    b.add("ESTABLISHED", "10.0.0.1:80", "10.0.0.2:5000", inode=300)  # 4
    b.add("TIME_WAIT", "10.0.0.1:80", "10.0.0.3:6000", inode=0, timer=3, expires_ms=50_000)  # 5
    b.add("FIN_WAIT2", "10.0.0.1:81", "10.0.0.3:7000", inode=0, timer=3, expires_ms=1_000)  # 6
    b.add("FIN_WAIT1", "10.0.0.1:82", "10.0.0.3:8000", inode=0)  # 7: full orphan
    b.add("LAST_ACK", "10.0.0.1:83", "10.0.0.3:9000", inode=0)  # 8: full orphan
    b.add("CLOSE", "10.0.0.1:84", inode=400)  # 9
    return b


#: mixed()'s exact ages, as its timers give them at tcp_fin_timeout 60: the
#: TIME_WAIT minisocket was armed for TCP_TIMEWAIT_LEN (60 s) and has 50 s
#: left (10 s old), the orphan FIN_WAIT2 minisocket for tcp_fin_timeout
#: (60 s) with 1 s left (59 s old); nothing else carries its age.
MIXED_EXACT = [math.nan] * 5 + [10.0, 59.0] + [math.nan] * 3


def mixed_part(**kw):
    return part(mixed(), exact=MIXED_EXACT, **kw)


def states(text):
    return parse_states(text)


# ---- selection -----------------------------------------------------------------

def test_default_states_are_the_lingering_ones():
    p = plan([mixed_part()], KillCriteria(port=80), WORKS)
    assert sorted(t.socket.state_name for t in p.targets) == [
        "CLOSE_WAIT", "CLOSE_WAIT", "CLOSE_WAIT", "FIN_WAIT1", "FIN_WAIT2", "LAST_ACK",
        "TIME_WAIT"]
    assert p.refused == ()  # LISTEN and ESTABLISHED are not even candidates by default


def test_listen_always_refused_established_only_with_the_flag():
    crit = KillCriteria(states=states("listen,established,close"))
    p = plan([mixed_part()], crit, WORKS)
    assert p.targets == ()
    assert sorted((r.socket.state_name, r.reason) for r in p.refused) == [
        ("CLOSE", Refusal.NOT_CONNECTION), ("ESTABLISHED", Refusal.ESTABLISHED),
        ("LISTEN", Refusal.LISTEN)]
    p = plan([mixed_part()], KillCriteria(states=states("listen,established"),
                                           include_established=True), WORKS)
    assert [t.socket.state_name for t in p.targets] == ["ESTABLISHED"]
    assert [r.reason for r in p.refused] == [Refusal.LISTEN]


def test_include_established_widens_the_default_states():
    p = plan([mixed_part()], KillCriteria(port=80, include_established=True), WORKS)
    assert "ESTABLISHED" in {t.socket.state_name for t in p.targets}
    assert "LISTEN" not in {t.socket.state_name for t in p.targets}


def test_max_is_honoured_and_the_rest_counted():
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.2:4000", inode=100, count=25)
    p = plan([part(b)], KillCriteria(states=states("close-wait"), max=10), WORKS)
    assert len(p.targets) == 10 and p.over_max == 15 and p.matched == 25
    # in snapshot order
    assert [t.socket.remote.port for t in p.targets] == list(range(4000, 4010))


def test_max_counts_across_namespaces():
    a, b = SocketBuilder(), SocketBuilder()
    a.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.2:4000", inode=100, count=4)
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.2:4000", inode=100, count=4)
    p = plan([part(a), part(b, ref=NetnsRef(2, "red"))],
             KillCriteria(states=states("close-wait"), max=6), WORKS)
    assert [t.socket.netns.name for t in p.targets] == ["blue"] * 4 + ["red"] * 2
    assert p.over_max == 2


def test_comm_peer_and_cookie_filters():
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:80", "192.0.2.7:4000", inode=100, count=2)
    b.add("CLOSE_WAIT", "10.0.0.1:80", "198.51.100.7:4000", inode=200, count=2)
    b.add("CLOSE_WAIT", "[::ffff:10.0.0.1]:80", "[::ffff:192.0.2.9]:4000", inode=300)
    owners = {**owners_for(100, 2, 11, "web"), **owners_for(200, 2, 22, "worker"),
              **owners_for(300, 1, 11, "web")}
    p = plan([part(b, owners=owners)], KillCriteria(comm="web"), WORKS)
    assert sorted(t.socket.inode for t in p.targets) == [100, 101, 300]
    p = plan([part(b, owners=owners)], KillCriteria(peers=(parse_peer("192.0.2.0/24"),)), WORKS)
    assert sorted(t.socket.inode for t in p.targets) == [100, 101, 300]  # mapped matches too
    p = plan([part(b, owners=owners)], KillCriteria(cookies=frozenset({2, 3})), WORKS)
    assert sorted(t.socket.cookie for t in p.targets) == [2, 3]
    assert p.targets[0].socket.owners[0].comm == "web"


def test_older_than_never_guesses():
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.2:4000", inode=100, count=6)
    nan = math.nan
    exact = [700, 100, nan, nan, nan, nan]   # exact old, exact young
    lower = [nan, nan, 900, 200, nan, nan]   # bound old enough, bound too low, unknown x2
    p = plan([part(b, exact=exact, lower=lower)],
             KillCriteria(states=states("close-wait"), older_than=600), WORKS)
    assert sorted(t.socket.remote.port for t in p.targets) == [4000, 4002]
    assert p.age_unknown == 3  # the low bound and the two unknowns; the young exact one is not
    ages = {t.socket.remote.port: t.socket.age for t in p.targets}
    assert not ages[4000].at_least and ages[4002].at_least


def test_older_than_is_at_least():
    """docs/act.md: "only sockets *known* to be at least this old": an age
    (exact or a lower bound) equal to the threshold is selected, a hair
    below is not."""
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.2:4000", inode=100, count=4)
    nan = math.nan
    exact = [600.0, 599.999, nan, nan]
    lower = [nan, nan, 600.0, 599.999]
    p = plan([part(b, exact=exact, lower=lower)],
             KillCriteria(states=states("close-wait"), older_than=600), WORKS)
    assert sorted(t.socket.remote.port for t in p.targets) == [4000, 4002]
    assert p.age_unknown == 1  # the bound just below; the exact one just below is young


def test_sockets_without_cookie_are_refused():
    p = plan([mixed_part(source="procfs")], KillCriteria(states=states("close-wait")), WORKS)
    assert p.targets == () and {r.reason for r in p.refused} == {Refusal.NO_COOKIE}


def test_what_the_peer_sees():
    p = plan([mixed_part()], KillCriteria(port=80), WORKS)
    seen = {t.socket.state_name: t.peer_sees for t in p.targets}
    assert seen == {"CLOSE_WAIT": "rst", "TIME_WAIT": "nothing", "FIN_WAIT2": "nothing",
                    "FIN_WAIT1": "rst", "LAST_ACK": "nothing"}
    # a full (non-minisocket) FIN_WAIT2 is reset: tcp_need_reset()
    assert peer_sees(int(TcpState.FIN_WAIT2), False) == "rst"
    assert peer_sees(int(TcpState.ESTABLISHED), False) == "rst"


def test_kinds():
    assert kinds(mixed().table()).tolist() == [
        "full", "full", "full", "full", "full", "timewait", "timewait", "orphan", "orphan", "full"]


@pytest.mark.parametrize("kind,status,refused", [
    (Kind.ORPHAN, Status.STUCK, True),
    (Kind.ORPHAN, Status.UNKNOWN, True),
    (Kind.TIMEWAIT, Status.UNSUPPORTED, True),
    (Kind.TIMEWAIT, Status.UNKNOWN, False),
    (Kind.FULL, Status.DENIED, False),
])
def test_kernel_limits_refuse_only_what_cannot_work(kind, status, refused):
    results = {k: Probe(Status.WORKS, "ok", 0) for k in Kind}
    results[kind] = Probe(status, "x")
    p = plan([mixed_part()], KillCriteria(port=80), Support(results, "private"))
    got = {r.kind for r in p.refused if r.reason is Refusal.KERNEL}
    assert (kind in got) is refused
    assert all(t.kind != kind for t in p.targets) is refused


def test_candidate_kinds():
    assert kill_plan.candidate_kinds([mixed_part()], KillCriteria(states=states("close-wait"))) \
        == {Kind.FULL}
    assert kill_plan.candidate_kinds([mixed_part()], KillCriteria(port=80)) == set(Kind)


def test_ss_kill_lines():
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "[2001:db8::1]:80", "[2001:db8::9]:4000", inode=100)
    p = plan([part(b, ref=NetnsRef(7, None), prefix="nsenter -t 42 -n")],
             KillCriteria(states=states("close-wait")), WORKS)
    assert p.targets[0].ss_kill == (
        "nsenter -t 42 -n ss -K -t -n state close-wait 'src [2001:db8::1]:80 dst [2001:db8::9]:4000'")


# ---- parsers -----------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [("90", 90), ("90s", 90), ("5m", 300), ("2h", 7200),
                                        ("1d", 86400), ("1h30m", 5400), ("1.5h", 5400)])
def test_durations(text, value):
    assert units.parse_duration(text, maximum=LONGEST) == value


@pytest.mark.parametrize("text", ["", "m", "5x", "-5", "5m3", "inf", "nan", "1 h"])
def test_bad_durations(text):
    with pytest.raises(units.BadValue):
        units.parse_duration(text, maximum=LONGEST)


def test_has_filter():
    assert not KillCriteria().has_filter()
    assert KillCriteria(states=states("time-wait")).has_filter()
    assert KillCriteria(cookies=frozenset({1})).has_filter()
    assert not KillCriteria(include_established=True, max=5).has_filter()


# ---- execution results and exit codes --------------------------------------------------

def test_outcomes_and_exit_codes():
    t = plan([mixed_part()], KillCriteria(states=states("close-wait")), WORKS).targets[0]
    R, O = kill_exec.Result, kill_exec.Outcome
    assert kill_cmd.exit_code(None) == 0 and kill_cmd.exit_code([]) == 0
    assert kill_cmd.exit_code([R(t, O.ENDED, 0), R(t, O.ALREADY_GONE, errno.ENOENT)]) == 0
    assert kill_cmd.exit_code([R(t, O.ENDED, 0), R(t, O.NOT_PERMITTED, errno.EPERM)]) == 4
    assert kill_cmd.exit_code([R(t, O.UNSUPPORTED, errno.EOPNOTSUPP)]) == 5
    assert kill_cmd.exit_code([R(t, O.STILL_PRESENT, 0)]) == 1
    assert kill_exec.summary([R(t, O.ENDED, 0)])["ended"] == 1


def test_json_document_shape():
    p = plan([mixed_part()], KillCriteria(states=states("close-wait,listen"), max=2), WORKS)
    t = p.targets[0]
    results = [kill_exec.Result(t, kill_exec.Outcome.ENDED, 0)]
    doc = kill_cmd.document(p, results, Messages("en"), dry_run=False, audit_log="/x", run="r")
    doc = json.loads(json.dumps(doc))
    assert doc["dry_run"] is False and doc["schema"] == 1
    assert doc["left_out"] == {"age_unknown": 0, "over_max": 1}
    assert doc["targets"][0]["peer_sees"] == "rst" and doc["targets"][0]["kind"] == "full"
    assert doc["targets"][0]["ss_kill"].startswith("ss -N blue -K")
    assert doc["refused"][0]["reason"] == "listen" and doc["refused"][0]["reason_text"]
    assert doc["results"][0]["result"] == "ended" and doc["summary"]["ended"] == 1
    assert doc["kernel"]["orphan"]["status"] == "works"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_text_rendering_both_languages(lang):
    msg = Messages(lang)
    p = plan([mixed_part()], KillCriteria(states=states("close-wait,listen,time-wait"),
                                           older_than=1), WORKS)
    lines = kill_cmd.render(p, None, msg, dry_run=True, width=200)
    text = "\n".join(lines)
    assert msg("kill.head.dry", n=1) in text  # the TIME_WAIT: exact age 10 s (timer)
    assert msg("kill.refused.listen") in text  # refused whatever its age
    assert msg("kill.left.age", n=3, t="1.0s") in text  # three CLOSE_WAIT without an age


# ---- audit -------------------------------------------------------------------------

def test_audit_log_round_trip(tmp_path):
    path = tmp_path / "deep" / "audit.jsonl"
    who = audit.Who(0, "root", 1, ("tcplinger", "kill"))
    with audit.AuditLog(path) as log:
        log.append(audit.record("kill.start", "r1", who, "t0", sockets=[{"cookie": 1}]))
        log.append(audit.record("kill.result", "r1", who, "t1", summary={"ended": 1}))
    with audit.AuditLog(path) as log:  # appends, never truncates
        log.append(audit.record("kill.start", "r2", who, "t2", sockets=[]))
    recs = audit.read(path)
    assert [(r["event"], r["run"]) for r in recs] == [
        ("kill.start", "r1"), ("kill.result", "r1"), ("kill.start", "r2")]
    assert recs[0]["who"]["argv"] == ["tcplinger", "kill"]
    assert (path.stat().st_mode & 0o777) == 0o600


def test_audit_log_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(audit.AuditError):
        audit.AuditLog(blocker / "audit.jsonl")


# ---- the CLI's refusals (no kernel needed) ----------------------------------------------

def test_cli_needs_a_filter(cli):
    code, out, err = cli("kill", "--yes")
    assert code == 2 and out == "" and err.count("\n") == 1 and "--state" in err


@pytest.mark.parametrize("argv,fragment", [
    (["kill", "--older-than", "5 minutes"], "invalid duration"),
    (["kill", "--max", "0", "--state", "close-wait"], "--max: invalid value '0' (at least 1)"),
    (["kill", "--peer", "10.0.0.300"], "invalid peer"),
    (["kill", "--cookie", "abc"], "invalid cookie"),
])
def test_cli_bad_values(cli, argv, fragment):
    code, out, err = cli(*argv)
    assert code == 2 and fragment in err and "Traceback" not in err


def test_cli_refuses_to_act_without_an_audit_log(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out, err = cli("kill", "--state", "close-wait", "--yes",
                             "--audit-log", str(blocker / "audit.jsonl"))
    assert code == 4 and "audit" in err and out == ""


# ---- planning is pure ----------------------------------------------------------------

PURE_MODULES = ("selection.py", "kill_plan.py", "tune_plan.py")
IO = {"socket", "subprocess", "ctypes", "os", "fcntl", "pathlib", "threading"}


@pytest.mark.parametrize("name", PURE_MODULES)
def test_planning_modules_do_no_io(name):
    tree = ast.parse((SRC / "act" / name).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            mods = [node.module]
        elif isinstance(node, ast.ImportFrom):
            mods = [f"tcplinger.{node.module or ''}"]
            assert not (node.module or "").startswith(("collect", "cli")), \
                f"{name} imports {node.module}"
            continue
        else:
            continue
        for m in mods:
            assert m.split(".")[0] not in IO, f"{name} imports {m}"
