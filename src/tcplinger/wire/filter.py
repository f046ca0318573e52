"""``--filter EXPR`` for capture files: a subset of pcap-filter(7),
evaluated on a whole block of decoded packets at once.

Primitives: ``[src|dst] host ADDR``, ``[src|dst] net CIDR``,
``[src|dst] port N``, ``[src|dst] portrange A-B``, ``tcp``, ``ip``,
``ip6``; combined with ``and``/``&&``, ``or``/``||``, ``not``/``!`` and
parentheses (``not`` binds tightest, then ``and``, then ``or``). A
live capture hands its filter to tcpdump, which understands all of
pcap-filter(7).

>>> f = compile_filter("port 80 and not host 10.0.0.9")
>>> f.text
'port 80 and not host 10.0.0.9'
>>> compile_filter("port 80 and (")
Traceback (most recent call last):
...
tcplinger.wire.filter.FilterError: unexpected end of the expression
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .decode import Packets, parse_addr

_TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||!|[^\s()!]+)")


class FilterError(ValueError):
    pass


@dataclass(frozen=True)
class Filter:
    text: str
    mask: Callable[[Packets], np.ndarray]

    def __call__(self, p: Packets) -> np.ndarray:
        return self.mask(p)


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise FilterError(f"cannot read {text[pos:]!r}")
        out.append(m.group(1))
        pos = m.end()
    return out


def _addr_test(addr: str, direction: str):
    try:
        hi, lo = parse_addr(addr)
    except ValueError:
        raise FilterError(f"not an address: {addr!r}") from None

    def one(h, lo_):
        return (h == np.uint64(hi)) & (lo_ == np.uint64(lo))
    return _sided(direction, lambda p: one(p.src_hi, p.src_lo), lambda p: one(p.dst_hi, p.dst_lo))


def _net_test(cidr: str, direction: str):
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise FilterError(f"not a network: {cidr!r}") from None
    if net.version == 4:
        net = ipaddress.ip_network(f"::ffff:{net.network_address}/{96 + net.prefixlen}")
    value, bits = int(net.network_address), net.prefixlen
    mask = ((1 << 128) - 1) ^ ((1 << (128 - bits)) - 1)
    mh, ml = np.uint64(mask >> 64), np.uint64(mask & (2 ** 64 - 1))
    vh, vl = np.uint64(value >> 64), np.uint64(value & (2 ** 64 - 1))

    def one(h, lo_):
        return ((h & mh) == vh) & ((lo_ & ml) == vl)
    return _sided(direction, lambda p: one(p.src_hi, p.src_lo), lambda p: one(p.dst_hi, p.dst_lo))


def _port_test(lo: int, hi: int, direction: str):
    return _sided(direction, lambda p: (p.sport >= lo) & (p.sport <= hi),
                  lambda p: (p.dport >= lo) & (p.dport <= hi))


def _sided(direction: str, src, dst):
    if direction == "src":
        return src
    if direction == "dst":
        return dst
    return lambda p: src(p) | dst(p)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise FilterError(f"not a port: {text!r}")
    return int(text)


class _Parser:
    def __init__(self, tokens: list[str]):
        self.t = tokens
        self.i = 0

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self):
        tok = self.peek()
        if tok is None:
            raise FilterError("unexpected end of the expression")
        self.i += 1
        return tok

    def expr(self):
        left = self.term()
        while self.peek() in ("or", "||"):
            self.take()
            a, b = left, self.term()
            left = (lambda a, b: lambda p: a(p) | b(p))(a, b)
        return left

    def term(self):
        left = self.factor()
        while self.peek() in ("and", "&&"):
            self.take()
            a, b = left, self.factor()
            left = (lambda a, b: lambda p: a(p) & b(p))(a, b)
        return left

    def factor(self):
        tok = self.take()
        if tok in ("not", "!"):
            inner = self.factor()
            return lambda p: ~inner(p)
        if tok == "(":
            inner = self.expr()
            if self.take() != ")":
                raise FilterError("expected )")
            return inner
        direction = ""
        if tok in ("src", "dst"):
            direction, tok = tok, self.take()
        if tok == "host":
            return _addr_test(self.take(), direction)
        if tok == "net":
            return _net_test(self.take(), direction)
        if tok == "port":
            port = _port(self.take())
            return _port_test(port, port, direction)
        if tok == "portrange":
            a, _, b = self.take().partition("-")
            return _port_test(_port(a), _port(b), direction)
        if direction:  # "src 10.0.0.1" means "src host 10.0.0.1"
            return _addr_test(tok, direction)
        if tok == "tcp":
            return lambda p: np.ones(len(p), bool)
        if tok == "ip":
            return lambda p: p.family == 4
        if tok == "ip6":
            return lambda p: p.family == 6
        raise FilterError(f"unknown word {tok!r} (this filter knows host, net, port, portrange,"
                          " src, dst, tcp, ip, ip6, and, or, not)")


def compile_filter(text: str) -> Filter:
    parser = _Parser(_tokens(text))
    if parser.peek() is None:
        raise FilterError("empty filter")
    fn = parser.expr()
    if parser.peek() is not None:
        raise FilterError(f"unexpected {parser.peek()!r}")
    return Filter(text, fn)
