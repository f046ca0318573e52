"""Kernel context of one network namespace: sysctls, sockstat, TcpExt.

What is per namespace, and how to read another namespace's values — checked
on this kernel (6.18) with a thread that setns()'d into a child namespace
(CLONE_NEWNET) while the rest of the process stayed in the init one:

* ``/proc/sys/net/*`` opened by that thread shows the *thread's* namespace
  (a ``tcp_fin_timeout`` of 33 set in the child read 33 there, 60 from the
  main thread before and after). The net sysctl tables are looked up with
  ``current->nsproxy->net_ns`` (net/sysctl_net.c), per opening task.
* ``/proc/thread-self/net`` (= ``/proc/self/task/TID/net``) is the thread's
  namespace; ``/proc/net`` -> ``self/net`` follows the *process* (thread
  group leader): a listener created by the setns()'d thread appeared in
  ``/proc/thread-self/net/tcp`` and not in ``/proc/net/tcp`` nor
  ``/proc/self/net/tcp``. So a reader running in such a thread must pass
  ``proc_net=Path("/proc/thread-self/net")``.
* Global-only sysctls (``tcp_max_orphans``, ``tcp_mem``: registered for
  init_net only, net/ipv4/sysctl_net_ipv4.c) do not exist in a child
  namespace's ``/proc/sys``; there is no path to the init namespace's value
  from a setns()'d thread, so read them beforehand with
  :func:`read_global_sysctls` and pass them in.
* ``/proc/net/sockstat`` mixes scopes: ``TCP: inuse`` and ``tw`` are the
  namespace's, but ``orphan``, ``alloc`` and ``mem`` are host-wide
  (sockstat_seq_show, net/ipv4/proc.c: tcp_orphan_count_sum(),
  proto_sockets_allocated_sum_positive()). Measured: 7 orphans made in a
  fresh child namespace moved ``orphan`` from 2 to 9 in the child *and* in
  the init namespace, while ``inuse`` moved only in the child.
  ``TCP: inuse`` counts IPv4 only; IPv6 is ``TCP6: inuse`` in sockstat6.
* ``nf_conntrack_max`` is global: a child namespace shows the host's value
  read-only (mode 0444 there, 0644 in the init namespace;
  net/netfilter/nf_conntrack_standalone.c). ``nf_conntrack_count`` is per
  namespace. No ``net/netfilter/nf_conntrack_*`` at all means the
  conntrack module is not loaded.
* TcpExt counters in ``/proc/net/netstat`` are per namespace.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Mapping

from ..model.kernel import SYSCTLS, KernelContext, SockStat
from ..model.notice import Notice
from .roots import PROC

SysctlValue = int | tuple[int, ...]

_CONNTRACK_PREFIX = "net/netfilter/nf_conntrack_"
_CHUNK = 65536


def _read(path: str | Path) -> str:
    """A /proc file's text, read with os.open()/os.read(): Path.read_text()
    (a TextIOWrapper, the locale's codec) cost ten times as much CPU per
    file here (150 namespaces x 18 sysctls: 0.16 s against 0.016 s), and
    --all-netns reads 21 such files per namespace. Undecodable bytes raise
    UnicodeDecodeError, a ValueError, as a parse error does."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, _CHUNK)
        # A short read is the end: /proc/sys files and single_open seq
        # files (sockstat, netstat) return all they have to the first
        # read that can hold it (fs/proc/proc_sysctl.c, fs/seq_file.c),
        # and a regular file (a recording) is short only at its end.
        if len(data) < _CHUNK:
            return data.decode()
        chunks = [data]
        while chunk := os.read(fd, _CHUNK):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


def parse_sysctl_value(text: str) -> SysctlValue:
    """One /proc/sys file: an int, or a tuple when it holds several.

    >>> parse_sysctl_value("60\\n")
    60
    >>> parse_sysctl_value("32768\\t60999\\n")
    (32768, 60999)
    >>> parse_sysctl_value("cubic\\n")
    Traceback (most recent call last):
    ...
    ValueError: not a numeric sysctl: 'cubic'
    """
    words = text.split()
    try:
        values = tuple(int(w) for w in words)
    except ValueError:
        raise ValueError(f"not a numeric sysctl: {text.strip()[:40]!r}") from None
    if not values:
        raise ValueError("empty sysctl")
    return values[0] if len(values) == 1 else values


def parse_sockstat(text: str) -> SockStat:
    """/proc/net/sockstat, optionally followed by /proc/net/sockstat6.

    ``inuse`` is TCP plus TCP6 when sockstat6 is included (both families'
    hashed full sockets); ``tw`` already covers both. See the module
    docstring for which fields are host-wide.

    >>> parse_sockstat('''sockets: used 35
    ... TCP: inuse 17 orphan 4 tw 4 alloc 63 mem 182
    ... UDP: inuse 0 mem 0
    ... TCP6: inuse 18
    ... ''')
    SockStat(inuse=35, orphan=4, tw=4, alloc=63, mem_pages=182, sockets_used=35)
    """
    fields: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        label, sep, rest = line.partition(":")
        if not sep:
            continue
        words = rest.split()
        try:
            fields[label.strip()] = {k: int(v) for k, v in zip(words[::2], words[1::2])}
        except ValueError:
            raise ValueError(f"unexpected sockstat line: {line!r}") from None
    tcp = fields.get("TCP", {})
    return SockStat(
        inuse=tcp.get("inuse", 0) + fields.get("TCP6", {}).get("inuse", 0),
        orphan=tcp.get("orphan", 0),
        tw=tcp.get("tw", 0),
        alloc=tcp.get("alloc", 0),
        mem_pages=tcp.get("mem", 0),
        sockets_used=fields.get("sockets", {}).get("used", 0),
    )


def parse_netstat(text: str) -> dict[str, int]:
    """Every ``TcpExt`` counter of /proc/net/netstat.

    The file pairs a line of names with a line of values per group.

    >>> parse_netstat('''TcpExt: SyncookiesSent TW TWKilled
    ... TcpExt: 0 4 0
    ... IpExt: InNoRoutes
    ... IpExt: 0
    ... ''')
    {'SyncookiesSent': 0, 'TW': 4, 'TWKilled': 0}
    """
    lines = text.splitlines()
    out: dict[str, int] = {}
    for names, values in zip(lines[::2], lines[1::2]):
        label, _, keys = names.partition(":")
        vlabel, _, nums = values.partition(":")
        if label != vlabel:
            raise ValueError(f"netstat lines out of step: {label!r} / {vlabel!r}")
        if label != "TcpExt":
            continue
        keys_, nums_ = keys.split(), nums.split()
        if len(keys_) != len(nums_):
            raise ValueError("TcpExt: names and values differ in number")
        out.update(zip(keys_, (int(n) for n in nums_)))
    return out


def read_global_sysctls(proc_root: Path = PROC) -> dict[str, SysctlValue]:
    """The global-only sysctls, read where they exist (the init namespace).

    Call it from a thread in the init namespace and hand the result to
    :func:`read_kernel_context` for child namespaces.
    """
    out = {}
    for spec in SYSCTLS:
        if not spec.per_netns:
            try:
                out[spec.name] = parse_sysctl_value(_read(proc_root / "sys" / spec.path))
            except (OSError, ValueError):
                pass
    return out


def read_kernel_context(proc_root: Path = PROC, *, proc_net: Path | None = None,
                        global_sysctls: Mapping[str, SysctlValue] | None = None
                        ) -> KernelContext:
    """Sysctls, sockstat, TcpExt and conntrack fill of one namespace.

    ``proc_root/sys`` is read as the calling thread sees it (see the module
    docstring); ``proc_net`` defaults to ``proc_root/net``, which follows
    the process: a thread that setns()'d passes ``proc_root/thread-self/net``.
    Global-only sysctls absent here (a child namespace) are taken from
    ``global_sysctls`` when given (their ``SysctlSpec.per_netns`` is False:
    they are the host's). Nothing raises for a missing or unreadable file:
    each becomes a line of ``missing`` saying what and why.
    """
    # Paths as str: 21 files a namespace, and pathlib's joins cost more
    # than the reads (150 namespaces: ~6,000 joins, 0.06 s of CPU).
    proc_net = os.fspath(proc_root / "net" if proc_net is None else proc_net)
    sys_dir = os.path.join(os.fspath(proc_root), "sys")
    sysctls: dict[str, SysctlValue] = {}
    missing: list[str] = []
    absent_conntrack: list[str] = []
    for spec in SYSCTLS:
        path = f"{sys_dir}/{spec.path}"
        try:
            sysctls[spec.name] = parse_sysctl_value(_read(path))
            continue
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            missing.append(_unreadable(spec.name, exc, path))
            continue
        if spec.path.startswith(_CONNTRACK_PREFIX):
            absent_conntrack.append(spec.name)
        elif not spec.per_netns and global_sysctls and spec.name in global_sysctls:
            sysctls[spec.name] = global_sysctls[spec.name]
        elif not spec.per_netns:
            missing.append(not_read("kernel_global_only", what=spec.name))
        else:
            missing.append(not_read("kernel_absent", what=spec.name, path=path))
    if absent_conntrack:
        every = len(absent_conntrack) == sum(
            s.path.startswith(_CONNTRACK_PREFIX) for s in SYSCTLS)
        missing.append(not_read("conntrack_not_loaded") if every else
                       not_read("kernel_absent_names", what=", ".join(absent_conntrack)))

    sockstat = None
    texts = []
    for name in ("sockstat", "sockstat6"):
        try:
            texts.append(_read(f"{proc_net}/{name}"))
        except FileNotFoundError:
            if name == "sockstat":
                missing.append(not_read("kernel_no_file", what="sockstat",
                                        path=f"{proc_net}/{name}"))
            # no sockstat6: IPv6 disabled, TCP6 simply counts nothing
        except OSError as exc:
            missing.append(_unreadable(name, exc, f"{proc_net}/{name}"))
    if texts and "TCP:" in texts[0]:
        try:
            sockstat = parse_sockstat("".join(texts))
        except ValueError as exc:
            missing.append(_unreadable("sockstat", exc, f"{proc_net}/sockstat"))

    tcpext: dict[str, int] = {}
    try:
        tcpext = parse_netstat(_read(f"{proc_net}/netstat"))
    except FileNotFoundError:
        missing.append(not_read("kernel_no_file", what="TcpExt", path=f"{proc_net}/netstat"))
    except (OSError, ValueError) as exc:
        missing.append(_unreadable("TcpExt", exc, f"{proc_net}/netstat"))

    conntrack = None
    count, cmax = sysctls.get("nf_conntrack_count"), sysctls.get("nf_conntrack_max")
    if isinstance(count, int) and isinstance(cmax, int):
        conntrack = (count, cmax)
    return KernelContext(sysctls=sysctls, sockstat=sockstat, tcpext=tcpext,
                         conntrack=conntrack, missing=tuple(missing))


#: English texts of what could not be read (``KernelContext.missing``); the
#: catalogs' ``notice.<key>`` say them in the user's language
#: (tests/unit/test_i18n_cli.py checks both agree)
NOTICES = {
    "kernel_denied": "{what}: permission denied ({path})",
    "kernel_unreadable": "{what}: {why} ({path})",
    "kernel_global_only": "{what}: global-only sysctl, absent in a child network namespace;"
                          " the host's value applies (read it from the init namespace)",
    "kernel_absent": "{what}: not on this kernel ({path} does not exist)",
    "kernel_absent_names": "{what}: not on this kernel",
    "conntrack_not_loaded": "nf_conntrack: not loaded (no net/netfilter/nf_conntrack_* sysctls)",
    "kernel_no_file": "{what}: {path} does not exist",
    "kernel_unparsed": "{what}: {why}",
    "sysctls_not_entered": "sysctls: cannot enter the namespace ({why})",
}


def not_read(key: str, **fields) -> Notice:
    """One line of ``missing``.

    >>> not_read("kernel_absent", what="tcp_tw_reuse", path="/proc/sys/x")
    'tcp_tw_reuse: not on this kernel (/proc/sys/x does not exist)'
    """
    return Notice(key, NOTICES[key], **fields)


def _unreadable(what: str, exc: Exception, path) -> Notice:
    if isinstance(exc, PermissionError):
        return not_read("kernel_denied", what=what, path=path)
    if isinstance(exc, OSError):
        # the errno's name lets a front end say the C library's text in its
        # language (model/notice.py)
        return not_read("kernel_unreadable", what=what, why=_why(exc), path=path,
                        errno=errno.errorcode.get(exc.errno or 0, ""))
    return not_read("kernel_unparsed", what=what, why=_why(exc))


def _why(exc: Exception) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, OSError):
        return exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
    return str(exc)
