#!/usr/bin/env python3
"""A node with many pods: N pod-like network namespaces on a private node,
and commands run among them (issue 15, item 5).

    python bench/podfarm.py [--pods 150] [--repeat 3] [--baseline DIR]

measures ``tcplinger report --all-netns`` (lines printed, wall clock, CPU)
with this tree's sources and, with ``--baseline``, another checkout's, in
the same rounds.  Results go to bench/results/podfarm-<UTC>.json.

From Python (tests/privileged/test_many_pods.py)::

    sys.path.insert(0, "bench")
    from podfarm import Spec, run
    result = run(Spec(pods=30, commands=[{"key": "text", "argv": [...]}]), workdir)

What a pod is
-------------
A network namespace ``tl-pod-<tag>-<i>`` (``ip netns add``, loopback up;
with ``named=False`` a namespace of its own made by ``unshare --net``, with
no name, as a container runtime makes them) with one process in it, ``python3 podapp.py`` started by ``ip netns exec``
(bench/podapp.py: a listener, 20 connections both ends held = 40
ESTABLISHED, 5 CLOSE_WAIT whose peer vanished).  The process is put in a
cgroup shaped as the kubelet's cgroupfs driver makes them,
``<prefix>/kubepods/besteffort/pod<UID>/<64-hex container id>`` (pids
hierarchy), and the container's OCI bundle ``config.json`` with containerd's
CRI annotations (pod ``shop/app-<i>-<hash>``, container ``app``, image) is
written where containerd keeps it, ``/run/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/``:
tcplinger names the namespace from those exactly as on a Kubernetes node
with containerd (collect/container.py, collect/runtimes.py).  ``quiet``
pods hold only the listener and the ESTABLISHED pairs.

The private node
----------------
Everything runs under ``unshare --pid --fork --mount-proc --mount --net``:
discovery (``/proc/*/ns/net``, ``/run/netns``) sees these pods and nothing
of the other jobs on the machine, the caller's namespace is a fresh empty
one, and ``/run`` is a private tmpfs (the pods' bind mounts and the
containerd state vanish with the mount namespace).  When the PID
namespace's first process ends, the kernel kills every process in it, also
on SIGKILL.  The cgroup directories are the one thing outside: the farm
removes them, and :func:`run` removes what is left under the prefix.

Each command runs after the pods are built, with stdout and stderr to files
under ``workdir``; ``ss -N POD -tanH`` per pod is the oracle.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = os.path.realpath(sys.executable)
PODAPP = HERE / "podapp.py"
CGROUP_V1_PIDS = Path("/sys/fs/cgroup/pids")
CONTAINERD_TASKS = Path("/run/containerd/io.containerd.runtime.v2.task/k8s.io")
INNER = "--inner-spec"
sys.path.insert(0, str(HERE))
from compare import loadavg, write_results  # noqa: E402  (bench/ is not a package)


@dataclass
class Spec:
    """What to build and what to run (JSON between the caller and the farm)."""

    pods: int
    quiet: int = 0  # extra pods without CLOSE_WAIT
    established: int = 20  # pairs per pod
    close_wait: int = 5
    #: per pod index (a string: JSON keys), what differs: {"close_wait": N, "comm": NAME}
    variants: dict = field(default_factory=dict)
    #: False: no ``ip netns`` name; the namespace is its process's own
    #: (``unshare --net``), found only through /proc as a container's
    named: bool = True
    commands: list = field(default_factory=list)  # {"key", "argv", "env"?}
    repeat: int = 1
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    cgroup_prefix: str = ""  # under CGROUP_V1_PIDS; set by run()
    timeout: float = 600.0


# ---- inside the private node --------------------------------------------------

def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


def _bundle(pod: dict) -> dict:
    """containerd's OCI bundle config.json, the annotations tcplinger reads
    (containerd pkg/cri/annotations)."""
    return {"ociVersion": "1.0.2", "annotations": {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": "app",
        "io.kubernetes.cri.sandbox-id": pod["sandbox"],
        "io.kubernetes.cri.sandbox-name": pod["pod"].split("/")[1],
        "io.kubernetes.cri.sandbox-namespace": "shop",
        "io.kubernetes.cri.sandbox-uid": pod["uid"],
        "io.kubernetes.cri.image-name": "registry.example/shop/app:1.4"}}


def _build(spec: Spec) -> tuple[list[dict], list[subprocess.Popen]]:
    os.makedirs("/run/netns", exist_ok=True)
    pods, procs = [], []
    for i in range(spec.pods + spec.quiet):
        quiet = i >= spec.pods
        name = f"tl-pod-{spec.tag}-{i:03d}"
        pod = {"name": name, "quiet": quiet, "uid": str(uuid.uuid4()),
               "cid": secrets.token_hex(32), "sandbox": secrets.token_hex(32),
               "pod": f"shop/app-{i:03d}-{secrets.token_hex(3)}"}
        variant = spec.variants.get(str(i), {})
        close_wait = 0 if quiet else variant.get("close_wait", spec.close_wait)
        app = [PYTHON, str(PODAPP), "--established", str(spec.established),
               "--close-wait", str(close_wait)]
        if variant.get("comm"):
            app += ["--comm", variant["comm"]]
        if spec.named:
            _sh("ip", "netns", "add", name)
            _sh("ip", "-n", name, "link", "set", "lo", "up")
            argv = ["ip", "netns", "exec", name, *app]
        else:  # a namespace only its process holds, as a container runtime's
            argv = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"',
                    "sh", *app]
        # `ip netns exec`, unshare and sh's exec all exec in place: the Popen
        # pid is podapp's
        procs.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True))
        cg = CGROUP_V1_PIDS / spec.cgroup_prefix / "kubepods" / "besteffort" / \
            f"pod{pod['uid']}" / pod["cid"]
        cg.mkdir(parents=True)
        (cg / "cgroup.procs").write_text(f"{procs[-1].pid}\n")
        bundle = CONTAINERD_TASKS / pod["cid"]
        bundle.mkdir(parents=True)
        (bundle / "config.json").write_text(json.dumps(_bundle(pod)))
        pods.append(pod)
    for pod, proc in zip(pods, procs):
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"podapp in {pod['name']} did not come up")
        report = json.loads(line)
        assert report["pid"] == proc.pid, (report, proc.pid)
        pod["pid"], pod["expected"] = proc.pid, report["states"]
        pod["inode"] = os.stat(f"/proc/{proc.pid}/ns/net").st_ino
        if not spec.named:
            pod["name"] = None
    return pods, procs


def _ss(pods: list[dict]) -> None:
    """Each pod's state counts and owner pids by ``ss -tanpH``."""
    for pod in pods:
        where = ["ss", "-N", pod["name"]] if pod["name"] else \
            ["nsenter", f"--net=/proc/{pod['pid']}/ns/net", "ss"]
        out = subprocess.run([*where, "-tanpH"], capture_output=True, text=True,
                             check=True).stdout
        counts: dict = {}
        pids: set = set()
        for line in out.splitlines():
            counts[line.split()[0]] = counts.get(line.split()[0], 0) + 1
            pids.update(int(p) for p in _pids(line))
        pod["ss"], pod["ss_pids"] = counts, sorted(pids)


def _pids(line: str) -> list[str]:
    """pids of ss -p's ``users:(("python3",pid=123,fd=4),...)``."""
    return [part.split(",")[0] for part in line.split("pid=")[1:]]


def _run_commands(spec: Spec, workdir: Path) -> list[dict]:
    runs = []
    for r in range(spec.repeat):
        for c in spec.commands:
            stem = c["key"].replace("/", "-") + ("" if spec.repeat == 1 else f".{r}")
            out, err = workdir / f"{stem}.out", workdir / f"{stem}.err"
            env = dict(os.environ, **c.get("env", {}))
            load = loadavg()[0]
            with open(out, "wb") as fo, open(err, "wb") as fe:
                t0 = time.perf_counter()
                proc = subprocess.Popen(c["argv"], stdout=fo, stderr=fe, env=env,
                                        stdin=subprocess.DEVNULL)
                _pid, status, ru = os.wait4(proc.pid, 0)
                wall = time.perf_counter() - t0
            with open(out, "rb") as fo:
                lines = sum(1 for _ in fo)
            runs.append({"key": c["key"], "round": r, "argv": c["argv"],
                         "code": os.waitstatus_to_exitcode(status), "wall_s": round(wall, 3),
                         "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
                         "loadavg_1m": load, "lines": lines, "out": str(out), "err": str(err)})
    return runs


def _teardown(spec: Spec, pods: list[dict], procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.stdin:
            proc.stdin.close()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pod in pods:
        if pod["name"]:
            subprocess.run(["ip", "netns", "del", pod["name"]], capture_output=True)
    remove_cgroups(spec.cgroup_prefix)


def inner(spec: Spec, workdir: Path) -> int:
    # /run private to this mount namespace: the pods' names, containerd's state
    _sh("mount", "-t", "tmpfs", "tl-podfarm", "/run")
    _sh("ip", "link", "set", "lo", "up")
    pods, procs = [], []
    try:
        t0 = time.perf_counter()
        pods, procs = _build(spec)
        built = time.perf_counter() - t0
        _ss(pods)
        runs = _run_commands(spec, workdir)
        _ss_after = [dict(p["ss"]) for p in pods]
        _ss(pods)
        changed = [p["pod"] for p, before in zip(pods, _ss_after) if p["ss"] != before]
        doc = {"build_s": round(built, 2), "pods": pods, "runs": runs,
               "changed_during_runs": changed}
        (workdir / "farm.json").write_text(json.dumps(doc, indent=1))
        return 0
    finally:
        _teardown(spec, pods, procs)


def remove_cgroups(prefix: str) -> None:
    """rmdir the farm's cgroups, deepest first (a cgroup with a process in
    it stays; the PID namespace's end has killed them by then)."""
    if not prefix or "/" in prefix:
        return
    top = CGROUP_V1_PIDS / prefix
    if not top.is_dir():
        return
    dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    for d in dirs + [top]:
        try:
            d.rmdir()
        except OSError:
            pass


# ---- the caller's side ---------------------------------------------------------

def run(spec: Spec, workdir: Path) -> dict:
    """Build the farm on a private node, run ``spec.commands``, tear it all
    down; the farm's JSON (pods with their ss counts, runs)."""
    spec.cgroup_prefix = spec.cgroup_prefix or f"tl-podfarm-{os.getpid()}-{spec.tag}"
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    argv = ["unshare", "--pid", "--fork", "--mount-proc", "--mount", "--propagation",
            "private", "--net", PYTHON, str(Path(__file__).resolve()), INNER,
            json.dumps(asdict(spec)), str(workdir)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=spec.timeout)
    finally:
        remove_cgroups(spec.cgroup_prefix)
    if proc.returncode != 0:
        raise RuntimeError(f"podfarm exited {proc.returncode}: {proc.stderr[-3000:]}")
    return json.loads((workdir / "farm.json").read_text())


def bench(args) -> dict:
    trees = {"this": str(HERE.parent / "src")}
    if args.baseline:
        trees["baseline"] = str(args.baseline.resolve() / "src")
    commands = [{"key": f"report/{tree}", "argv": [PYTHON, "-m", "tcplinger", "report",
                                                   "--all-netns"],
                 "env": {"PYTHONPATH": src, "LANG": "C", "COLUMNS": "100"}}
                for tree, src in trees.items()]
    spec = Spec(pods=args.pods, commands=commands, repeat=args.repeat + 1)
    started = dt.datetime.now(dt.timezone.utc)
    import tempfile
    with tempfile.TemporaryDirectory(prefix="tl-podfarm-") as tmp:
        doc = run(spec, Path(tmp))
    rows = []
    for c in commands:
        mine = [r for r in doc["runs"] if r["key"] == c["key"] and r["round"] > 0]  # 0: warm-up
        bad = [r for r in mine if r["code"] != 0]
        if bad:
            raise SystemExit(f"{c['key']}: exit {bad[0]['code']}")
        rows.append({"key": c["key"], "lines": mine[0]["lines"],
                     "wall_median_s": statistics.median(r["wall_s"] for r in mine),
                     "cpu_median_s": statistics.median(r["cpu_s"] for r in mine),
                     "wall_s": [r["wall_s"] for r in mine],
                     "loadavg_1m": [r["loadavg_1m"] for r in mine]})
    return {"started": started.isoformat(timespec="seconds"), "argv": sys.argv,
            "pods": args.pods, "repeat": args.repeat, "build_s": doc["build_s"],
            "ss_first_pod": doc["pods"][0]["ss"], "trees": trees, "rows": rows}


def render(doc: dict) -> str:
    out = [f"Run {doc['started']}: `{' '.join(doc['argv'])}`; {doc['pods']} pods "
           f"(ss of the first: {doc['ss_first_pod']}); median of {doc['repeat']}", "",
           "| command | lines | wall s | CPU s | runs (wall s) | load 1m |",
           "|---|---:|---:|---:|---|---|"]
    for r in doc["rows"]:
        out.append(f"| {r['key']} | {r['lines']} | {r['wall_median_s']:.2f} "
                   f"| {r['cpu_median_s']:.2f} | {', '.join(f'{w:.2f}' for w in r['wall_s'])} "
                   f"| {', '.join(f'{x:.1f}' for x in r['loadavg_1m'])} |")
    return "\n".join(out)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == INNER:
        fields = json.loads(argv[1])
        return inner(Spec(**fields), Path(argv[2]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", type=int, default=150)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="another checkout, measured alongside")
    ap.add_argument("--render", type=Path, metavar="JSON", help="print a results file's table")
    args = ap.parse_args(argv)
    if args.render:
        print(render(json.loads(args.render.read_text())))
        return 0
    if os.geteuid() != 0:
        ap.error("needs root (network namespaces, cgroups)")
    write_results("podfarm", bench(args), render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
