"""The rules as data: id, severity thresholds, references.

Rule ids are part of the JSON contract (``findings[].rule``). Titles,
summaries and explanations are catalog keys derived from the id
(``rule.<id>.title``, ``rule.<id>.summary``, ``rule.<id>.explain``,
``rule.<id>.th.<threshold>``), so this table holds no prose.

Thresholds have defaults here and can be overridden per run
(``tcplinger check --threshold close-wait-leak.warning_count=5``).
A threshold set to ``None`` ("off") disables that level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..model import units


@dataclass(frozen=True)
class Threshold:
    name: str
    default: float | None
    unit: str  # "count", "s" (seconds), "ratio" (0..1)

    def parse(self, text: str) -> float:
        """An override's value in the one number grammar (model/units.py);
        seconds take a duration (``5m``). Raises units.BadValue.

        >>> Threshold("warning_age", 300, "s").parse("5m")
        300.0
        """
        if self.unit == "s":
            return units.parse_duration(text, maximum=units.LONGEST)
        return float(units.parse_number(text, maximum=THRESHOLD_MAX[self.unit]))


@dataclass(frozen=True)
class Reference:
    label: str  # a citation, the same in every language
    url: str


@dataclass(frozen=True)
class RuleMeta:
    id: str
    states: tuple[str, ...]  # TCP states the rule looks at ("" for limits)
    thresholds: tuple[Threshold, ...]
    references: tuple[Reference, ...]
    host_wide: bool = False  # evaluated once, not per namespace
    #: what the ``min_age`` threshold counts from: "state" (time in the
    #: state) or "close" (time since close(): an orphan's timer, track.age)
    age_from: str = "state"

    @property
    def min_age(self) -> float | None:
        """The minimum age before a socket accuses anyone (None: no such threshold)."""
        return self.defaults().get("min_age")

    @property
    def title_key(self) -> str:
        return f"rule.{self.id}.title"

    @property
    def summary_key(self) -> str:
        return f"rule.{self.id}.summary"

    @property
    def explain_key(self) -> str:
        return f"rule.{self.id}.explain"

    def threshold_key(self, name: str) -> str:
        return f"rule.{self.id}.th.{name}"

    def defaults(self) -> dict[str, float | None]:
        return {t.name: t.default for t in self.thresholds}


def _ref(label: str, url: str) -> Reference:
    return Reference(label, url)


KERNEL_TREE = "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/tree/"
RFC9293_CLOSE = _ref("RFC 9293 §3.6 (Closing a Connection)",
                     "https://www.rfc-editor.org/rfc/rfc9293#section-3.6")
RFC9293_STATES = _ref("RFC 9293 §3.3.2 (State Machine Overview)",
                      "https://www.rfc-editor.org/rfc/rfc9293#section-3.3.2")
IP_SYSCTL = _ref("Linux ip-sysctl documentation",
                 "https://docs.kernel.org/networking/ip-sysctl.html")
TCP7 = _ref("tcp(7)", "https://man7.org/linux/man-pages/man7/tcp.7.html")
SOCKET7 = _ref("socket(7) (SO_KEEPALIVE, SO_LINGER)",
               "https://man7.org/linux/man-pages/man7/socket.7.html")
SHUTDOWN2 = _ref("shutdown(2)", "https://man7.org/linux/man-pages/man2/shutdown.2.html")
CLOSE2 = _ref("close(2)", "https://man7.org/linux/man-pages/man2/close.2.html")
GETRLIMIT2 = _ref("getrlimit(2) (RLIMIT_NOFILE)",
                  "https://man7.org/linux/man-pages/man2/getrlimit.2.html")
TCP_TIMER_C = _ref("net/ipv4/tcp_timer.c (tcp_keepalive_timer, tcp_write_timeout)",
                   KERNEL_TREE + "net/ipv4/tcp_timer.c")
TCP_C = _ref("net/ipv4/tcp.c (tcp_close)", KERNEL_TREE + "net/ipv4/tcp.c")
MINISOCKS_C = _ref("net/ipv4/tcp_minisocks.c (tcp_time_wait)",
                   KERNEL_TREE + "net/ipv4/tcp_minisocks.c")
TW_RECYCLE_REMOVED = _ref(
    "Linux 4.12: \"tcp: remove tcp_tw_recycle\" (commit 4396e46187ca)",
    "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/"
    "?id=4396e46187ca5070219b81773c4e65088dac50cc")
CONNTRACK_SYSCTL = _ref("Linux nf_conntrack sysctl documentation",
                        "https://docs.kernel.org/networking/nf_conntrack-sysctl.html")
CONNTRACK_TCP_C = _ref("net/netfilter/nf_conntrack_proto_tcp.c (state table)",
                       KERNEL_TREE + "net/netfilter/nf_conntrack_proto_tcp.c")
RFC1122_KEEPALIVE = _ref("RFC 1122 §4.2.3.6 (TCP Keep-Alives)",
                         "https://www.rfc-editor.org/rfc/rfc1122#section-4.2.3.6")
RFC5382 = _ref("RFC 5382 REQ-5 (NAT established idle timeout >= 2 h 4 min)",
               "https://www.rfc-editor.org/rfc/rfc5382#section-5")
AWS_NLB = _ref("AWS Network Load Balancer: TCP idle timeout (350 s)",
               "https://docs.aws.amazon.com/elasticloadbalancing/latest/network/update-idle-timeout.html")
AWS_NATGW = _ref("AWS NAT gateway: idle connection timeout (350 s)",
                 "https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-troubleshooting.html")
AZURE_LB = _ref("Azure Load Balancer: TCP idle timeout (4 min default)",
                "https://learn.microsoft.com/azure/load-balancer/load-balancer-tcp-idle-timeout")
AWS_NFW = _ref("AWS Network Firewall: TCP idle timeout (350 s default)",
               "https://docs.aws.amazon.com/network-firewall/latest/APIReference/API_FlowTimeouts.html")
GCP_NAT = _ref("Google Cloud NAT: TCP established idle timeout (1200 s)",
               "https://cloud.google.com/nat/docs/tune-nat-configuration")
APACHE_FW2 = _ref("Apache HTTP Server: Connections in the FIN_WAIT_2 state",
                  "https://httpd.apache.org/docs/2.0/misc/fin_wait_2.html")
PORT_CONNECT = _ref("net/ipv4/inet_hashtables.c (__inet_hash_connect)",
                    KERNEL_TREE + "net/ipv4/inet_hashtables.c")

#: Idle timeouts of common middleboxes, seconds (keepalive-vs-idle-timeout).
MIDDLEBOX_IDLE_TIMEOUTS: tuple[tuple[str, int], ...] = (
    ("Azure Load Balancer (default)", 240),
    ("AWS NLB (default)", 350),
    ("AWS NAT gateway", 350),
    ("AWS Network Firewall (default)", 350),
    ("Google Cloud NAT (established, default)", 1200),
)


#: the largest override of a count (more sockets than a host holds) and of a
#: ratio (a fill level: 1 is full)
THRESHOLD_MAX = {"count": 1e9, "ratio": 1.0}


RULES: tuple[RuleMeta, ...] = (
    RuleMeta("close-wait-leak", ("CLOSE_WAIT",), (
        Threshold("warning_count", 10, "count"),  # CLOSE_WAIT held by one process
        Threshold("critical_count", 1000, "count"),
        Threshold("warning_age", 300, "s"),  # oldest CLOSE_WAIT at least this old
        # Only CLOSE_WAIT at least this old (a lower bound from the watch
        # database, the tracepoint, tcp_info last_ack_recv, or two samples
        # over --interval) accuse the process; younger ones are at most INFO
        # (under ab, sockets pass through CLOSE_WAIT in milliseconds).
        Threshold("min_age", 10, "s"),
        Threshold("critical_fd_ratio", 0.9, "ratio"),  # open fds / RLIMIT_NOFILE soft
        # With a watch history (docs/watch.md): the process's CLOSE_WAIT grow
        # and, at that rate, its open fds reach RLIMIT_NOFILE within this
        # many seconds (then accept()/open() fail with EMFILE).
        Threshold("warning_ttl", 86400, "s"),
        Threshold("critical_ttl", 3600, "s"),
    ), (RFC9293_CLOSE, CLOSE2, SOCKET7, TCP7, TCP_TIMER_C, GETRLIMIT2)),
    RuleMeta("half-closed-fin-wait-2", ("FIN_WAIT2",), (
        Threshold("warning_count", 10, "count"),
        Threshold("critical_count", 1000, "count"),
        Threshold("warning_age", 300, "s"),
        # Apache's lingering close holds FIN_WAIT2 for ~2 s (measured 2.05 s)
        # before close(): younger half-closed sockets are at most INFO.
        Threshold("min_age", 10, "s"),
    ), (SHUTDOWN2, RFC9293_CLOSE, IP_SYSCTL, TCP_C)),
    RuleMeta("keepalive-timeout-fin-wait-2", ("FIN_WAIT2",), (
        Threshold("warning_count", 10, "count"),  # orphans on one listening port, at least min_age old
        Threshold("critical_count", 5000, "count"),
        # Seconds after close() before an orphan counts: the client had that
        # long, after the server's FIN and its lingering close (Apache: ~2 s,
        # measured), to send its own FIN.
        Threshold("min_age", 5, "s"),
    ), (APACHE_FW2, IP_SYSCTL, TCP_C, RFC9293_CLOSE), age_from="close"),
    RuleMeta("orphan-fin-wait-2", ("FIN_WAIT2",), (
        Threshold("warning_count", 1000, "count"),
        Threshold("critical_count", 50000, "count"),
        Threshold("min_age", 5, "s"),  # seconds after close() before an orphan counts
    ), (IP_SYSCTL, TCP7, TCP_C, TCP_TIMER_C, MINISOCKS_C, APACHE_FW2), age_from="close"),
    RuleMeta("time-wait-pressure", ("TIME_WAIT",), (
        Threshold("info_count", 1000, "count"),  # below this many TIME_WAIT: no finding
        Threshold("warning_ratio", 0.5, "ratio"),  # timewait-type sockets / tcp_max_tw_buckets
        Threshold("critical_ratio", 0.9, "ratio"),
        # With a watch history: TIME_WAIT grows and reaches tcp_max_tw_buckets
        # within this many seconds (past it, new TIME_WAIT are destroyed).
        Threshold("warning_ttl", 3600, "s"),
    ), (RFC9293_CLOSE, IP_SYSCTL, MINISOCKS_C, TW_RECYCLE_REMOVED, TCP7)),
    RuleMeta("ephemeral-port-exhaustion", ("",), (
        Threshold("info_ratio", 0.2, "ratio"),  # sockets of one destination / ports in range
        Threshold("warning_ratio", 0.5, "ratio"),
        Threshold("critical_ratio", 0.9, "ratio"),
    ), (IP_SYSCTL, PORT_CONNECT, TCP7)),
    RuleMeta("orphan-limit", ("",), (
        # tcp_too_many_orphans() shifts the count left by 1 or 2 for orphans
        # that are idle or got ICMP errors (tcp_out_of_resources(),
        # net/ipv4/tcp_timer.c): those die at 1/2 and 1/4 of the limit.
        Threshold("warning_ratio", 0.25, "ratio"),
        Threshold("critical_ratio", 0.5, "ratio"),
    ), (IP_SYSCTL, TCP_TIMER_C, TCP7), host_wide=True),
    RuleMeta("fin-wait-1-stuck", ("FIN_WAIT1",), (
        Threshold("min_retransmits", 2, "count"),  # a FIN retransmitted this often is stuck
        Threshold("warning_count", 10, "count"),
        Threshold("critical_count", 1000, "count"),
    ), (RFC9293_CLOSE, IP_SYSCTL, TCP_TIMER_C)),
    RuleMeta("last-ack-stuck", ("LAST_ACK",), (
        Threshold("min_retransmits", 2, "count"),
        Threshold("warning_count", 10, "count"),
        Threshold("critical_count", 1000, "count"),
    ), (RFC9293_CLOSE, IP_SYSCTL, TCP_TIMER_C, CONNTRACK_TCP_C)),
    RuleMeta("keepalive-vs-idle-timeout", ("ESTABLISHED",), (
        Threshold("idle_timeout", 240, "s"),  # the shortest common middlebox timeout
        Threshold("warning_count", None, "count"),  # off: a risk, not a fault
    ), (RFC1122_KEEPALIVE, RFC5382, SOCKET7, TCP7, AWS_NLB, AWS_NATGW, AWS_NFW, AZURE_LB, GCP_NAT)),
    RuleMeta("conntrack-mismatch", ("CLOSE_WAIT", "FIN_WAIT2"), (
        Threshold("warning_fill", 0.8, "ratio"),  # nf_conntrack_count / nf_conntrack_max
        Threshold("critical_fill", 0.95, "ratio"),
        Threshold("warning_count", 1, "count"),  # sockets older than the conntrack timeout
    ), (CONNTRACK_SYSCTL, CONNTRACK_TCP_C, RFC9293_CLOSE)),
    RuleMeta("sysctl-folklore", ("",), (
        Threshold("time_wait_count", 100, "count"),  # TIME_WAIT present before calling a setting useless
    ), (IP_SYSCTL, TW_RECYCLE_REMOVED, TCP7, SOCKET7)),
)

BY_ID: dict[str, RuleMeta] = {r.id: r for r in RULES}

Thresholds = Mapping[str, Mapping[str, "float | None"]]


class BadThreshold(ValueError):
    """An override naming an unknown rule or threshold, or a bad value.

    ``str()`` is the English text; ``key`` and ``fields`` name the catalog
    message (``threshold.*``); a bad value's reason is the units.BadValue
    in ``fields["reason"]``, said by its own key.
    """

    def __init__(self, key: str, english: str, **fields):
        self.key = key
        self.fields = fields
        super().__init__(english.format(**fields))


def parse_override(text: str) -> tuple[str, str, float | None]:
    """``RULE.NAME=VALUE`` (VALUE a number or ``off``).

    >>> parse_override("close-wait-leak.warning_count=5")
    ('close-wait-leak', 'warning_count', 5.0)
    >>> parse_override("keepalive-vs-idle-timeout.warning_count=off")
    ('keepalive-vs-idle-timeout', 'warning_count', None)
    """
    left, sep, value = text.partition("=")
    rule, dot, name = left.strip().rpartition(".")
    if not sep or not dot:
        raise BadThreshold("threshold.format", "{text}: expected RULE.THRESHOLD=VALUE",
                           text=repr(text))
    meta = BY_ID.get(rule)
    if meta is None:
        raise BadThreshold("threshold.unknown_rule", "{text}: unknown rule {rule}",
                           text=repr(text), rule=repr(rule))
    if name not in meta.defaults():
        raise BadThreshold("threshold.unknown_name",
                           "{text}: rule {rule} has no threshold {name} (it has {known})",
                           text=repr(text), rule=rule, name=repr(name),
                           known=", ".join(meta.defaults()))
    value = value.strip()
    if value.lower() in ("off", "none"):
        return rule, name, None
    threshold = next(t for t in meta.thresholds if t.name == name)
    try:
        return rule, name, threshold.parse(value)
    except units.BadValue as exc:
        raise BadThreshold("threshold.bad_value", "{text}: {reason}", text=repr(text),
                           reason=exc) from None


def merge(overrides: Thresholds | None = None) -> dict[str, dict[str, float | None]]:
    """Every rule's thresholds: defaults, then ``overrides``."""
    out = {r.id: r.defaults() for r in RULES}
    for rule, values in (overrides or {}).items():
        if rule not in out:
            raise BadThreshold("error.unknown_rule", "unknown rule {rule} (see `tcplinger rules`)",
                               rule=repr(rule))
        for name, value in values.items():
            if name not in out[rule]:
                raise BadThreshold("threshold.no_name", "rule {rule} has no threshold {name}",
                                   rule=rule, name=repr(name))
            out[rule][name] = value
    return out
