"""`ls --json --owners` at 1M against `ss -tan`, several trees in one run:

    /work/bin/bench python3 bench/ls_owners.py REPEAT new=CHECKOUT json-only=CHECKOUT before=CHECKOUT

One 1M population (bench/popgen.py); the RSS phases of `ls --json --owners`
of the first two trees (bench/rss_phases.py), then compare.measure over
each tree's commands, interleaved; the table printed (each tree's rows in
the order given, all labelled "(baseline)": they run with PYTHONPATH)."""
import json, os, subprocess, sys, time
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import popgen, compare
from compare import Command
trees = dict(a.split("=", 1) for a in sys.argv[2:])
tl = tuple(compare.tcplinger_argv())
def cmd(key, args, tree):
    return Command(f"{key}@{tree}", tl + args, None, trees[tree] + "/src")
commands = [Command("ss", ("ss", "-tan"))]
for tree in ("new", "json-only", "before"):
    commands.append(cmd("tl-ls-json-owners", ("ls", "--json", "--owners"), tree))
for tree in ("new", "before"):
    commands.append(cmd("tl-ls-json-close-wait-owners", ("ls", "--json", "--state", "close-wait", "--owners"), tree))
for tree in ("new", "json-only"):
    commands.append(cmd("tl-ls-close-wait-owners", ("ls", "--state", "close-wait", "--owners"), tree))
commands.append(cmd("tl-ls-json", ("ls", "--json"), "new"))
print("start", time.strftime("%H:%M:%SZ", time.gmtime()), "load", open("/proc/loadavg").read().strip(), flush=True)
compare.compile_sources(*[t + "/src" for t in trees.values()])
with popgen.Population(1_000_000, popgen.DEFAULT_MIX) as pop:
    print(f"built in {pop.build_seconds:.1f} s: {popgen._format_counts(pop.expected())}", flush=True)
    for tree in ("new", "json-only"):
        print(f"== phases {tree}; load {open('/proc/loadavg').read().split()[0]}", flush=True)
        env = dict(os.environ, PYTHONPATH=trees[tree] + "/src")
        subprocess.run(pop.exec_argv(sys.executable, os.path.join(HERE, "rss_phases.py"), "ls", "--json", "--owners"),
                       env=env, stdout=subprocess.DEVNULL)
    results = compare.measure(pop, commands, int(sys.argv[1]), 1, 900)
    observed = dict(popgen.ss_counts(pop.netns))
print(compare.format_table(results))
loads = [x for r in results for x in r.loadavg_1m]
print(f"load {min(loads):.1f}-{max(loads):.1f}; observed after: {observed}")
os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
out = os.path.join(HERE, "results", f"ls-owners-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json")
json.dump([r.__dict__ for r in results], open(out, "w"), indent=1)
print("end", time.strftime("%H:%M:%SZ", time.gmtime()), out, flush=True)
