"""The exporter's HTTP server: HTTP/1.1 keep-alive that leaves no TIME_WAIT
in the namespace it measures.

The exporter usually runs in the namespace it watches (a pod's sidecar, a
host agent), so its own connections count in its own metrics.  Whichever
end of a TCP connection closes first holds the TIME_WAIT for 2*MSL (60 s on
Linux, ``TCP_TIMEWAIT_LEN`` in include/net/tcp.h).  An HTTP/1.0 server that
closes after every response therefore leaves one TIME_WAIT per scrape on
its own side.  This server never closes first with a FIN:

* It speaks HTTP/1.1 with ``Content-Length`` on every response, so a
  scraper keeps one connection for every scrape (Prometheus does: Go's
  ``net/http`` transport keeps idle connections for 5 minutes).
* When the client ends the connection (it sent ``Connection: close``, speaks
  HTTP/1.0, or just closes), the server waits up to ``LINGER_S`` for the
  client's FIN before closing its own socket: the client's side is then the
  active closer and holds the TIME_WAIT, in the client's namespace.
* When the server must end a connection itself (idle longer than
  ``IDLE_S``, a client that never finishes its request or never closes, a
  failed TLS handshake) it aborts it: ``SO_LINGER`` with a zero timeout
  makes close() send a RST and free the socket at once, with no TIME_WAIT
  (socket(7), SO_LINGER; tcp_disconnect() in net/ipv4/tcp.c).  ``IDLE_S``
  is longer than Prometheus's idle-connection timeout, so a live scraper
  always closes first.

The listen backlog is the kernel's ceiling, ``net.core.somaxconn`` read in
the exporter's namespace (as Go's ``net.Listen`` does), not socketserver's 5:
concurrent scrapers queue instead of having their SYNs dropped.

``GET /metrics`` runs prometheus_client's WSGI app (``make_wsgi_app``:
exposition formats, OpenMetrics negotiation, gzip when the client accepts
it, ``name[]`` filters) and sends its answer with a length.  ``HEAD
/metrics`` answers the headers a GET would get without taking a snapshot,
so a health check costs nothing; it omits Content-Length, which is only
known by producing the body (RFC 9110 section 9.3.2 allows that).  Basic
auth, TLS and the extra headers follow the exporter-toolkit web config
(export/webconfig.py).
"""

from __future__ import annotations

import errno
import gzip
import select
import socket
import ssl
import struct
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import choose_encoder, generate_latest, gzip_accepted

from .. import __version__
from . import exposition
from .webconfig import Loaded, WebConfig

IDLE_S = 330.0  # > Go's http.Transport IdleConnTimeout in Prometheus (5 min)
REQUEST_S = 30.0  # a started request must arrive whole within this
LINGER_S = 5.0  # how long to wait for the client's FIN after its last response
DRAIN_BYTES = 65536  # read and dropped while waiting for that FIN
DEFAULT_BACKLOG = 4096  # net.core.somaxconn's default since Linux 5.4

LANDING = (b"<html><head><title>tcplinger exporter</title></head><body>"
           b"<h1>tcplinger exporter</h1><p><a href=\"/metrics\">Metrics</a></p></body></html>\n")


def listen_backlog(proc_sys: Path = Path("/proc/sys")) -> int:
    """The kernel's cap on a listen() backlog in the caller's namespace
    (net.core.somaxconn is per namespace since Linux 4.15).

    >>> listen_backlog(Path("/nonexistent")) == DEFAULT_BACKLOG
    True
    """
    try:
        value = int((proc_sys / "net/core/somaxconn").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_BACKLOG
    return max(value, 1)


def abort(sock: socket.socket) -> None:
    """Close with a RST: no FIN, so no TIME_WAIT on this side."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def close_after_peer(sock: socket.socket, wait_s: float) -> bool:
    """Wait up to ``wait_s`` for the peer's FIN (reading and dropping what
    it still sends), then close: the peer closed first and keeps the
    TIME_WAIT.  A peer that does not close in time is aborted.  True when
    the peer closed first."""
    drained = 0
    try:
        sock.settimeout(wait_s)
        while drained <= DRAIN_BYTES:
            data = sock.recv(4096)
            if not data:
                sock.close()
                return True
            drained += len(data)
    except (TimeoutError, socket.timeout, ssl.SSLError):
        pass
    except OSError as exc:
        if exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN):
            sock.close()  # already gone: nothing lingers
            return True
    abort(sock)
    return False


class MetricsHandler(BaseHTTPRequestHandler):
    """/metrics and a landing page, over persistent HTTP/1.1, behind basic
    auth when the web config has users."""

    protocol_version = "HTTP/1.1"
    server_version = f"tcplinger-exporter/{__version__}"
    rbufsize = 0  # unbuffered: select() must see a pipelined request
    app = None  # prometheus_client WSGI app, set by make_server()
    registry = None  # ... and its registry, for export/exposition.py's text format
    loaded: Loaded = Loaded(WebConfig(), None, None)
    idle_s = IDLE_S
    linger_s = LINGER_S

    def setup(self) -> None:
        super().setup()
        self.idle_expired = False

    def handle(self) -> None:
        """Requests until the client closes, asks to close, or idles out."""
        self.close_connection = False
        while not self.close_connection:
            if not self._request_waiting():
                self.idle_expired = True
                return
            self.connection.settimeout(REQUEST_S)
            self.handle_one_request()

    def _request_waiting(self) -> bool:
        conn = self.connection
        if isinstance(conn, ssl.SSLSocket) and conn.pending():
            return True
        ready, _, _ = select.select([conn], [], [], self.idle_s)
        return bool(ready)

    def finish(self) -> None:
        super().finish()  # flushes and closes the file objects
        if self.idle_expired:
            abort(self.connection)
        else:
            close_after_peer(self.connection, self.linger_s)

    # ---- methods ------------------------------------------------------------------

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _not_allowed(self) -> None:
        self.close_connection = True  # its body, if any, is not read
        self._send(405, b"Method Not Allowed\n", [("Allow", "GET, HEAD")])

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _answer(self, body: bool) -> None:
        auth = self.loaded.auth
        if auth is not None and not auth.check(self.headers.get("Authorization")):
            self._send(401, b"Unauthorized\n", [("WWW-Authenticate", "Basic")], body)
            return
        url = urlparse(self.path)
        if url.path == "/metrics":
            if body:
                self._metrics(url.query)
            else:
                self._metrics_head()
        elif url.path == "/":
            self._send(200, LANDING, [("Content-Type", "text/html; charset=utf-8")], body)
        else:
            self._send(404, b"Not Found\n", [], body)

    def _metrics(self, query: str) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        if encoder is generate_latest and "name[]" not in parse_qs(query):
            # the default text format, as the WSGI app would answer it
            # (prometheus_client's _bake_output), by export/exposition.py
            content, headers = exposition.text(self.registry), [("Content-Type", content_type)]
            if gzip_accepted(self.headers.get("Accept-Encoding", "")):
                content = gzip.compress(content)
                headers.append(("Content-Encoding", "gzip"))
            self._send(200, content, headers)
            return
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": query,
                   "HTTP_ACCEPT": self.headers.get("Accept", ""),
                   "HTTP_ACCEPT_ENCODING": self.headers.get("Accept-Encoding", "")}
        answer = {}

        def start_response(status, headers, exc_info=None):
            answer["status"], answer["headers"] = status, headers

        content = b"".join(self.app(environ, start_response))
        self._send(int(answer["status"].split()[0]), content, answer["headers"])

    def _metrics_head(self) -> None:
        _, content_type = choose_encoder(self.headers.get("Accept", ""))
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if gzip_accepted(self.headers.get("Accept-Encoding", "")):
            self.send_header("Content-Encoding", "gzip")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _send(self, code: int, content: bytes, headers=(), body: bool = True) -> None:
        self.send_response(code)
        headers = list(headers)
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "text/plain; charset=utf-8"))
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(content)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(content)

    def end_headers(self) -> None:
        for k, v in self.loaded.config.headers.items():
            self.send_header(k, v)
        super().end_headers()

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base's name
        """No access log (scrapes are frequent); errors show in the metrics."""


class MetricsServer(ThreadingHTTPServer):
    """Thread per connection; TLS handshakes happen in that thread, so a
    slow client never stalls accept()."""

    daemon_threads = True

    def __init__(self, address, family: int, handler, loaded: Loaded, backlog: int):
        self.address_family = family
        self.loaded = loaded
        self.request_queue_size = backlog
        super().__init__(address, handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            # "[::]:PORT" serves IPv4 too, as Go's net.Listen does.
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def finish_request(self, request, client_address) -> None:
        ctx = self.loaded.context
        if ctx is not None:
            request.settimeout(REQUEST_S)
            try:
                tls = ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                abort(request)  # a failed handshake concerns that client only
                return
            if not self._allowed_san(tls):
                abort(tls)
                return
            request = tls
        self.RequestHandlerClass(request, client_address, self)

    def _allowed_san(self, conn: ssl.SSLSocket) -> bool:
        allowed = self.loaded.config.tls.client_allowed_sans
        if not allowed:
            return True
        cert = conn.getpeercert() or {}
        sans = {v for _, v in cert.get("subjectAltName", ())}
        return bool(sans & set(allowed))

    def shutdown_request(self, request) -> None:
        # The handler closed the connection already, the way that leaves no
        # TIME_WAIT here; socketserver's shutdown(SHUT_WR) would send a FIN.
        try:
            request.close()
        except OSError:
            pass

    def handle_error(self, request, client_address) -> None:
        pass  # a client hanging up mid-response is not the exporter's error


def make_server(host: str, port: int, registry, loaded: Loaded | None = None,
                backlog: int | None = None) -> MetricsServer:
    """Bind and listen (raises OSError: EADDRINUSE, EADDRNOTAVAIL, EACCES...)
    but do not serve yet: call ``serve_forever()``. ``host`` "" means every
    address."""
    loaded = loaded or Loaded(WebConfig(), None, None)
    backlog = backlog or listen_backlog()
    handler = type("Handler", (MetricsHandler,),
                   {"app": staticmethod(make_wsgi_app(registry)), "registry": registry,
                    "loaded": loaded})
    if host == "":
        try:
            return MetricsServer(("::", port), socket.AF_INET6, handler, loaded, backlog)
        except OSError as exc:
            if exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):  # no IPv6 here
                raise
            return MetricsServer(("0.0.0.0", port), socket.AF_INET, handler, loaded, backlog)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    return MetricsServer(sockaddr[:2] if family == socket.AF_INET else sockaddr, family,
                         handler, loaded, backlog)
