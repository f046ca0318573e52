#!/usr/bin/env python3
"""Time tcplinger against ss, netstat and psutil on generated populations.

    python bench/compare.py --sockets 10000,100000,1000000 [--repeat 3]

For each size one population is built (bench/popgen.py) and every command
runs inside its namespace as ``ip netns exec NETNS CMD`` with stdin and
stdout on /dev/null:

* wall clock: from spawning ``ip`` to reaping it (so ~ms of ``ip netns
  exec`` itself is included everywhere; the ``ip netns exec true`` row shows
  how much);
* CPU: user + system time of the command and its reaped descendants
  (``wait4()`` rusage), which other load on the machine disturbs less than
  the wall clock;
* peak memory: GNU time's ``%M`` (``ru_maxrss`` of its child), i.e. the
  peak RSS of the largest single process of the command's tree (Linux
  semantics of RUSAGE_CHILDREN, getrusage(2)) - not the sum over processes;
  it is never below the ~3 MB of the ``ip`` wrapper that exec()s the
  command.  The ``time`` process adds ~1 ms to the wall clock.

One unmeasured warm-up run per command (``--warmup``) fills the page cache
and tells whether the command exists: a missing program, an unimportable
tcplinger or an argparse usage error (exit 2) make the row "n/a"; any other
failure is reported as "error" with its stderr in the JSON.  Then
``--repeat`` rounds run every command once per round (interleaved, so slow
drifts in background load hit all commands alike); the table shows medians
and each command's ratio to ``ss -tan``.  ``ss -tanp``, ``netstat -tanp``
and psutil are skipped above 100k sockets: their cost grows quadratically
(minutes at 1M).

Results go to bench/results/<UTC timestamp>.json (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import popgen  # noqa: E402  (bench/ is not a package)
from timed_run import classify_failure, compile_sources, run_once, tcplinger_src  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
QUADRATIC_LIMIT = 100_000


def tcplinger_argv() -> list[str]:
    """``python -m tcplinger`` with this interpreter's real path: not a
    pyenv shim (a bash script that adds ~0.3 s to every start), not a
    console script (which may belong to another installation)."""
    return [os.path.realpath(sys.executable), "-m", "tcplinger"]


@dataclass(frozen=True)
class Command:
    key: str  # stable id for --commands and the JSON
    argv: tuple[str, ...]
    max_sockets: int | None = None  # skipped above this population size
    #: PYTHONPATH for this command (--baseline: another checkout's src/)
    pythonpath: str | None = None

    @property
    def label(self) -> str:
        if self.pythonpath:
            return self._label() + " (baseline)"
        return self._label()

    def _label(self) -> str:
        if self.key == "psutil":
            return "psutil.net_connections('tcp')"
        if self.argv and self.argv[0].endswith("/tcplinger"):
            return " ".join(("tcplinger",) + self.argv[1:])
        if len(self.argv) > 2 and self.argv[1] == "-m" and "python" in Path(self.argv[0]).name:
            return " ".join(self.argv[2:])
        return " ".join(self.argv) if self.key != "netns-exec" else "ip netns exec (true)"


def default_commands() -> list[Command]:
    tl = tuple(tcplinger_argv())
    return [
        Command("netns-exec", ("true",)),
        Command("ss", ("ss", "-tan")),
        Command("ss-p", ("ss", "-tanp"), QUADRATIC_LIMIT),
        Command("netstat-p", ("netstat", "-tanp"), QUADRATIC_LIMIT),
        Command("psutil", (sys.executable, "-c", "import psutil; psutil.net_connections('tcp')"),
                QUADRATIC_LIMIT),
        Command("tl-stats", tl + ("stats",)),
        Command("tl-ls-json", tl + ("ls", "--json")),
        Command("tl-ls-close-wait-owners", tl + ("ls", "--state", "close-wait", "--owners")),
        # the same as JSON, and every socket's owners as JSON (a walk of
        # every inode of the namespace)
        Command("tl-ls-json-close-wait-owners",
                tl + ("ls", "--json", "--state", "close-wait", "--owners")),
        Command("tl-ls-json-owners", tl + ("ls", "--json", "--owners")),
        Command("tl-report", tl),
        # the walk forced: issue 16's 10k/100k targets are with owners,
        # which the automatic mode leaves out while the host holds
        # >= 100,000 open files (another job's population, say)
        # (the sizes ss -tanp runs at: these are its peers)
        Command("tl-stats-owners", tl + ("stats", "--owners"), QUADRATIC_LIMIT),
        Command("tl-report-owners", tl + ("report", "--owners"), QUADRATIC_LIMIT),
    ]


def with_baseline(commands: list[Command], checkout: Path) -> list[Command]:
    """Every tcplinger command twice: this checkout's and ``checkout``'s
    (``PYTHONPATH=checkout/src``), each baseline right after its own, so
    that both meet the same moment of the machine's load."""
    src = str(checkout.resolve() / "src")
    out = []
    for c in commands:
        out.append(c)
        if c.key.startswith("tl-"):
            out.append(Command(c.key + "@base", c.argv, c.max_sockets, src))
    return out


@dataclass
class Result:
    key: str
    label: str
    argv: list[str]
    status: str = "ok"  # ok | n/a | error | skipped
    reason: str = ""
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    maxrss_mb: list[float] = field(default_factory=list)
    host_open_files: list[int] = field(default_factory=list)  # before each run: /proc/*/fd walkers pay for all
    loadavg_1m: list[float] = field(default_factory=list)  # before each run: other jobs on the machine
    wall_median_s: float | None = None
    cpu_median_s: float | None = None
    maxrss_median_mb: float | None = None
    ratio_to_ss: float | None = None


def measure(pop: popgen.Population, commands: list[Command], repeat: int, warmup: int,
            timeout: float, log=print) -> list[Result]:
    n = pop.plan.sockets
    results = {c.key: Result(c.key, c.label, pop.exec_argv(*c.argv)) for c in commands}
    active = []
    for c in commands:
        r = results[c.key]
        if c.max_sockets is not None and n > c.max_sockets:
            r.status, r.reason = "skipped", f"quadratic: only up to {c.max_sockets} sockets"
            continue
        if shutil.which(c.argv[0]) is None:
            r.status, r.reason = "n/a", f"{c.argv[0]} not found"
            continue
        for _ in range(warmup):
            run = run_once(r.argv, timeout, c.pythonpath)
            if run.returncode != 0:
                r.status = classify_failure(run)
                r.reason = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit {run.returncode}"
                log(f"  {c.label}: {r.status} ({r.reason})")
                break
        else:
            active.append(c)
    for i in range(repeat):
        for c in active:
            r = results[c.key]
            if r.status != "ok":
                continue
            open_files = host_open_files()
            load = loadavg()[0]
            run = run_once(r.argv, timeout, c.pythonpath)
            if run.returncode != 0:
                r.status, r.reason = "error", run.stderr.strip()[-500:] or f"exit {run.returncode}"
                log(f"  {c.label}: error in round {i + 1}: {r.reason}")
                continue
            r.wall_s.append(run.wall_s)
            r.cpu_s.append(run.cpu_s)
            r.maxrss_mb.append(run.maxrss_mb)
            r.host_open_files.append(open_files)
            r.loadavg_1m.append(load)
            log(f"  round {i + 1}/{repeat} {c.label}: {run.wall_s:.3f} s, "
                f"{run.cpu_s:.3f} s CPU, {run.maxrss_mb:.1f} MB (load {load:.1f})")
    for r in results.values():
        if r.status == "ok" and r.wall_s:
            r.wall_median_s = statistics.median(r.wall_s)
            r.cpu_median_s = statistics.median(r.cpu_s)
            r.maxrss_median_mb = statistics.median(r.maxrss_mb)
    ss = results.get("ss")
    if ss and ss.wall_median_s:
        for r in results.values():
            if r.wall_median_s is not None:
                r.ratio_to_ss = r.wall_median_s / ss.wall_median_s
    return list(results.values())


def owner_modes(pop: popgen.Population, timeout: float = 600) -> dict:
    """Whether ``stats`` and the report looked up owners by themselves (they
    walk /proc/*/fd only below files.AUTO_OWNERS_MAX_FILES open files on the
    host, or inside a namespace that is not the host's): one unmeasured
    ``--json`` run of each, read back.  ``ls --owners`` always walks."""
    out = {}
    tl = tcplinger_argv()
    for key, args in (("tl-stats", ("stats", "--json")), ("tl-report", ("report", "--json"))):
        try:
            proc = subprocess.run(pop.exec_argv(*tl, *args), capture_output=True, text=True,
                                  timeout=timeout)
            doc = json.loads(proc.stdout)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            out[key] = {"mode": "unknown", "why": str(exc)[:200]}
            continue
        skipped = doc.get("owners_skipped_open_files")
        out[key] = ({"mode": "skipped", "host_open_files": skipped} if skipped
                    else {"mode": "walked" if doc.get("owners_resolved") else "not needed"})
    return out


def format_table(results: list[Result]) -> str:
    """Markdown table of one population's results."""
    rows = ["| command | wall s (median) | × ss -tan | CPU s | peak RSS MB | runs |",
            "|---|---:|---:|---:|---:|---|"]
    for r in results:
        if r.status != "ok":
            rows.append(f"| `{r.label}` | {r.status} | | | | {r.reason[:60]} |")
            continue
        runs = ", ".join(f"{w:.3f}" for w in r.wall_s)
        ratio = f"{r.ratio_to_ss:.2f}" if r.ratio_to_ss is not None else ""
        rows.append(f"| `{r.label}` | {r.wall_median_s:.3f} | {ratio} | {r.cpu_median_s:.3f} "
                    f"| {r.maxrss_median_mb:.1f} | {runs} |")
    return "\n".join(rows)


def render(report: dict) -> str:
    """Markdown for docs/performance.md from a results JSON."""
    m = report["machine"]
    out = [f"Run {report['started']}: `{' '.join(report['argv'])}`  ",
           f"{m['cpus']} × {m['cpu']}, {m['mem_gb']} GB, Linux {m['kernel']}, Python {m['python']}, "
           f"{m['ss']}, {m['netstat']}, psutil {m['psutil']}; mix `{report['mix']}`, "
           f"median of {report['repeat']} after {report['warmup']} warm-up.", ""]
    for p in report["populations"]:
        hb = p["host_before"]
        cpu = f" ({p['build_cpu_seconds']:.1f} CPU-s)" if "build_cpu_seconds" in p else ""
        out += [f"**{p['sockets']:,} sockets** - built in {p['build_seconds']:.1f} s{cpu}, "
                f"{p['holders']} holders; "
                f"load average {hb['loadavg'][0]:.1f} -> {p['host_after']['loadavg'][0]:.1f}; "
                f"host-wide {hb['open_files']:,} open files, {hb['tcp_alloc_all_netns']:,} TCP sockets "
                f"before the build", ""]
        results = [Result(**r) for r in p["results"]]
        out.append(format_table(results))
        seen = [n for r in results for n in r.host_open_files]
        if seen:
            out.append(f"\nhost-wide open files during the runs: {min(seen):,} - {max(seen):,}")
        loads = [x for r in results for x in r.loadavg_1m]
        if loads:
            out.append(f"load average (1 min) before the runs: {min(loads):.1f} - {max(loads):.1f}")
        for key, mode in p.get("owner_modes", {}).items():
            why = (f" ({mode['host_open_files']:,} open files on the host)"
                   if mode.get("host_open_files") else "")
            out.append(f"`{key}` owner lookup: {mode['mode']}{why}")
        out.append("")
    return "\n".join(out)


def _first_line(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def machine_info() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal:")))
    try:
        import psutil
        psutil_version = psutil.__version__
    except ImportError:
        psutil_version = None
    sysctl = {name: Path("/proc/sys/net/ipv4", name).read_text().strip()
              for name in ("tcp_max_tw_buckets", "tcp_max_orphans")}
    return {
        "kernel": platform.release(), "cpu": cpu, "cpus": os.cpu_count(),
        "mem_gb": round(mem_kb / 2**20, 1), "python": platform.python_version(),
        "ss": _first_line(["ss", "-V"]), "netstat": _first_line(["netstat", "-V"]),
        "psutil": psutil_version, "tcplinger_argv": tcplinger_argv(),
        "host_sysctls": sysctl,
        "rlimit_nofile": list(__import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE)),
    }


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def write_results(kind: str, doc: dict, render) -> Path:
    """``doc`` (its ``started``: ISO time, UTC) to
    bench/results/KIND-<start>.json; its tables printed (``render``)."""
    stamp = dt.datetime.fromisoformat(doc["started"]).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{kind}-{stamp}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(render(doc))
    print(f"\nresults: {path}")
    return path


def host_open_files() -> int:
    return int(Path("/proc/sys/fs/file-nr").read_text().split()[0])


def host_load() -> dict:
    """What else is on the host: every TCP socket of every namespace sits in
    the same established hash that `ss` and /proc/net/tcp walk, and every open
    file is one more /proc/*/fd entry for `ss -p`, `netstat -p` and psutil."""
    sockstat = Path("/proc/1/net/sockstat").read_text()  # init netns: "alloc" is host-wide
    alloc = int(re.search(r"^TCP:.*\balloc (\d+)", sockstat, re.M).group(1))
    tw = int(re.search(r"^TCP:.*\btw (\d+)", sockstat, re.M).group(1))
    return {"loadavg": loadavg(), "tcp_alloc_all_netns": alloc, "tcp_tw_init_netns": tw,
            "open_files": host_open_files()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sockets", default="10000,100000,1000000",
                    help="comma-separated population sizes (1M, 100k accepted)")
    ap.add_argument("--repeat", type=int, default=3, help="measured runs per command (median)")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured runs per command first")
    ap.add_argument("--mix", default=popgen.DEFAULT_MIX, help="population mix (see popgen.py)")
    keys = [c.key for c in default_commands()]
    ap.add_argument("--commands", help=f"comma-separated subset of: {','.join(keys)}")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per command run")
    ap.add_argument("--no-refresh", action="store_true", help="let TIME-WAIT sockets expire")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the JSON result")
    ap.add_argument("--quiet", "-q", action="store_true", help="no per-run lines")
    ap.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                    help="also run every tcplinger command from CHECKOUT/src (e.g. `git archive` "
                         "of an older commit), interleaved: a before/after in one run")
    ap.add_argument("--render", type=Path, metavar="JSON",
                    help="only print the markdown tables of a results file")
    args = ap.parse_args(argv)
    if args.render:
        print(render(json.loads(args.render.read_text())))
        return 0
    if os.geteuid() != 0:
        ap.error("needs root (network namespaces)")

    commands = default_commands()
    if args.commands:
        wanted = [k.strip() for k in args.commands.split(",") if k.strip()]
        unknown = set(wanted) - set(keys)
        if unknown:
            ap.error(f"unknown commands {sorted(unknown)}; choose from {keys}")
        commands = [c for c in commands if c.key in wanted]
    if args.baseline:
        commands = with_baseline(commands, args.baseline)
    sizes = [popgen.parse_count(s) for s in args.sockets.split(",") if s.strip()]
    log = (lambda *a: None) if args.quiet else print
    signal.signal(signal.SIGTERM, popgen._interrupt)

    started = dt.datetime.now(dt.timezone.utc)
    report = {"started": started.isoformat(timespec="seconds"), "argv": sys.argv,
              "mix": args.mix, "repeat": args.repeat, "warmup": args.warmup,
              "machine": machine_info(), "populations": []}
    trees = [tcplinger_src()] + ([str(args.baseline.resolve() / "src")] if args.baseline else [])
    compile_sources(*trees)  # as installed: .pyc files (timed_run.compile_sources)
    report["bytecode"] = "compiled"
    args.out.mkdir(parents=True, exist_ok=True)
    out_path = args.out / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"

    try:
        run_sizes(sizes, commands, args, report, out_path, log)
    except KeyboardInterrupt:
        print("interrupted")
        return 130
    print(f"\nresults: {out_path}")
    return 0


def run_sizes(sizes, commands, args, report, out_path, log) -> None:
    for n in sizes:
        print(f"\n== {n} sockets: building ({args.mix})", flush=True)
        entry = {"sockets": n, "host_before": host_load()}
        with popgen.Population(n, args.mix, refresh_time_wait=not args.no_refresh) as pop:
            entry.update(netns=pop.netns, holders=len(pop.plan.holders), notes=list(pop.plan.notes),
                         build_seconds=round(pop.build_seconds, 2),
                         build_cpu_seconds=round(pop.build_cpu_seconds, 2), expected=pop.expected())
            print(f"built in {pop.build_seconds:.1f} s ({pop.build_cpu_seconds:.1f} CPU-s) "
                  f"in {len(pop.plan.holders)} holders: "
                  f"{popgen._format_counts(pop.expected())}", flush=True)
            entry["observed_before"] = dict(popgen.ss_counts(pop.netns))
            if any(c.key in ("tl-stats", "tl-report") for c in commands):
                entry["owner_modes"] = owner_modes(pop)
                print(f"owner lookup by themselves: {entry['owner_modes']}", flush=True)
            results = measure(pop, commands, args.repeat, args.warmup, args.timeout, log)
            entry["observed_after"] = dict(popgen.ss_counts(pop.netns))
            entry["holder_problems"] = pop.problems()
            for problem in entry["holder_problems"]:
                print(f"WARNING: {problem}")
            for when in ("observed_before", "observed_after"):
                if entry[when] != entry["expected"]:
                    print(f"WARNING: {when.replace('_', ' ')} the runs, ss -tan counted "
                          f"{entry[when]}, not {entry['expected']}")
        entry["teardown_seconds"] = round(pop.teardown_seconds or 0, 2)
        entry["host_after"] = host_load()
        entry["results"] = [asdict(r) for r in results]
        report["populations"].append(entry)
        before, after = entry["host_before"], entry["host_after"]
        print(f"\n{n} sockets (load average {before['loadavg'][0]:.1f} -> {after['loadavg'][0]:.1f}; "
              f"host-wide {before['tcp_alloc_all_netns']} TCP sockets, "
              f"{before['open_files']} open files before building):\n{format_table(results)}", flush=True)
        out_path.write_text(json.dumps(report, indent=1) + "\n")  # after each size: partial results survive


if __name__ == "__main__":
    sys.exit(main())
