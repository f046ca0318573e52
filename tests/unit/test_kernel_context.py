"""Kernel context readers against recorded /proc trees.

tests/data/proc/{host,netns-mix}/expected_kernel.json hold what ``sysctl -n``
and ``nstat -asz`` printed when the trees were recorded (record.py), so the
expectations do not come from the code under test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tcplinger.collect.kernel import (parse_netstat, parse_sockstat, parse_sysctl_value,
                                      read_global_sysctls, read_kernel_context)
from tcplinger.model.kernel import SYSCTLS, TCPEXT_COUNTERS, SockStat

DATA = Path(__file__).resolve().parents[1] / "data" / "proc"
HOST, MIX = DATA / "host", DATA / "netns-mix"


def _expected(tree: Path) -> dict:
    exp = json.loads((tree / "expected_kernel.json").read_text())
    exp["sysctls"] = {k: tuple(v) if isinstance(v, list) else v
                      for k, v in exp["sysctls"].items()}
    return exp


def _sockstat(exp: dict) -> SockStat:
    tcp = exp["sockstat"]["TCP"]
    return SockStat(inuse=tcp["inuse"] + exp["sockstat"].get("TCP6", {}).get("inuse", 0),
                    orphan=tcp["orphan"], tw=tcp["tw"], alloc=tcp["alloc"],
                    mem_pages=tcp["mem"], sockets_used=exp["sockstat"]["sockets"]["used"])


def test_host_tree():
    exp = _expected(HOST)
    ctx = read_kernel_context(HOST)
    assert ctx.missing == ()
    assert ctx.sysctls == exp["sysctls"]
    assert set(ctx.sysctls) == {s.name for s in SYSCTLS}
    assert ctx.tcpext == exp["tcpext"]  # every TcpExt counter nstat knows
    assert ctx.sockstat == _sockstat(exp)
    assert ctx.conntrack == (exp["sysctls"]["nf_conntrack_count"],
                             exp["sysctls"]["nf_conntrack_max"])
    assert ctx.port_range_size == 60999 - 32768 + 1


def test_child_namespace_lacks_global_sysctls():
    exp = _expected(MIX)
    ctx = read_kernel_context(MIX)
    assert ctx.sysctls == exp["sysctls"]
    assert "tcp_max_orphans" not in ctx.sysctls and "tcp_mem" not in ctx.sysctls
    assert len(ctx.missing) == 2
    assert all("global-only" in m for m in ctx.missing)
    assert {m.split(":")[0] for m in ctx.missing} == {"tcp_max_orphans", "tcp_mem"}
    assert ctx.tcpext == exp["tcpext"]
    # the mix made two TIME_WAIT and two orphan FIN_WAIT2 timewait sockets
    assert ctx.tcpext["TW"] == 4 and ctx.sockstat.tw == 4
    assert ctx.sockstat == _sockstat(exp)
    assert ctx.sockstat.inuse == 17 + 18  # TCP + TCP6 full sockets


def test_child_namespace_takes_global_values_from_the_host():
    host = read_global_sysctls(HOST)
    assert set(host) == {"tcp_max_orphans", "tcp_mem", "nf_conntrack_max"}  # global-only (model.kernel.SYSCTLS)
    ctx = read_kernel_context(MIX, global_sysctls=host)
    assert ctx.missing == ()
    assert ctx.sysctls["tcp_max_orphans"] == _expected(HOST)["sysctls"]["tcp_max_orphans"]
    assert ctx.sysctls["tcp_mem"] == _expected(HOST)["sysctls"]["tcp_mem"]


def test_model_counters_exist_on_this_kernel():
    tcpext = read_kernel_context(HOST).tcpext
    assert [c for c in TCPEXT_COUNTERS if c not in tcpext] == []


def test_proc_net_can_point_elsewhere(tmp_path):
    """sysctls from proc_root, socket counters from proc_net (thread-self)."""
    ctx = read_kernel_context(HOST, proc_net=MIX / "net")
    assert ctx.sysctls["tcp_max_orphans"] > 0
    assert ctx.sockstat == _sockstat(_expected(MIX))


def _copy(tree: Path, tmp_path: Path) -> Path:
    dst = tmp_path / tree.name
    shutil.copytree(tree, dst)
    return dst


def test_conntrack_not_loaded(tmp_path):
    root = _copy(HOST, tmp_path)
    shutil.rmtree(root / "sys" / "net" / "netfilter")
    ctx = read_kernel_context(root)
    assert ctx.conntrack is None
    assert ctx.missing == ("nf_conntrack: not loaded (no net/netfilter/nf_conntrack_* sysctls)",)
    assert not any(k.startswith("nf_conntrack") for k in ctx.sysctls)


def test_everything_missing_is_reported_not_raised(tmp_path):
    ctx = read_kernel_context(tmp_path)
    assert ctx.sysctls == {} and ctx.sockstat is None and ctx.tcpext == {}
    text = "\n".join(ctx.missing)
    assert "sockstat" in text and "TcpExt" in text and "nf_conntrack: not loaded" in text
    assert "tcp_fin_timeout: not on this kernel" in text


def test_unreadable_files_are_reported(tmp_path):
    root = _copy(HOST, tmp_path)
    fin = root / "sys" / "net" / "ipv4" / "tcp_fin_timeout"
    fin.unlink()
    fin.mkdir()  # reading a directory fails even for root (EISDIR)
    (root / "net" / "netstat").write_text("TcpExt: TW\nIpExt: 0\n")
    ctx = read_kernel_context(root)
    assert "tcp_fin_timeout" not in ctx.sysctls
    assert any(m.startswith("tcp_fin_timeout: Is a directory") for m in ctx.missing)
    assert any(m.startswith("TcpExt: netstat lines out of step") for m in ctx.missing)


WRITE_ONLY = Path("/proc/sys/net/ipv4/route/flush")  # mode 0200: EACCES even for root


@pytest.mark.skipif(not WRITE_ONLY.exists(), reason=f"{WRITE_ONLY} not present")
def test_permission_denied_is_reported(tmp_path):
    root = _copy(HOST, tmp_path)
    target = root / "sys" / "net" / "ipv4" / "tcp_retries2"
    target.unlink()
    target.symlink_to(WRITE_ONLY)  # sysctl_perm() refuses the read
    ctx = read_kernel_context(root)
    assert "tcp_retries2" not in ctx.sysctls
    assert any(m.startswith("tcp_retries2: permission denied") for m in ctx.missing)


def test_parse_sysctl_value_forms():
    assert parse_sysctl_value("2\n") == 2
    assert parse_sysctl_value("287898\t383867\t575796\n") == (287898, 383867, 575796)
    with pytest.raises(ValueError):
        parse_sysctl_value("\n")


def test_parse_sockstat_without_ipv6():
    text = (HOST / "net" / "sockstat").read_text()
    assert parse_sockstat(text).inuse == _expected(HOST)["sockstat"]["TCP"]["inuse"]


def test_parse_netstat_rejects_mismatched_counts():
    with pytest.raises(ValueError):
        parse_netstat("TcpExt: A B\nTcpExt: 1\n")
