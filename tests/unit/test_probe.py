"""Feature probes for ``tcplinger doctor``.

The file-based probes run against small fake /proc and /sys trees; the
live run on this machine is tests/integration/test_probe_live.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tcplinger.collect import features as probe
from tcplinger.collect.features import COSTS, Feature, probe_all

STATUS = """Name:\tpython
Uid:\t1000\t{euid}\t1000\t1000
CapInh:\t0000000000000000
CapEff:\t{capeff}
"""


def _proc(tmp_path: Path, *, euid=1000, capeff="0000000000000000", conntrack=None,
          filesystems="nodev\tproc\n") -> Path:
    root = tmp_path / "proc"
    (root / "self").mkdir(parents=True)
    (root / "self" / "status").write_text(STATUS.format(euid=euid, capeff=capeff))
    (root / "self" / "mounts").write_text("proc /proc proc rw 0 0\n")
    (root / "filesystems").write_text(filesystems)
    (root / "sys" / "kernel").mkdir(parents=True)
    (root / "sys" / "kernel" / "osrelease").write_text("6.18.0-test\n")
    if conntrack:
        nf = root / "sys" / "net" / "netfilter"
        nf.mkdir(parents=True)
        (nf / "nf_conntrack_count").write_text(f"{conntrack[0]}\n")
        (nf / "nf_conntrack_max").write_text(f"{conntrack[1]}\n")
    return root


def _by_name(features) -> dict[str, Feature]:
    return {f.name: f for f in features}


def test_unprivileged_user_without_capabilities(tmp_path):
    got = _by_name(probe._privileges(_proc(tmp_path)))
    assert [n for n, f in got.items() if f.ok] == []
    assert got["root"].detail == "effective uid 1000"
    assert got["CAP_NET_ADMIN"].cost == COSTS["CAP_NET_ADMIN"] != ""


def test_capabilities_are_read_bit_by_bit(tmp_path):
    only_net_admin = f"{1 << 12:016x}"
    got = _by_name(probe._privileges(_proc(tmp_path, euid=0, capeff=only_net_admin)))
    assert {n: f.ok for n, f in got.items()} == {
        "root": True, "CAP_NET_ADMIN": True, "CAP_SYS_ADMIN": False, "CAP_SYS_PTRACE": False}
    assert got["root"].cost == ""  # nothing lost


@pytest.mark.privileged
def test_root_here_has_the_probed_capabilities():
    got = _by_name(probe._privileges(Path("/proc")))
    assert all(f.ok for f in got.values()), got


def test_conntrack_loaded_or_not(tmp_path):
    off = probe._conntrack(_proc(tmp_path / "a"))
    assert not off.ok and "not loaded" in off.detail and off.cost == ""
    on = probe._conntrack(_proc(tmp_path / "b", conntrack=(3, 262144)))
    assert on.ok and on.detail == "loaded: 3 of 262144 entries in this namespace"


def test_kernel_version_is_informational(tmp_path):
    k = probe._kernel(_proc(tmp_path))
    assert k.ok and k.detail.startswith("Linux 6.18.0-test") and k.cost == ""


def test_run_netns(tmp_path):
    assert not probe._run_netns(tmp_path / "absent").ok
    (tmp_path / "netns").mkdir()
    (tmp_path / "netns" / "blue").touch()
    f = probe._run_netns(tmp_path / "netns")
    assert f.ok and f.detail == "1 named namespace(s)"


def test_no_tracefs_in_the_kernel(tmp_path):
    got = probe._tracefs(_proc(tmp_path), tmp_path / "sys")
    assert [f.name for f in got] == ["tracefs", "tracepoint sock:inet_sock_set_state",
                                     "tracepoint tcp:tcp_destroy_sock", "tracefs instance"]
    assert not any(f.ok for f in got)
    assert "not in /proc/filesystems" in got[0].detail
    assert all(f.cost == COSTS[f.name] for f in got)


def test_tracefs_mounted_but_events_missing(tmp_path):
    """A tracefs-like tree found through the mount table: events are checked
    one by one; a plain directory cannot host an instance."""
    tracing = tmp_path / "sys" / "kernel" / "tracing"
    (tracing / "events" / "sock" / "inet_sock_set_state").mkdir(parents=True)
    (tracing / "instances").mkdir()
    proc = _proc(tmp_path)
    (proc / "self" / "mounts").write_text(f"nodev {tracing} tracefs rw 0 0\n")
    got = _by_name(probe._tracefs(proc, tmp_path / "sys"))
    assert got["tracefs"].ok and got["tracepoint sock:inet_sock_set_state"].ok
    assert not got["tracepoint tcp:tcp_destroy_sock"].ok
    # mkdir works in a plain directory but yields no events: not a tracefs instance
    assert not got["tracefs instance"].ok
    assert list((tracing / "instances").iterdir()) == []  # and it was removed


def test_a_failing_probe_becomes_a_feature(tmp_path):
    """No /proc/self/status: the privilege probe fails, probe_all does not."""
    proc = tmp_path / "empty-proc"
    proc.mkdir()
    got = _by_name(probe_all(proc, tmp_path / "sys", run_netns=tmp_path / "none"))
    assert not got["root"].ok and got["root"].detail.startswith("probe failed:")
    assert not got["setns"].ok
    assert set(got) == set(COSTS)


def test_feature_is_frozen():
    f = Feature("root", True, "x", "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.ok = False  # type: ignore[misc]
    assert f.to_json() == {"name": "root", "ok": True, "detail": "x", "cost": "",
                           "key": "", "reason": "", "fields": {}}


def test_details_and_costs_are_in_both_catalogs():
    """The English fallback in probe.DETAILS and the catalogs agree on
    placeholders; every nonempty cost has a catalog text."""
    import string

    from tcplinger.i18n import catalog

    def fields(text):
        return {f for _, f, _, _ in string.Formatter().parse(text) if f}

    for lang in ("en", "zh"):
        cat = catalog(lang)
        for reason, text in probe.DETAILS.items():
            assert fields(cat[f"doctor.detail.{reason}"]) == fields(text), (lang, reason)
        for name, text in COSTS.items():
            assert (f"doctor.cost.{probe.FEATURE_KEYS[name]}" in cat) == bool(text), name
    assert catalog("en")["doctor.detail.kernel_release"] == probe.DETAILS["kernel_release"]


def test_feature_carries_key_reason_and_fields(tmp_path):
    on = probe._conntrack(_proc(tmp_path, conntrack=(3, 262144)))
    assert (on.key, on.reason, on.fields) == ("conntrack", "conntrack_loaded",
                                              {"count": 3, "max": 262144})
    assert on.to_json()["fields"] == {"count": 3, "max": 262144}
