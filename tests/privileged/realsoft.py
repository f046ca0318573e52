"""Real servers and clients in a test's own namespace: Apache 2.4 (event
MPM), nginx (reverse proxy, with or without upstream keep-alive), ``ab``,
and the small Python programs in ``realapps/`` (a backend that never
closes, a client that never closes, a worker leaking ``requests.Session``).

Every program is started with :meth:`harness.Netns.spawn`, so the
namespace's ``close()`` ends it by pid and removes the namespace, also
when the test fails. Configuration, logs and pid files live in a private
temporary directory (removed by :func:`workdir`).

Ground truth helpers: :func:`tcpext` reads the namespace's TcpExt
counters (``/proc/net/netstat`` as seen from inside it), :func:`count_ss`
counts ``ss`` rows per state, :func:`wait_listen` waits until a port
listens. docs/real-software.md records what these measured.

How Debian's apache2 and nginx run from a private configuration is in
KERNEL-NOTES.md (shared/): ``apache2 -f DIR/httpd.conf -DFOREGROUND``
with LoadModule lines, its own PidFile, DefaultRuntimeDir, Mutex and
ErrorLog; ``nginx -c DIR/nginx.conf -g 'daemon off;'`` with every temp
path inside DIR.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from harness import Netns

HERE = Path(__file__).resolve().parent
APPS = HERE / "realapps"
APACHE_MODULES = Path("/usr/lib/apache2/modules")

#: Commands a real-software test needs (tests/run.sh installs them).
NEEDS_APACHE = ("apache2", "ab")
NEEDS_NGINX = ("nginx", "ab")


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A private directory for configs and logs, readable by the servers'
    unprivileged workers (Apache's children run as www-data)."""
    path = Path(tempfile.mkdtemp(prefix="tl-real-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def wait_listen(ns: Netns, port: int, timeout: float = 15.0) -> None:
    """Poll ``ss`` until something listens on ``port`` in ``ns``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = ns.run(["ss", "-Htln", f"sport = :{port}"]).stdout
        if out.strip():
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on :{port} in {ns.name} after {timeout}s")


def _stopper(proc: subprocess.Popen, sig_first: int = 15):
    """How Netns.end_processes ends a server: its pid, SIGTERM then SIGKILL
    (Apache and nginx end their own workers on SIGTERM)."""
    def stop():
        if proc.poll() is None:
            proc.send_signal(sig_first)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
    return stop


# ---- Apache -------------------------------------------------------------------------

APACHE_CONF = """\
ServerRoot {dir}
LoadModule mpm_event_module {mods}/mod_mpm_event.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule mime_module {mods}/mod_mime.so
LoadModule dir_module {mods}/mod_dir.so
TypesConfig /etc/mime.types
User www-data
Group www-data
ServerName localhost
Listen 127.0.0.1:{port}
PidFile {dir}/httpd.pid
DefaultRuntimeDir {dir}
Mutex file:{dir}
ErrorLog {dir}/error.log
LogLevel warn
DocumentRoot {dir}/htdocs
KeepAlive {keepalive}
KeepAliveTimeout {keepalive_timeout}
MaxKeepAliveRequests 0
StartServers 1
ServerLimit 2
ThreadsPerChild 64
MaxRequestWorkers 128
<Directory {dir}/htdocs>
    Require all granted
</Directory>
"""


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    dir: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


def start_apache(ns: Netns, dir: Path, port: int, *, keepalive: bool = True,
                 keepalive_timeout: int = 2) -> Server:
    """Apache 2.4, event MPM, serving ``index.html`` (a few bytes)."""
    root = dir / "apache"
    (root / "htdocs").mkdir(parents=True)
    (root / "htdocs" / "index.html").write_text("hello from apache\n")
    for p in (root, root / "htdocs"):
        os.chmod(p, 0o755)
    conf = root / "httpd.conf"
    conf.write_text(APACHE_CONF.format(dir=root, mods=APACHE_MODULES, port=port,
                                       keepalive="On" if keepalive else "Off",
                                       keepalive_timeout=keepalive_timeout))
    proc = ns.spawn(["apache2", "-f", str(conf), "-DFOREGROUND"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc._tl_stop = _stopper(proc)  # SIGTERM: graceful-stop is SIGWINCH
    try:
        wait_listen(ns, port)
    except AssertionError:
        err = (root / "error.log").read_text() if (root / "error.log").exists() else ""
        raise AssertionError(f"apache2 did not start: {err[-2000:]}") from None
    return Server(proc, port, root)


# ---- nginx --------------------------------------------------------------------------

NGINX_CONF = """\
user root;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_timeout {keepalive_timeout};
    upstream backend {{
        server 127.0.0.1:{upstream};
        {upstream_keepalive}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            {proxy_keepalive}
        }}
    }}
    {extra}
}}
"""

#: A second nginx server block answering by itself: the upstream of the
#: TIME_WAIT overflow case.
NGINX_ORIGIN = """\
server {{
        listen 127.0.0.1:{origin};
        location / {{ return 200 "ok\\n"; }}
    }}"""


def start_nginx(ns: Netns, dir: Path, port: int, upstream: int, *,
                upstream_keepalive: bool = False, origin: bool = False,
                keepalive_timeout: int = 2, workers: int = 2) -> Server:
    """nginx proxying ``127.0.0.1:port`` to ``127.0.0.1:upstream``.

    ``upstream_keepalive``: ``keepalive 16`` in the upstream block plus
    ``proxy_http_version 1.1`` and an empty Connection header (nginx's
    documented way to reuse upstream connections); without it nginx sends
    HTTP/1.0 with ``Connection: close`` and closes each upstream
    connection itself. ``origin``: this nginx also serves ``upstream``.
    """
    root = dir / f"nginx-{port}"
    root.mkdir(parents=True)
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(
        dir=root, port=port, upstream=upstream, workers=workers,
        keepalive_timeout=keepalive_timeout,
        upstream_keepalive="keepalive 16;" if upstream_keepalive else "",
        proxy_keepalive=('proxy_http_version 1.1; proxy_set_header Connection "";'
                         if upstream_keepalive else ""),
        extra=NGINX_ORIGIN.format(origin=upstream) if origin else ""))
    proc = ns.spawn(["nginx", "-c", str(conf), "-g", "daemon off;"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc._tl_stop = _stopper(proc)  # SIGTERM: fast shutdown of master and workers
    try:
        wait_listen(ns, port)
    except AssertionError:
        err = (root / "error.log").read_text() if (root / "error.log").exists() else ""
        raise AssertionError(f"nginx did not start: {err[-2000:]}") from None
    return Server(proc, port, root)


# ---- our small real programs ------------------------------------------------------------

def start_app(ns: Netns, name: str, *args: object, listen: int | None = None,
              ready_line: bool = False) -> subprocess.Popen:
    """``python3 realapps/NAME.py ARGS`` in ``ns`` (its command line is what
    findings must show). ``listen``: wait for that port; ``ready_line``:
    wait for the program's first stdout line (it prints when its
    connections are made)."""
    argv = [sys.executable, str(APPS / f"{name}.py"), *map(str, args)]
    proc = ns.spawn(argv, stdout=subprocess.PIPE if ready_line else subprocess.DEVNULL,
                    stderr=subprocess.PIPE, text=True)
    if listen is not None:
        wait_listen(ns, listen)
    if ready_line:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"{name} ended: {proc.stderr.read()[-2000:]}")
    return proc


def ab(ns: Netns, url: str, *, concurrency: int = 10, seconds: float = 10,
       keepalive: bool = False) -> subprocess.Popen:
    """``ab -c C -t S -n 10000000 URL`` in the background (ended by pid)."""
    argv = ["ab", "-q", "-r", "-c", str(concurrency), "-t", str(seconds), "-n", "10000000"]
    if keepalive:
        argv.append("-k")
    return ns.spawn(argv + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# ---- ground truth --------------------------------------------------------------------------

def tcpext(ns: Netns) -> dict[str, int]:
    """TcpExt counters as the namespace sees them (/proc/net/netstat is per
    network namespace: the reading process's)."""
    text = ns.run(["cat", "/proc/net/netstat"]).stdout
    lines = [ln.split() for ln in text.splitlines()]
    for names, values in zip(lines[::2], lines[1::2]):
        if names and names[0] == "TcpExt:":
            return {k: int(v) for k, v in zip(names[1:], values[1:])}
    raise AssertionError("no TcpExt in /proc/net/netstat")


def active_closes(before: dict[str, int], after: dict[str, int]) -> int:
    """Connections this namespace closed first between two readings: one
    timewait-type socket created (TW) or refused for a full table
    (TCPTimeWaitOverflow) per active close (KERNEL-NOTES.md)."""
    return sum(after.get(k, 0) - before.get(k, 0) for k in ("TW", "TCPTimeWaitOverflow"))


def count_ss(ns: Netns, *filter_expr: str) -> dict[str, int]:
    """``ss -tan`` rows per kernel state name (LISTEN included)."""
    counts: dict[str, int] = {}
    for row in ns.ss("tan", *filter_expr):
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    return counts


def wait_for(predicate, timeout: float, step: float = 0.1, what: str = "condition"):
    """Poll until ``predicate()`` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(step)
