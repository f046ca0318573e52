"""How a finding names a process: its command line shortened to one line
(an interpreter's script names the program), comm and pid, and a list of
them with how many more."""

from __future__ import annotations

import os
from functools import lru_cache

from ..model.socket import Owner
from .finding import OwnerRef, Text

#: Characters of a command line shown next to pid and comm.
CMD_WIDTH = 60
#: Interpreters whose script, not the interpreter, names the program.
INTERPRETERS = ("python", "python2", "python3", "node", "ruby", "perl", "php", "bash", "sh",
                "java")


@lru_cache(maxsize=4096)  # a diagnosis of 150 pods asked 3,000 times for 150 processes
def short_command(cmdline: str, comm: str = "", width: int = CMD_WIDTH) -> str:
    """A command line shortened for one line: the program's base name, an
    interpreter's script's base name, the rest cut at ``width``.

    >>> short_command("/usr/bin/python3 /srv/app/leaky_backend.py 9000")
    'python3 leaky_backend.py 9000'
    >>> short_command("nginx: worker process")
    'nginx: worker process'
    >>> short_command("", "apache2")
    'apache2'
    >>> short_command("/usr/sbin/apache2 -f /tmp/tl-real-x/apache/httpd.conf -DFOREGROUND", width=40)
    'apache2 -f /tmp/tl-real-x/apache/httpd.…'
    """
    words = cmdline.split()
    if not words:
        return comm
    words[0] = os.path.basename(words[0]) or words[0]
    base = words[0].rstrip("0123456789.")
    if base in INTERPRETERS or words[0] in INTERPRETERS:
        for k in range(1, len(words)):
            if not words[k].startswith("-"):
                if "/" in words[k]:
                    words[k] = os.path.basename(words[k])
                break
    text = " ".join(words)
    return text if len(text) <= width else text[:width - 1] + "…"


def ref(owner: Owner, basis: str = "owner", where: str = "",
        per_s: float | None = None, processes: int = 1) -> OwnerRef:
    """The :class:`OwnerRef` a finding shows for ``owner``."""
    return OwnerRef(owner.pid, owner.comm, short_command(owner.cmdline, owner.comm), basis, where,
                    per_s, processes)


def who(pid: int, comm: str, command: str = "", processes: int = 1) -> Text:
    """A process as a finding names it: comm and pid, and the shortened
    command line when it says more than comm (``python3 (pid 7:
    python3 leaky_backend.py 9000)``, but ``java (pid 42)``); several
    processes of one command line by one of them (``curl (12 processes,
    e.g. pid 7: curl -s http://…)``)."""
    if processes > 1:
        return Text("rule.common.who_many", {"comm": comm, "pid": pid, "n": processes,
                                             "cmd": command or comm})
    if command and command != comm:
        return Text("rule.common.who", {"comm": comm, "pid": pid, "cmd": command})
    return Text("rule.common.who_bare", {"comm": comm, "pid": pid})


def who_text(refs, limit: int = 3) -> Text | tuple[Text, ...]:
    """The first ``limit`` of ``refs`` (OwnerRef) and how many more: a
    message field (a tuple of Text is a list, finding.Text.render)."""
    refs = list(refs)
    if not refs:
        return Text("rule.common.who_unknown")
    items = tuple(who(r.pid, r.comm, r.command, r.processes) for r in refs[:limit])
    more = len(refs) - limit
    if more > 0:
        return Text("rule.common.who_more", {"list": items, "more": more})
    return items
