"""The texts of ``tcplinger doctor``'s features: what each missing one
costs, its stable key, and the English detail texts by reason. The CLI
renders them from the catalogs (``doctor.cost.<key>``,
``doctor.detail.<reason>``, same placeholders: tests/unit/test_probe.py);
these English texts are what ``doctor --json`` carries."""

from __future__ import annotations

#: What each missing feature costs the user (a catalog: user-facing text).
COSTS = {
    "root": "only what this user may see: other users' processes cannot be named as"
            " owners, other namespaces cannot be entered, nothing can be traced",
    "CAP_NET_ADMIN": "sockets cannot be ended (SOCK_DESTROY needs CAP_NET_ADMIN) and"
                     " sysctl plans cannot be applied",
    "CAP_SYS_ADMIN": "other network namespaces cannot be entered (setns) and tracefs"
                     " cannot be mounted",
    "CAP_SYS_PTRACE": "sockets held by other users' processes show no owner"
                      " (/proc/PID/fd is unreadable)",
    "sock_diag": "falls back to /proc/net/tcp: no socket cookies (identity by 4-tuple"
                 " only), no tcp_info, no shutdown state, slower on large hosts",
    "tcp_info": "no RTT, retransmission or last-data ages: sockets first seen have no"
                " lower bound on their age",
    "SOCK_DESTROY": "`tcplinger kill` cannot end sockets; the owner must close them or"
                    " be restarted",
    "tracefs": "no state-change tracing: ages come only from timers and first-seen"
               " times",
    "tracepoint sock:inet_sock_set_state": "no exact time of entering a state",
    "tracepoint tcp:tcp_destroy_sock": "no record of when a socket was destroyed",
    "tracefs instance": "tracing would need the global buffer other tools share;"
                        " tcplinger does not trace then",
    "setns": "other network namespaces are read through /proc/PID/net only: no"
             " cookies, no tcp_info, no sysctls of that namespace",
    "/run/netns": "namespaces are found through /proc/*/ns/net only and have no"
                  " `ip netns` names",
    "conntrack": "",  # without conntrack there is no table whose timeouts can cut a connection
    "kernel": "",
}

#: Stable keys of the features (catalog keys ``doctor.cost.<key>``; JSON "key").
FEATURE_KEYS = {
    "root": "root", "CAP_NET_ADMIN": "cap_net_admin", "CAP_SYS_ADMIN": "cap_sys_admin",
    "CAP_SYS_PTRACE": "cap_sys_ptrace", "sock_diag": "sock_diag", "tcp_info": "tcp_info",
    "SOCK_DESTROY": "sock_destroy", "tracefs": "tracefs",
    "tracepoint sock:inet_sock_set_state": "tp_inet_sock_set_state",
    "tracepoint tcp:tcp_destroy_sock": "tp_tcp_destroy_sock",
    "tracefs instance": "tracefs_instance", "setns": "setns", "/run/netns": "run_netns",
    "conntrack": "conntrack", "kernel": "kernel",
}

#: English detail texts by reason (the catalog's ``doctor.detail.<reason>``
#: holds the same placeholders; tests/unit/test_probe.py checks).
DETAILS = {
    "probe_failed": "probe failed: {error}",
    "effective_uid": "effective uid {uid}",
    "cap_in": "in CapEff {capeff}",
    "cap_not_in": "not in CapEff {capeff}",
    "import_failed": "{module} cannot be imported: {error}",
    "dump_failed": "dump failed: {error}",
    "needs_sock_diag": "needs sock_diag",
    "own_listener_missing": "a dump did not list this process's own listener",
    "dump_lists": "dump lists {n} IPv4 listener(s), this probe's among them",
    "info_returned": "INET_DIAG_INFO returned",
    "info_missing": "no INET_DIAG_INFO attribute in the reply",
    "destroy_ok": "ended sockets of its own (the probe kill runs): full {full}, timewait"
                  " {timewait}, orphan {orphan}",
    "destroy_said": "{text}",
    "tracefs_mounted": "mounted at {path}",
    "tracefs_mountable": "not mounted at {path}; mountable (mounted for this probe and"
                         " unmounted)",
    "no_tracefs": "kernel has no tracefs (not in /proc/filesystems)",
    "mount_failed": "not mounted, and mounting failed: {error}",
    "tracefs_unavailable": "tracefs not available",
    "event_present": "events/{event} present",
    "event_absent": "events/{event} absent",
    "instance_failed": "cannot create {path}: {error}",
    "instance_ok": "created and removed a private instance",
    "instance_no_event": "created and removed a private instance, but it has no {event}"
                         " event",
    "setns_open_failed": "cannot open {path}: {error}",
    "setns_failed": "setns({path}) failed: {error}",
    "setns_ok": "entered {path} (on a thread of its own)",
    "setns_ok_same": "entered {path} (it is this namespace: no other one found)",
    "run_netns_error": "{path}: {error}",
    "run_netns_count": "{n} named namespace(s)",
    "conntrack_unloaded": "nf_conntrack not loaded: no connection tracking table can"
                          " expire lingering connections here",
    "conntrack_unreadable": "unreadable: {error}",
    "conntrack_loaded": "loaded: {count} of {max} entries in this namespace",
    "kernel_release": "Linux {release} (informational: features are probed, not"
                      " inferred from the version)",
}
