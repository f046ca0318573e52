"""The watcher: the loop of ``tcplinger watch``, the daemon that remembers. Every interval it takes
a snapshot, tells the tracker (track/tracker.py) what it saw and what the
state-change tracepoint reported in between, and writes counts, kernel
limits, transitions and the live ages into the watch database
(track/store.py).

Ages come from ``sock:inet_sock_set_state`` through a private tracefs
instance (collect/tracefs.py) when tracefs is there and the user is root;
otherwise from sampling, which it says once at start.

SIGTERM and SIGINT end the loop after the sample in progress is written;
the database is in WAL mode so a ``kill -9`` leaves it readable.

Between full dumps (every ``--full-every`` seconds) a sample dumps every
state but ESTABLISHED, the bulk of a busy host (100k sockets: 0.040 s
against 0.093 s a dump): ESTABLISHED sockets stay in the tracker as last
seen and their count is sockstat's ``inuse`` minus the other full sockets
(track/series.established_between). Every sample is a full dump without
tracing, or after the tracepoint lost events (docs/watch.md).
"""

from __future__ import annotations

import collections
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..collect import owners as owners_mod
from ..collect import snapshot as snap_mod
from ..collect import tracefs
from ..collect.owners import OwnerPolicy
from ..collect.roots import Roots
from ..model.states import LINGERING, REPORTED, TcpState
from ..track import series, tracelines
from ..track.store import SampleInfo, Store
from ..track.tracker import Tracker

#: Transitions worth a row in ``events``: into or out of these states.
#: TIME_WAIT is left out: every closed connection passes through it; its
#: count is in the time series.
EVENT_STATES = frozenset(int(s) for s in LINGERING) - {int(TcpState.TIME_WAIT)}
#: Kernel-side filter of sock:inet_sock_set_state (filter syntax:
#: Documentation/trace/events.rst, "Event filtering"). The tracepoint fires
#: for every namespace of the host, about 12 times per connection (with
#: tcp_destroy_sock); only entries into the lingering states and the ends
#: of CLOSE_WAIT, LAST_ACK, CLOSING and FIN_WAIT1 are kept: 5 per normal
#: connection. Entries into SYN_SENT, SYN_RECV, ESTABLISHED, LISTEN and the
#: FIN_WAIT2 -> CLOSE hand-over to TIME_WAIT are left to sampling (TIME_WAIT
#: ages come from its timer); tcp_destroy_sock is not enabled.
STATE_FILTER = ("newstate == 4 || newstate == 5 || newstate == 8 || newstate == 9 || "
                "newstate == 11 || (newstate == 7 && (oldstate == 4 || oldstate == 8 || "
                "oldstate == 9 || oldstate == 11))")
#: Seconds between two retention passes.
RETAIN_EVERY = 300.0
#: At most this many event rows per sample (a storm of closes must not
#: grow the database without bound); the rest are counted in the log.
MAX_EVENTS_PER_SAMPLE = 5000
#: The daemon walks whatever the fd count: the walk runs on its own thread,
#: only for new inodes, and at most every five times its own cost.
OWNERS = OwnerPolicy(walk=True)
#: What a sample between full dumps asks the kernel for.
BETWEEN_STATES = frozenset(int(s) for s in REPORTED) - {int(TcpState.ESTABLISHED)}
#: True for the states whose sockets get an owner (a look-up per row)
_OWNED = np.zeros(256, bool)
_OWNED[list(series.OWNED_STATES)] = True


@dataclass(frozen=True)
class WatchOptions:
    scope: snap_mod.Scope
    interval: float
    db: Path
    trace: bool = True
    samples: int | None = None  # stop after this many (tests, benchmarks)
    owners: bool = True
    raw_keep: float = 6 * 3600
    keep: float = 30 * 24 * 3600
    #: trace lines read a second at most (CPU bound; the rest are counted lost)
    max_events: int = 100000
    #: seconds between full dumps (ESTABLISHED included); 0: every sample
    full_every: float = 10.0


class Watcher:
    """The loop, separate from argument parsing so tests and the benchmark
    drive it directly."""

    def __init__(self, opts: WatchOptions, *, log=lambda text: None,
                 roots: Roots = Roots()):
        self.opts = opts
        self.log = log
        self.roots = roots
        self.stop = threading.Event()
        self.tracker = Tracker(event_horizon=max(30.0, 3 * opts.interval))
        self.queue: collections.deque = collections.deque()
        self.pending = tracelines.PendingEvents()
        self.session: tracefs.TraceSession | None = None
        self.age_source = "first_seen"
        self.trace_error: str | None = None
        #: inode -> the owner key (pid/comm) of its first owner, "" for none
        self.owner_cache: dict = {}
        self._owner_version = 0  # bumped whenever owner_cache changes
        self._keys, self._keys_version = None, None
        self.owner_info: dict = {}
        self._last_walk = -1e9
        self._walk_cost = 0.0
        self._walker: threading.Thread | None = None
        self._walk_result = None
        self.samples = 0
        self.sample_cost: list[float] = []
        self.events_dropped = 0
        self.full_dumps = 0
        self._last_full = -1e9
        self._lost_seen = 0
        #: sock_diag sockets by namespace inode, reused from one sample to
        #: the next (snapshot.take); closed once their namespace is gone
        self.diag_sockets: dict = {}
        #: the owned inodes of the last sample, per namespace, and those of
        #: them no walk has looked for yet (_owners)
        self._owners_seen: list | None = None
        self._owners_missing: set = set()
        #: snapshot.resolve's answer at the last full dump (_targets)
        self._scope: tuple[list, int] | None = None

    # ---- life cycle -----------------------------------------------------
    def start_trace(self) -> None:
        if not self.opts.trace:
            self.trace_error = "disabled (--no-trace)"
            return
        try:
            self.session = tracefs.TraceSession(
                "watch", events=("sock/inet_sock_set_state",), filter=STATE_FILTER,
                buffer_kb=4096, on_chunk=self.queue.append,
                max_lines_per_s=self.opts.max_events).start()
            self.age_source = "trace"
            # A socket that closes is gone from the next dump at once, but
            # its last events may still be in the ring buffer: wait one
            # more sample before calling it gone, so they date its end.
            self.tracker.miss_limit = 2

        except (tracefs.TracefsUnavailable, PermissionError, OSError) as exc:
            self.session = None
            self.trace_error = exc.strerror or str(exc)

    def run(self, store: Store) -> int:
        offset = time.time() - time.monotonic()
        store.set_meta(interval=self.opts.interval, age_source=self.age_source,
                       trace_error=self.trace_error, started=time.time(), pid=os.getpid())
        last_retain = 0.0
        next_t = time.monotonic()
        while not self.stop.is_set():
            self.sample(store, offset)
            if time.monotonic() - last_retain >= RETAIN_EVERY:
                store.retain(time.time(), raw_keep=self.opts.raw_keep, keep=self.opts.keep)
                last_retain = time.monotonic()
            if self.opts.samples is not None and self.samples >= self.opts.samples:
                break
            next_t += self.opts.interval
            delay = next_t - time.monotonic()
            if delay < 0:  # a sample took longer than the interval: skip ahead
                next_t = time.monotonic()
                delay = 0
            self.stop.wait(delay)
        return self.samples

    def close(self) -> None:
        self._close_diag(keep=())
        if self.session is not None:
            self.session.close()
            self.session = None

    # ---- one sample -----------------------------------------------------
    def sample(self, store: Store, offset: float) -> None:
        t0 = time.monotonic()
        cpu0 = time.process_time()
        # No tcp_info: its last-receive bound is a one-shot fallback (ls
        # merges its own), and asking it costs 40% more per dump (100k
        # sockets here: 0.14 s against 0.10 s of CPU).
        full = self._full_due(t0)
        targets, unreadable = self._targets(full)
        snap = snap_mod.read_namespaces(targets, all_netns=self.opts.scope.all_netns,
                                        unreadable=unreadable, roots=self.roots,
                                        states=None if full else BETWEEN_STATES,
                                        diag_sockets=self.diag_sockets)
        now = time.monotonic()
        if full:
            self._last_full = t0
            self.full_dumps += 1
        if self.session is not None:
            self.session.check()
            time.sleep(0.02)  # trace_pipe wakes its reader per event; let it catch up
            # Only what is queued now: on a busy host the reader thread
            # appends faster than this loop could ever empty the queue.
            # Events after ``now`` wait in the tracker for the next sample.
            for _ in range(len(self.queue)):
                self.session.lost_in_pipe += self.pending.add(self.queue.popleft())
        parts = [(ns.netns.inode, ns.table) for ns in snap.namespaces]
        # only the events of port pairs this sample looks up become
        # StateEvents; the others wait as columns until one does or they
        # pass the tracker's horizon (most are other namespaces')
        if len(self.pending):
            self.tracker.add_events(self.pending.claim(self.tracker.wanted_ports(parts)))
        transitions = self.tracker.observe(parts, now,
                                           dumped_states=None if full else BETWEEN_STATES)
        self.pending.prune(now - self.tracker.event_horizon)
        # namespaces deleted since the last sample (not merely unreadable)
        seen = {ino for ino, _ in parts} | {ref.inode for ref, _ in snap.skipped if ref}
        gone = [ns for ns in self.tracker.namespaces if ns not in seen]
        for ns in gone:
            self.tracker.forget(ns)
        # a socket holds its namespace: close those of namespaces not read
        self._close_diag(keep={ino for ino, _ in parts})
        owners = self._owners(snap) if self.opts.owners else {}
        owner_keys = self._owner_keys(owners)
        counts, kernel, live, labels = [], [], {}, {}
        total_between = 0
        for ns in snap.namespaces:
            ino = ns.netns.inode
            labels[ino] = ns.netns.label()
            counts += series.counts(ino, ns.table, owner_keys)
            if not full and ns.kernel.sockstat is not None:
                est = series.established_between(ns.table, ns.kernel.sockstat.inuse)
                total_between += est
                if est:
                    counts.append(series.CountRow(ino, int(TcpState.ESTABLISHED), "", est))
            kernel += series.kernel_values(ino, ns.kernel)
            if full:  # the count needs ESTABLISHED, which a dump between full ones leaves out
                kernel += series.busiest_remote_port(ino, ns.table, ns.kernel)
            st = self.tracker.live(ino)
            if st is not None:
                live[ino] = (st.cols["cookie"], st.cols["state"], st.since + offset, st.code,
                             st.at_least)
        events = [t for t in transitions
                  if (t.old in EVENT_STATES or t.new in EVENT_STATES)]
        if len(events) > MAX_EVENTS_PER_SAMPLE:
            self.events_dropped += len(events) - MAX_EVENTS_PER_SAMPLE
            events = events[:MAX_EVENTS_PER_SAMPLE]
        events = [_wall(e, offset) for e in events]
        lost = self.session.lost() if self.session is not None else 0
        used_owners = [(k, *self.owner_info[k]) for k in {c.owner for c in counts}
                       if k in self.owner_info]
        store.write_sample(SampleInfo(now + offset, self.opts.interval,
                                      snap.total + total_between, lost,
                                      self.age_source), counts, kernel, events, used_owners,
                           live, labels, gone)
        self.samples += 1
        self.sample_cost.append(time.process_time() - cpu0)
        self.last_duration = time.monotonic() - t0

    def _targets(self, full: bool) -> tuple[list, int]:
        """The namespaces in scope (snapshot.resolve), found again at every
        full dump and reused in between while each one's path still opens
        the namespace it did (a name given to another namespace, a process
        gone: found again at once). Resolving scans every process's
        /proc/PID/ns/net and cgroup (1.9-2.1 ms of CPU a sample with 110
        processes, more on a real host); a namespace created since the last
        full dump is read from the next one on (docs/watch.md). The owner
        walk finds the processes afresh (:meth:`_walk`)."""
        if not full and self._scope is not None \
                and all(_opens(info.path, info.inode) for info in self._scope[0]):
            return self._scope
        self._scope = snap_mod.resolve(self.opts.scope, self.roots)
        return self._scope

    def _close_diag(self, keep) -> None:
        for ino in [i for i in self.diag_sockets if i not in keep]:
            self.diag_sockets.pop(ino).close()

    def _full_due(self, now: float) -> bool:
        """Whether this sample dumps ESTABLISHED too: the first one, every
        ``full_every`` seconds, every one without the tracepoint, and the
        one after events were lost (ESTABLISHED sockets that left their
        state are then only seen by sampling; a full dump re-syncs)."""
        if self.session is None or self.opts.full_every <= 0:
            return True
        lost = self.session.lost()
        lost_now, self._lost_seen = lost > self._lost_seen, lost
        # 1% slack: the loop's schedule jitters around multiples of the interval
        return lost_now or now - self._last_full >= self.opts.full_every - 0.01 * self.opts.interval

    def _owner_keys(self, owners: dict) -> series.OwnerKeys:
        """The owner map as columns, rebuilt only when it changed (a steady
        host keeps the same lingering sockets from one sample to the next)."""
        version = (id(owners), self._owner_version, len(owners))
        if self._keys_version != version:
            self._keys, self._keys_version = series.OwnerKeys.of_keys(owners), version
        return self._keys

    def _owners(self, snap) -> dict:
        """Owner keys of the lingering sockets (series.first_keys), from a
        cache by inode.

        /proc/*/fd is walked only when new inodes appear, on a thread so a
        slow walk (4 us per open file: seconds on a host with a million
        fds, KERNEL-NOTES) never delays a sample, and never more often
        than five times its own cost apart (DESIGN.md: walk only for the
        inodes that matter)."""
        holders, found = [], []
        for ns in snap.namespaces:
            rows = ns.table.rows
            m = (rows["inode"] != 0) & _OWNED[rows["state"]]
            if m.any():
                found.append(rows["inode"][m])
                holders.append(ns)
        done = self._walk_result
        # A steady host holds the same lingering sockets, dumped in the same
        # order, sample after sample: nothing to add, drop or walk for then
        # (a set of 20k inodes built and compared twice: ~4 ms a sample).
        if (done is None and not self._owners_missing and self._owners_seen is not None
                and len(self._owners_seen) == len(found)
                and all(np.array_equal(a, b) for a, b in zip(self._owners_seen, found))):
            return self.owner_cache
        self._owners_seen = found
        wanted = set(np.concatenate(found).tolist()) if found else set()
        if done is not None:
            self._walk_result = None
            found_, info, asked = done
            self.owner_cache.update(series.first_keys(found_, asked))
            self._owner_version += 1
            self.owner_info.update(info)
        for gone in set(self.owner_cache) - wanted:
            del self.owner_cache[gone]
            self._owner_version += 1
        missing = self._owners_missing = wanted - set(self.owner_cache)
        now = time.monotonic()
        busy = self._walker is not None and self._walker.is_alive()
        if missing and not busy and now - self._last_walk >= 5 * self._walk_cost:
            self._last_walk = now
            self._walker = threading.Thread(target=self._walk, args=(missing, holders),
                                            daemon=True, name="tcplinger owners")
            self._walker.start()
        return self.owner_cache

    def _walk(self, inodes: set, holders: list) -> None:
        t0 = time.monotonic()
        try:
            # the processes of the namespaces now: a sample between full
            # dumps has those of the last full one (_targets)
            now = {info.inode: info for info in
                   snap_mod.resolve(self.opts.scope, self.roots)[0]}
            holders = [now.get(ns.netns.inode, ns) for ns in holders]
        except (OSError, LookupError):  # the namespace went (NetnsNotFound)
            pass
        try:
            found = OWNERS.find(inodes, holders, self.roots.proc).owners
        except OSError:
            found = {}
        info = {}
        first = {o[0].pid: o[0] for o in found.values() if o}
        for pid, owner in first.items():
            try:
                use = owners_mod.fd_usage(pid, self.roots.proc)
            except OSError:
                continue
            info[series.owner_key(owner)] = (pid, owner.comm, use.soft_limit, use.open_fds)
        self._walk_cost = time.monotonic() - t0
        self._walk_result = (found, info, inodes)


def _opens(path: str, inode: int) -> bool:
    """Whether ``path`` (a /run/netns name, /proc/PID/ns/net) is still the
    namespace ``inode``."""
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


def _wall(tr, offset):
    return replace(tr, t=tr.t + offset)


