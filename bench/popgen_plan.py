"""What a benchmark population is made of (bench/popgen.py): the state mix,
the kinds of sockets that make it, and the plan of which holder process
builds what on which addresses. Pure: no sockets, no namespaces."""

from __future__ import annotations

import math
import os
import resource
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

try:
    from tcplinger.model.states import BY_STATE, TcpState, parse_state
except ImportError:  # run from a checkout without `pip install -e`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from tcplinger.model.states import BY_STATE, TcpState, parse_state
from tcplinger.model import units  # noqa: E402

DEFAULT_MIX = "established=0.6,close-wait=0.2,fin-wait-2=0.1,time-wait=0.1"
SUPPORTED = (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT, TcpState.FIN_WAIT2,
             TcpState.TIME_WAIT, TcpState.LISTEN)
PORT_FILL = 16000  # connections per (source, destination) pair: 1/4 of 64512 ports
LISTEN_PORTS = range(100, 1000)


def parse_count(text: str) -> int:
    """``1M``, ``100k``, ``2000`` (``_`` separators allowed) -> int; the
    number itself in tcplinger's one grammar (model/units.py).

    >>> parse_count("1M"), parse_count("100k"), parse_count("2_000"), parse_count("1.5k")
    (1000000, 100000, 2000, 1500)
    """
    text = text.strip().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    return int(units.parse_number(text[:-1] if scale > 1 else text, maximum=10**9) * scale)


class PopulationError(RuntimeError):
    """The population could not be built (a holder failed or timed out)."""


@dataclass(frozen=True)
class Mix:
    """Shares of sockets per TCP state, in the order given.

    >>> Mix.parse("established=0.5,close-wait=0.2,time-wait=0.1,fin-wait-2=0.1,listen=0.1")
    Mix(shares=((<TcpState.ESTABLISHED: 1>, 0.5), (<TcpState.CLOSE_WAIT: 8>, 0.2), \
(<TcpState.TIME_WAIT: 6>, 0.1), (<TcpState.FIN_WAIT2: 5>, 0.1), (<TcpState.LISTEN: 10>, 0.1)))
    >>> Mix.parse("syn-sent=1")
    Traceback (most recent call last):
    ...
    ValueError: state SYN_SENT: popgen makes only ESTABLISHED, CLOSE_WAIT, FIN_WAIT2, TIME_WAIT, LISTEN
    """

    shares: tuple[tuple[TcpState, float], ...]

    @classmethod
    def parse(cls, text: str) -> "Mix":
        shares: dict[TcpState, float] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"{part!r}: expected state=fraction")
            state = parse_state(name)
            if state not in SUPPORTED:
                allowed = ", ".join(s.name for s in SUPPORTED)
                raise ValueError(f"state {state.name}: popgen makes only {allowed}")
            share = float(value)
            if share < 0 or not math.isfinite(share):
                raise ValueError(f"{part!r}: fraction must be >= 0")
            shares[state] = shares.get(state, 0.0) + share
        if not shares or sum(shares.values()) <= 0:
            raise ValueError(f"{text!r}: empty mix")
        return cls(tuple(shares.items()))

    def counts(self, sockets: int) -> dict[TcpState, int]:
        """Socket counts summing to exactly ``sockets`` (largest remainder;
        shares are normalised, so they need not add up to 1).

        >>> Mix.parse("established=0.5,close-wait=0.25,time-wait=0.25").counts(10)
        {<TcpState.ESTABLISHED: 1>: 5, <TcpState.CLOSE_WAIT: 8>: 3, <TcpState.TIME_WAIT: 6>: 2}
        >>> sum(Mix.parse("established=1,listen=2").counts(1001).values())
        1001
        """
        total = sum(share for _, share in self.shares)
        exact = [(state, sockets * share / total) for state, share in self.shares]
        out = {state: int(value) for state, value in exact}
        short = sockets - sum(out.values())
        by_remainder = sorted(range(len(exact)), key=lambda i: -(exact[i][1] - int(exact[i][1])))
        for i in by_remainder[:short]:
            out[exact[i][0]] += 1
        return out

    def __str__(self) -> str:
        return ",".join(f"{BY_STATE[s].name.lower().replace('_', '-')}={v:g}" for s, v in self.shares)


@dataclass(frozen=True)
class Kinds:
    """How many connections of each kind (see the module docstring) to make.

    >>> k = Kinds.from_counts({TcpState.ESTABLISHED: 5, TcpState.CLOSE_WAIT: 3,
    ...                        TcpState.FIN_WAIT2: 1, TcpState.TIME_WAIT: 2, TcpState.LISTEN: 1})
    >>> k
    Kinds(established_pairs=2, established_solo=1, half_closed_pairs=1, close_wait_solo=2, \
fin_wait2_solo=0, time_wait=2, listeners=1)
    >>> k.sockets()[TcpState.CLOSE_WAIT], k.fds, k.connections
    (3, 10, 8)
    """

    established_pairs: int = 0
    established_solo: int = 0
    half_closed_pairs: int = 0
    close_wait_solo: int = 0
    fin_wait2_solo: int = 0
    time_wait: int = 0
    listeners: int = 0

    @classmethod
    def from_counts(cls, counts: Mapping[TcpState, int]) -> "Kinds":
        est = counts.get(TcpState.ESTABLISHED, 0)
        cw = counts.get(TcpState.CLOSE_WAIT, 0)
        fw2 = counts.get(TcpState.FIN_WAIT2, 0)
        half = min(cw, fw2)
        return cls(established_pairs=est // 2, established_solo=est % 2,
                   half_closed_pairs=half, close_wait_solo=cw - half, fin_wait2_solo=fw2 - half,
                   time_wait=counts.get(TcpState.TIME_WAIT, 0),
                   listeners=counts.get(TcpState.LISTEN, 0))

    def sockets(self) -> dict[TcpState, int]:
        return {
            TcpState.ESTABLISHED: 2 * self.established_pairs + self.established_solo,
            TcpState.CLOSE_WAIT: self.half_closed_pairs + self.close_wait_solo,
            TcpState.FIN_WAIT2: self.half_closed_pairs + self.fin_wait2_solo,
            TcpState.TIME_WAIT: self.time_wait,
            TcpState.LISTEN: self.listeners,
        }

    @property
    def fds(self) -> int:
        """Sockets that stay open in a holder (TIME-WAIT sockets hold none)."""
        s = self.sockets()
        return sum(s.values()) - s[TcpState.TIME_WAIT]

    @property
    def connections(self) -> int:
        return (self.established_pairs + self.established_solo + self.half_closed_pairs
                + self.close_wait_solo + self.fin_wait2_solo + self.time_wait)


_FD_KINDS = ("established_pairs", "established_solo", "half_closed_pairs",
             "close_wait_solo", "fin_wait2_solo")


def _spread(total: int, parts: int, start: int) -> list[int]:
    """``total`` split into ``parts`` near-equal shares; the remainder goes to
    the parts from ``start`` on (so that different kinds' remainders do not
    all land on holder 0).

    >>> _spread(10, 4, 3)
    [3, 2, 2, 3]
    """
    base, rest = divmod(total, parts)
    return [base + (1 if (i - start) % parts < rest else 0) for i in range(parts)]


@dataclass(frozen=True)
class HolderPlan:
    index: int
    kinds: Kinds  # kinds.listeners: listeners this holder keeps after the build
    listen_addrs: tuple[tuple[str, int], ...]  # >= 1; a temporary one if none is kept
    source_addrs: tuple[str, ...]
    batch: int
    refresh_time_wait: bool


@dataclass(frozen=True)
class Plan:
    sockets: int
    mix: Mix
    total: Kinds
    holders: tuple[HolderPlan, ...]
    notes: tuple[str, ...] = ()

    def expected(self) -> dict[str, int]:
        """Expected `ss -tan` state column counts (only non-zero ones)."""
        return {BY_STATE[s].ss_name: n for s, n in self.total.sockets().items() if n}


def _listen_addr(holder: int, j: int) -> tuple[str, int]:
    per_addr = len(LISTEN_PORTS)
    return (f"127.{1 + holder // 256}.{holder % 256}.{1 + j // per_addr}",
            LISTEN_PORTS[j % per_addr])


def _source_addr(holder: int, k: int) -> str:
    return f"127.{128 + holder // 256}.{holder % 256}.{1 + k}"


def pinned_addr(holder: int, k: int) -> str:
    return f"127.{192 + holder // 256}.{holder % 256}.{1 + k}"


def default_fd_budget(batch: int) -> int:
    """Open files a holder may keep: the hard RLIMIT_NOFILE minus a batch in
    flight (client + server per connection) and some slack."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1] - 2 * batch - 100


def make_plan(sockets: int, mix: Mix | str, *, holders: int | None = None, batch: int = 256,
              cpus: int | None = None, fd_budget: int | None = None,
              refresh_time_wait: bool = True) -> Plan:
    """Split a population over holder processes.

    LISTEN is at least the number of holders that make TIME-WAIT sockets (they
    keep a listener to re-create them); the difference is taken from the
    largest other state so the total stays ``sockets``.

    >>> p = make_plan(2000, "established=0.5,close-wait=0.3,time-wait=0.2", cpus=2)
    >>> p.expected(), len(p.holders), p.notes
    ({'ESTAB': 998, 'CLOSE-WAIT': 600, 'TIME-WAIT': 400, 'LISTEN': 2}, 2, \
('LISTEN raised 0 -> 2 (one per TIME-WAIT holder), taken from ESTABLISHED',))
    >>> p = make_plan(1_000_000, DEFAULT_MIX, cpus=2, fd_budget=19400)
    >>> len(p.holders), max(h.kinds.fds for h in p.holders) <= 19400
    (47, True)
    """
    mix = Mix.parse(mix) if isinstance(mix, str) else mix
    if sockets < 1:
        raise ValueError("sockets must be >= 1")
    cpus = cpus or os.cpu_count() or 2
    budget = fd_budget or default_fd_budget(batch)
    counts = {s: 0 for s in SUPPORTED} | mix.counts(sockets)
    notes: list[str] = []

    preliminary = Kinds.from_counts(counts)
    n_holders = holders or max(cpus, math.ceil((preliminary.fds + cpus) / budget))
    tw_holders = min(n_holders, cpus) if counts[TcpState.TIME_WAIT] else 0
    wanted_listen = counts[TcpState.LISTEN]
    if wanted_listen < tw_holders:
        taken: list[str] = []
        for _ in range(tw_holders - wanted_listen):
            donor = max((s for s in SUPPORTED if s != TcpState.LISTEN), key=lambda s: counts[s])
            if counts[donor] == 0:
                break
            counts[donor] -= 1
            counts[TcpState.LISTEN] += 1
            taken.append(donor.name)
        notes.append(f"LISTEN raised {wanted_listen} -> {counts[TcpState.LISTEN]} "
                     f"(one per TIME-WAIT holder), taken from {'/'.join(dict.fromkeys(taken))}")
    total = Kinds.from_counts(counts)

    while True:
        shares = {name: _spread(getattr(total, name), n_holders, i * 7)
                  for i, name in enumerate(_FD_KINDS)}
        tw = _spread(total.time_wait, tw_holders, 0) if tw_holders else []
        kept = [1 if i < tw_holders else 0 for i in range(n_holders)]
        for j in range(total.listeners - sum(kept)):
            kept[(tw_holders + j) % n_holders] += 1
        parts = [Kinds(**{name: shares[name][i] for name in _FD_KINDS},
                       time_wait=tw[i] if i < tw_holders else 0, listeners=kept[i])
                 for i in range(n_holders)]
        if all(k.fds + (k.listeners == 0) <= budget for k in parts):
            break
        if holders:
            raise ValueError(f"{holders} holders cannot keep {total.fds} sockets open "
                             f"({budget} fds each at most)")
        n_holders += 1
    if n_holders > 64 * 256 or max(k.listeners for k in parts) > 254 * len(LISTEN_PORTS):
        raise ValueError(f"{n_holders} holders / {total.listeners} listeners: "
                         "too many for the address plan")

    plans = []
    for i, k in enumerate(parts):
        conns = k.connections + k.time_wait  # old and re-created TIME-WAIT overlap
        n_src = min(254, max(1, math.ceil(conns / PORT_FILL)))
        plans.append(HolderPlan(
            index=i, kinds=k,
            listen_addrs=tuple(_listen_addr(i, j) for j in range(max(1, k.listeners))),
            source_addrs=tuple(_source_addr(i, s) for s in range(n_src)),
            batch=batch, refresh_time_wait=refresh_time_wait))
    return Plan(sockets, mix, total, tuple(plans), tuple(notes))
