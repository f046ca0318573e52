"""Record the parts of /proc/PID that tcplinger.collect.netns/owners read.

    python tests/data/proc_pids/record.py OUT_DIR [--self PID] PID...

For each PID writes OUT_DIR/PID/{comm,cmdline,status,cgroup,limits} as
files and OUT_DIR/PID/ns/net and OUT_DIR/PID/fd/N as symlinks whose target
is the text the kernel's magic link reads ("net:[4026531833]",
"socket:[123]", "pipe:[45]", "/dev/null").  git stores such dangling
symlinks as they are, and os.readlink() on them returns what it returns on
the real /proc, so the readers run unchanged on the copy.  ``--self PID``
adds the ``self`` link procfs resolves for its reader.  Must run as root to
read other processes' links.
"""

from __future__ import annotations

import os
import sys

FILES = ("comm", "cmdline", "status", "cgroup", "limits")


def record(out_dir: str, pid: int) -> None:
    src, dst = f"/proc/{pid}", os.path.join(out_dir, str(pid))
    os.makedirs(os.path.join(dst, "ns"), exist_ok=True)
    os.makedirs(os.path.join(dst, "fd"), exist_ok=True)
    for name in FILES:
        with open(f"{src}/{name}", "rb") as f:
            data = f.read()
        with open(os.path.join(dst, name), "wb") as f:
            f.write(data)
    os.symlink(os.readlink(f"{src}/ns/net"), os.path.join(dst, "ns", "net"))
    for fd in os.listdir(f"{src}/fd"):
        try:
            target = os.readlink(f"{src}/fd/{fd}")
        except FileNotFoundError:
            continue
        os.symlink(target, os.path.join(dst, "fd", fd))


def main(argv: list[str]) -> None:
    out_dir, rest = argv[0], argv[1:]
    if rest[:1] == ["--self"]:
        os.makedirs(out_dir, exist_ok=True)
        os.symlink(rest[1], os.path.join(out_dir, "self"))
        rest = rest[2:]
    for pid in rest:
        record(out_dir, int(pid))


if __name__ == "__main__":
    main(sys.argv[1:])
