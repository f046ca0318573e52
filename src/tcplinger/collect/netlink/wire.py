"""sock_diag wire tables: constants and struct layouts, written out by hand.

Everything here is copied from the uapi headers (``linux/netlink.h``,
``linux/sock_diag.h``, ``linux/inet_diag.h``, ``linux/tcp.h``) so that the
codec needs no C compiler, no pyroute2 and no generated bindings. Netlink
is host-endian; only ports and addresses inside ``inet_diag_sockid`` are in
network order. The numpy dtypes use native order (``=``) for that reason.

A reply message as the kernel sends it (one ESTABLISHED IPv4 socket, the
fixed part only; attributes follow at offset 88)::

    offset  size  field
         0     4  nlmsg_len    (88 + attributes)
         4     2  nlmsg_type   SOCK_DIAG_BY_FAMILY = 20
         6     2  nlmsg_flags  NLM_F_MULTI = 2 in a dump
         8     4  nlmsg_seq    the request's seq
        12     4  nlmsg_pid    our port id
        16     1  idiag_family AF_INET = 2
        17     1  idiag_state  1 = ESTABLISHED
        18     1  idiag_timer  0 off, 1 retransmit, 2 keepalive, 3 timewait, 4 probe
        19     1  idiag_retrans
        20     2  idiag_sport  big-endian
        22     2  idiag_dport  big-endian
        24    16  idiag_src    IPv4 in the first 4 bytes
        40    16  idiag_dst
        56     4  idiag_if
        60     8  idiag_cookie two host-order u32 halves, low half first
        68     4  idiag_expires (ms)
        72     4  idiag_rqueue
        76     4  idiag_wqueue
        80     4  idiag_uid
        84     4  idiag_inode

>>> NLMSGHDR.itemsize, INET_DIAG_REQ_V2.itemsize, INET_DIAG_MSG.itemsize, DIAG_REPLY.itemsize
(16, 56, 72, 88)
>>> DIAG_REPLY.fields["cookie_lo"][1], DIAG_REPLY.fields["inode"][1]
(60, 84)
>>> TCP_INFO_WIRE.fields["rtt"][1], TCP_INFO_WIRE.fields["total_retrans"][1], TCP_INFO_WIRE.itemsize
(68, 100, 104)
"""

from __future__ import annotations

import numpy as np

from ...model.table import TCP_INFO_FIELDS

# --- netlink (linux/netlink.h) -------------------------------------------
NETLINK_SOCK_DIAG = 4

NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_DUMP_INTR = 0x10
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_CAPPED = 0x100  # in an NLMSG_ERROR: the echoed request is header-only
NLM_F_ACK_TLVS = 0x200  # in an NLMSG_ERROR/DONE: extended-ack attributes follow

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4

NLMSG_ALIGNTO = 4
NLMSG_HDRLEN = 16
NLA_HDRLEN = 4
#: nla_type carries two flag bits (NLA_F_NESTED, NLA_F_NET_BYTEORDER).
NLA_TYPE_MASK = 0x3FFF

SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12

# --- sock_diag (linux/sock_diag.h) ---------------------------------------
SOCK_DIAG_BY_FAMILY = 20
#: The inet_diag request of before sock_diag (linux/inet_diag.h): the
#: kernel still serves it (inet_diag_rcv_msg_compat(), net/ipv4/inet_diag.c)
#: and dumps it with sdiag_family = AF_UNSPEC, i.e. both families in one
#: walk of the hash tables; replies carry this type.
TCPDIAG_GETSOCK = 18
SOCK_DESTROY = 21

IPPROTO_TCP = 6

# --- inet_diag (linux/inet_diag.h) ---------------------------------------
#: Both cookie halves set to this mean "do not check the cookie".
INET_DIAG_NOCOOKIE = 0xFFFFFFFF
NO_COOKIE = 0xFFFF_FFFF_FFFF_FFFF

INET_DIAG_NONE = 0
INET_DIAG_MEMINFO = 1
INET_DIAG_INFO = 2
INET_DIAG_VEGASINFO = 3
INET_DIAG_CONG = 4
INET_DIAG_TOS = 5
INET_DIAG_TCLASS = 6
INET_DIAG_SKMEMINFO = 7
INET_DIAG_SHUTDOWN = 8
INET_DIAG_DCTCPINFO = 9
INET_DIAG_PROTOCOL = 10
INET_DIAG_SKV6ONLY = 11
INET_DIAG_LOCALS = 12
INET_DIAG_PEERS = 13
INET_DIAG_PAD = 14
INET_DIAG_MARK = 15
INET_DIAG_BBRINFO = 16
INET_DIAG_CLASS_ID = 17
INET_DIAG_MD5SIG = 18
INET_DIAG_ULP_INFO = 19
INET_DIAG_SK_BPF_STORAGES = 20
INET_DIAG_CGROUP_ID = 21
INET_DIAG_SOCKOPT = 22

ATTRIBUTE_NAMES = {
    value: name[len("INET_DIAG_"):]
    for name, value in dict(globals()).items()
    if name.startswith("INET_DIAG_") and name != "INET_DIAG_NOCOOKIE"
    and isinstance(value, int)
}


def ext_bit(attr: int) -> int:
    """``idiag_ext`` bit requesting an extension: ``1 << (attr - 1)``.

    >>> ext_bit(INET_DIAG_INFO)
    2
    """
    return 1 << (attr - 1)


#: idiag_timer value of a timewait-type socket (inet_twsk_diag_fill(),
#: net/ipv4/inet_diag.c); full sockets report 0, 1, 2 or 4 only.
TIMER_TIMEWAIT = 3

# --- struct layouts ------------------------------------------------------
NLMSGHDR = np.dtype([
    ("len", "=u4"), ("type", "=u2"), ("flags", "=u2"), ("seq", "=u4"), ("pid", "=u4"),
])

#: struct inet_diag_sockid (48 bytes).
_SOCKID = [
    ("sport", ">u2"), ("dport", ">u2"),
    ("src", "V16"), ("dst", "V16"),
    ("ifindex", "=u4"),
    ("cookie_lo", "=u4"), ("cookie_hi", "=u4"),
]

INET_DIAG_REQ_V2 = np.dtype([
    ("family", "u1"), ("protocol", "u1"), ("ext", "u1"), ("pad", "u1"),
    ("states", "=u4"),
] + _SOCKID)

#: struct inet_diag_req (60 bytes), the TCPDIAG_GETSOCK request.
INET_DIAG_REQ = np.dtype([
    ("family", "u1"), ("src_len", "u1"), ("dst_len", "u1"), ("ext", "u1"),
] + _SOCKID + [("states", "=u4"), ("dbs", "=u4")])

INET_DIAG_MSG = np.dtype([
    ("family", "u1"), ("state", "u1"), ("timer", "u1"), ("retrans", "u1"),
] + _SOCKID + [
    ("expires", "=u4"), ("rqueue", "=u4"), ("wqueue", "=u4"),
    ("uid", "=u4"), ("inode", "=u4"),
])

#: nlmsghdr + inet_diag_msg, flattened: what the decoder gathers per message.
DIAG_REPLY = np.dtype(
    [("nl_" + name, NLMSGHDR.fields[name][0]) for name in NLMSGHDR.names]
    + [(name, INET_DIAG_MSG.fields[name][0]) for name in INET_DIAG_MSG.names])

assert NLMSGHDR.itemsize == NLMSG_HDRLEN
assert INET_DIAG_REQ_V2.itemsize == 56
assert INET_DIAG_REQ.itemsize == 60
assert INET_DIAG_MSG.itemsize == 72
assert DIAG_REPLY.itemsize == 88

#: Offsets of the struct tcp_info fields tcplinger reads (linux/tcp.h).
#: All lie in the first 104 bytes, the struct as Linux 2.6 already sent
#: it; later kernels append fields (280 bytes on 6.18), older ones may
#: send less, so every field is read only when the attribute covers it.
TCP_INFO_OFFSETS = {
    "state": 0, "ca_state": 1, "retransmits": 2, "probes": 3, "backoff": 4,
    "options": 5,
    "rto": 8, "ato": 12, "snd_mss": 16, "rcv_mss": 20,
    "unacked": 24, "sacked": 28, "lost": 32, "retrans": 36,
    # 40: fackets (unused since 4.15)
    "last_data_sent": 44, "last_ack_sent": 48, "last_data_recv": 52, "last_ack_recv": 56,
    # 60: pmtu, 64: rcv_ssthresh
    "rtt": 68, "rttvar": 72,
    # 76: snd_ssthresh
    "snd_cwnd": 80,
    # 84: advmss, 88: reordering, 92: rcv_rtt, 96: rcv_space
    "total_retrans": 100,
}

TCP_INFO_WIRE = np.dtype({
    "names": [name for name, _ in TCP_INFO_FIELDS],
    "formats": ["=" + fmt if fmt != "u1" else fmt for _, fmt in TCP_INFO_FIELDS],
    "offsets": [TCP_INFO_OFFSETS[name] for name, _ in TCP_INFO_FIELDS],
    "itemsize": 104,
})

#: Minimum attribute payload that holds each field.
TCP_INFO_FIELD_END = {name: TCP_INFO_OFFSETS[name] + np.dtype(fmt).itemsize
                      for name, fmt in TCP_INFO_FIELDS}
