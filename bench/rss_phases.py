"""RSS by phase of ``tcplinger ls ARGS`` in this process, run inside a
population's namespace (bench/ls_owners.py): each wrapped step prints
VmRSS after it and VmHWM during it (the high-water mark reset before it
through /proc/self/clear_refs, which resets ru_maxrss too: the "maxrss"
line is the last step's, not the run's).

    ip netns exec NETNS python3 bench/rss_phases.py ls --json --owners >/dev/null
"""
import sys, time, re, os, functools, resource
T0 = time.process_time()

def mem():
    s = open('/proc/self/status').read()
    return int(re.search(r'VmRSS:\s+(\d+)', s).group(1)) // 1024, int(re.search(r'VmHWM:\s+(\d+)', s).group(1)) // 1024

def reset():
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')

def log(tag):
    r, h = mem()
    print(f"{tag:28s} rss {r:5d} MB  peak-during {h:5d} MB  cpu {time.process_time() - T0:6.2f} s", file=sys.stderr, flush=True)

def wrap(obj, name, tag, fresh=True):
    f = getattr(obj, name)
    @functools.wraps(f)
    def g(*a, **k):
        if fresh:
            reset()
        try:
            return f(*a, **k)
        finally:
            log(tag)
    setattr(obj, name, g)

from tcplinger.cli import main as cli_main
from tcplinger.cli.commands import ls
from tcplinger.app import view as view_mod
from tcplinger.collect import owners, fdwalk
from tcplinger.export import socket_array
log("imports")
wrap(ls, "take", "take (dump)")
wrap(fdwalk.Walk, "run", "  walk.run")
wrap(owners, "_columns", "  owner columns")
wrap(owners, "find_owners", " find_owners", False)
wrap(view_mod.View, "attach_owners", "attach_owners", False)
wrap(socket_array.SocketArray, "add", "json: SocketArray.add")
reset()
try:
    rc = cli_main.main(sys.argv[1:])
except SystemExit as e:
    rc = e.code
log("end")
print("maxrss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, "MB", file=sys.stderr)
