"""The exporter's HTTP server on loopback: persistent HTTP/1.1, no TIME_WAIT
on the server's side whoever ends the connection, HEAD, gzip, and a listen
backlog at the kernel's ceiling.

A TIME_WAIT belongs to the end that closed first; ``ss state time-wait
sport = :PORT`` lists the ones whose *local* port is the exporter's, i.e.
the server's own. The old HTTP/1.0 server left one per request there.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge

from tcplinger.export import server as server_mod

SS = shutil.which("ss")
pytestmark = pytest.mark.skipif(SS is None, reason="needs ss (iproute2)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def exporter_process():
    """``tcplinger exporter`` on 127.0.0.1:PORT, ended by SIGTERM (exit 0)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tcplinger", "exporter", "--no-findings",
                             "--listen", f"127.0.0.1:{port}"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "LANG": "C"})
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read()
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "exporter did not listen within 30 s"
            time.sleep(0.05)
        yield port
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def server_time_waits(port: int) -> list[str]:
    """TIME_WAIT sockets whose local port is ``port`` (the server's side)."""
    out = subprocess.run([SS, "-Htan", "state", "time-wait", f"sport = :{port}"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def client_time_waits(port: int) -> list[str]:
    out = subprocess.run([SS, "-Htan", "state", "time-wait", f"dport = :{port}"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def test_twenty_scrapes_over_one_connection_leave_no_server_time_wait():
    with exporter_process() as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        ports = set()
        for _ in range(20):
            conn.request("GET", "/metrics")
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200 and r.version == 11
            assert int(r.headers["Content-Length"]) == len(body) > 0
            assert r.headers.get("Connection") is None  # kept alive
            ports.add(conn.sock.getsockname()[1])
        assert len(ports) == 1  # one connection for all twenty
        client_port = ports.pop()
        assert server_time_waits(port) == []
        conn.close()  # the client ends it: its side holds the TIME_WAIT
        time.sleep(0.3)
        assert server_time_waits(port) == []
        assert any(f":{client_port} " in line for line in client_time_waits(port))


def test_http10_and_connection_close_clients_close_first():
    with exporter_process() as port:
        for version, headers in (("HTTP/1.0", ""), ("HTTP/1.1", "Connection: close\r\n")):
            with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
                s.sendall(f"GET /metrics {version}\r\nHost: x\r\n{headers}\r\n".encode())
                head = b""
                while b"\r\n\r\n" not in head:
                    head += s.recv(4096)
                assert head.startswith(b"HTTP/1.1 200")
                assert b"Connection: close" in head
                # as a client does once it has the Content-Length bytes
            time.sleep(0.3)
            assert server_time_waits(port) == [], version


def test_head_gzip_and_methods():
    with exporter_process() as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("HEAD", "/metrics", headers={"Accept-Encoding": "gzip"})
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b""
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert r.headers["Content-Encoding"] == "gzip"
        conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        r = conn.getresponse()
        assert r.headers["Content-Encoding"] == "gzip"
        assert b"tcplinger_scrape_success 1.0" in gzip.decompress(r.read())
        conn.request("GET", "/metrics")  # no gzip unless asked
        r = conn.getresponse()
        assert r.headers.get("Content-Encoding") is None and b"# TYPE" in r.read()
        conn.request("HEAD", "/")
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b"" and int(r.headers["Content-Length"]) > 0
        conn.request("POST", "/metrics", body=b"x")
        r = conn.getresponse()
        assert r.status == 405 and r.headers["Allow"] == "GET, HEAD"
        r.read()
        conn.close()


def test_backlog_is_somaxconn_and_concurrent_scrapers_all_answered():
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    with exporter_process() as port:
        out = subprocess.run([SS, "-Hltn", f"sport = :{port}"], capture_output=True, text=True,
                             check=True).stdout.split()
        assert int(out[2]) == somaxconn  # ss: Send-Q of a listener is its backlog
        results = []

        def scrape():
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            c.request("GET", "/metrics")
            r = c.getresponse()
            results.append((r.status, len(r.read())))
            c.close()

        threads = [threading.Thread(target=scrape) for _ in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(150)
        assert len(results) == 32 and {s for s, _ in results} == {200}
        assert server_time_waits(port) == []


def test_idle_connection_is_aborted_without_time_wait():
    """The server ends an idle connection itself with a RST (SO_LINGER 0):
    the client sees a reset, and no TIME_WAIT is left on either side."""
    registry = CollectorRegistry()
    Gauge("tl_test", "a value", registry=registry).set(1)
    srv = server_mod.make_server("127.0.0.1", 0, registry)
    srv.RequestHandlerClass.idle_s = 0.5
    port = srv.server_address[1]
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        assert b"tl_test 1.0" in r.read()
        time.sleep(1.5)
        with pytest.raises(ConnectionResetError):
            conn.sock.recv(1)
        conn.close()
        assert server_time_waits(port) == [] and client_time_waits(port) == []
    finally:
        srv.shutdown()
        srv.server_close()


def test_metrics_answer_as_prometheus_clients_app():
    """/metrics by export/exposition.py (the default text format) or by
    prometheus_client's WSGI app (OpenMetrics, a name[] filter): the same
    status, Content-Type, Content-Encoding and body as the app gives for
    every request."""
    from prometheus_client import make_wsgi_app
    registry = CollectorRegistry()
    g = Gauge("tl_test", 'a "value"', ["who"], registry=registry)
    g.labels('a\\b "c"\nd').set(1)
    g.labels("ü").set(2)
    Gauge("tl_other", "another", registry=registry).set(3)
    app = make_wsgi_app(registry)
    srv = server_mod.make_server("127.0.0.1", 0, registry)
    port = srv.server_address[1]
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for path, accept, encoding in [
                ("/metrics", "", ""), ("/metrics", "", "gzip"),
                ("/metrics", "text/plain; version=0.0.4", "gzip, deflate"),
                ("/metrics", "application/openmetrics-text; version=1.0.0", ""),
                ("/metrics", "text/plain; version=1.0.0; escaping=allow-utf-8", ""),
                ("/metrics?name[]=tl_other", "", "")]:
            conn.request("GET", path, headers={"Accept": accept, "Accept-Encoding": encoding})
            r = conn.getresponse()
            body, headers = r.read(), dict(r.getheaders())
            got = {}

            def start_response(status, hdrs, exc_info=None):
                got["status"], got["headers"] = status, dict(hdrs)

            want = b"".join(app({"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics",
                                 "QUERY_STRING": path.partition("?")[2], "HTTP_ACCEPT": accept,
                                 "HTTP_ACCEPT_ENCODING": encoding}, start_response))
            assert r.status == int(got["status"].split()[0]) == 200
            assert headers["Content-Type"] == got["headers"]["Content-Type"], (path, accept)
            assert headers.get("Content-Encoding") == got["headers"].get("Content-Encoding")
            if encoding:
                body, want = gzip.decompress(body), gzip.decompress(want)
            assert body == want, (path, accept, encoding)
        conn.close()
    finally:
        srv.shutdown()
        srv.server_close()
