r"""The exporter's ``--web-config`` file (the server is export/server.py).

The file has the format of the Prometheus exporter-toolkit
(https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md),
so one file can serve node_exporter and tcplinger alike::

    tls_server_config:
      cert_file: server.crt          # relative paths: to the file's directory
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: ca.crt
      min_version: TLS12
    http_server_config:
      headers:
        X-Content-Type-Options: nosniff
    basic_auth_users:
      prometheus: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG

As exporter-toolkit (web/tls_config.go ``getConfig``: ``yaml.UnmarshalStrict``),
unknown keys are errors, and a client CA without a client-auth policy is
one. Differences, each a clear error rather than a silent change:
``cipher_suites``, ``curve_preferences`` and ``rate_limit`` are refused
(Go names that OpenSSL does not share; no rate limiter here), and so are
``RequestClientCert``/``RequireAnyClientCert`` (Python's ssl verifies every
client certificate it asks for). ``http2`` is accepted and ignored (the
server speaks HTTP/1.1). The file is read once, at start.

Passwords are bcrypt hashes; checking them needs the ``bcrypt`` module
(pip ``bcrypt``, Debian ``python3-bcrypt``), asked for only when
``basic_auth_users`` is not empty. As exporter-toolkit (web/handler.go),
an unknown user is checked against a fixed hash too, so response times do
not tell which users exist, and a good (user, password) pair is cached so
that each scrape does not pay bcrypt's ~70 ms again.

>>> cfg = parse("basic_auth_users:\n  alice: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG\n")
>>> cfg.tls is None, sorted(cfg.users)
(True, ['alice'])
>>> parse("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n", Path("/etc/x")).tls.cert_file
PosixPath('/etc/x/a.crt')
>>> parse("basic_auth_user: {}\n")
Traceback (most recent call last):
...
tcplinger.export.webconfig.WebConfigError: unknown key 'basic_auth_user' (known: basic_auth_users, http_server_config, tls_server_config)
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import ssl
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from ..fsutil import read_regular


class WebConfigError(ValueError):
    """The web config file is wrong; the message says where."""


class CannotRead(WebConfigError):
    """The file could not be read: ``errno`` says why (the exit code)."""

    def __init__(self, exc: OSError):
        super().__init__(f"cannot read it: {exc.strerror or exc}")
        self.errno = exc.errno
        self.os_error = exc


class MissingModule(WebConfigError):
    """The file is right but needs a Python module that is not installed."""

    def __init__(self, feature: str, module: str, pip: str, deb: str):
        super().__init__(f"{feature} needs the Python module {module!r}: "
                         f"pip install {pip} (Debian: apt install {deb})")
        self.module = module


TOP_KEYS = ("basic_auth_users", "http_server_config", "tls_server_config")
TLS_KEYS = ("cert", "cert_file", "client_allowed_sans", "client_auth_type", "client_ca",
            "client_ca_file", "key", "key_file", "max_version", "min_version",
            "prefer_server_cipher_suites")
REFUSED = {  # valid for exporter-toolkit, not done here
    "cipher_suites": "Go cipher suite names have no OpenSSL equivalent here; leave the "
                     "default (OpenSSL's) suites",
    "curve_preferences": "not supported; OpenSSL's default curves are used",
    "rate_limit": "not supported (scrapes are serialised anyway)",
}
HTTP_KEYS = ("headers", "http2")
#: exporter-toolkit web/handler.go extraHTTPHeaders: the headers that may be
#: set, with their allowed values (None: any).
HEADERS = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "": ssl.CERT_NONE,
               "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
#: Modular crypt format of bcrypt: $2a$/$2b$/$2y$, cost, 53 characters of
#: salt and hash (what golang.org/x/crypto/bcrypt.Cost accepts).
BCRYPT_RE = re.compile(r"\$2[abxy]?\$(\d\d)\$[./A-Za-z0-9]{53}")
#: bcrypt of a password nobody has, for unknown users (timing, see above).
DUMMY_HASH = b"$2b$10$1Xlr2Zw248E7ncFlhfky6.wzm1ZtWccy18P8jrcvW4ceKqyKA/bEC"


@dataclass(frozen=True)
class TlsConfig:
    cert_file: Path | None = None
    key_file: Path | None = None
    cert: str | None = None  # inline PEM
    key: str | None = None
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    client_ca: str | None = None
    client_allowed_sans: tuple[str, ...] = ()
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    prefer_server_cipher_suites: bool = True


@dataclass(frozen=True)
class WebConfig:
    tls: TlsConfig | None = None
    users: dict = field(default_factory=dict)  # name -> bcrypt hash (bytes)
    headers: dict = field(default_factory=dict)


# ---- parsing (pure) -------------------------------------------------------------

def parse(text: str, directory: Path = Path(".")) -> WebConfig:
    """The config in ``text``; relative paths are joined to ``directory``."""
    try:
        import yaml
    except ImportError:
        raise MissingModule("--web-config", "yaml", "pyyaml", "python3-yaml") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        what = " ".join(str(getattr(exc, "problem", None) or exc).split())  # one line
        raise WebConfigError(f"not valid YAML{at}: {what}") from None
    doc = _mapping(doc, "the file")
    _known(doc, TOP_KEYS, "")
    tls = _tls(_mapping(doc.get("tls_server_config"), "tls_server_config"), directory)
    http = _mapping(doc.get("http_server_config"), "http_server_config")
    _known(http, HTTP_KEYS, "http_server_config.")
    if not isinstance(http.get("http2", True), bool):
        raise WebConfigError("http_server_config.http2 must be true or false")
    headers = _mapping(http.get("headers"), "http_server_config.headers")
    for name, value in headers.items():
        if name not in HEADERS:
            raise WebConfigError(f"HTTP header {name!r} can not be configured "
                                 f"(allowed: {', '.join(HEADERS)})")
        if not isinstance(value, str):
            raise WebConfigError(f"HTTP header {name}: the value must be a string")
        allowed = HEADERS[name]
        if allowed and value not in allowed:
            raise WebConfigError(f"invalid value for {name}: expected one of "
                                 f"{', '.join(allowed)}, got {value!r}")
    users = {}
    for name, hashed in _mapping(doc.get("basic_auth_users"), "basic_auth_users").items():
        if not isinstance(hashed, str) or not BCRYPT_RE.fullmatch(hashed):
            raise WebConfigError(f"basic_auth_users.{name}: not a bcrypt hash (make one with "
                                 "`htpasswd -nBC 10 \"\" | tr -d ':\\n'`)")
        users[str(name)] = hashed.encode()
    return WebConfig(tls, users, {k: v for k, v in headers.items() if v})


def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebConfigError(f"{where} must be a mapping of keys to values")
    return value


def _known(doc: dict, keys, prefix: str) -> None:
    for key in doc:
        if key in REFUSED:
            raise WebConfigError(f"{prefix}{key}: {REFUSED[key]}")
        if key not in keys:
            raise WebConfigError(f"unknown key {prefix + str(key)!r} (known: {', '.join(keys)})")


def _tls(doc: dict, directory: Path) -> TlsConfig | None:
    _known(doc, TLS_KEYS, "tls_server_config.")
    if not any(doc.get(k) for k in ("cert", "cert_file", "key", "key_file", "client_ca",
                                    "client_ca_file", "client_auth_type")):
        return None  # exporter-toolkit IsEnabled(): plain HTTP
    def path(key):
        value = doc.get(key)
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise WebConfigError(f"tls_server_config.{key} must be a file name")
        return directory / value
    for key in ("cert", "key", "client_ca", "client_auth_type", "min_version", "max_version"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise WebConfigError(f"tls_server_config.{key} must be a string")
    cfg = TlsConfig(
        cert_file=path("cert_file"), key_file=path("key_file"), cert=doc.get("cert") or None,
        key=doc.get("key") or None, client_auth_type=doc.get("client_auth_type") or "NoClientCert",
        client_ca_file=path("client_ca_file"), client_ca=doc.get("client_ca") or None,
        client_allowed_sans=tuple(str(s) for s in doc.get("client_allowed_sans") or ()),
        min_version=doc.get("min_version") or "TLS12",
        max_version=doc.get("max_version") or "TLS13",
        prefer_server_cipher_suites=bool(doc.get("prefer_server_cipher_suites", True)))
    if cfg.cert_file is None and cfg.cert is None:
        raise WebConfigError("tls_server_config: missing one of cert or cert_file")
    if cfg.key_file is None and cfg.key is None:
        raise WebConfigError("tls_server_config: missing one of key or key_file")
    for key in ("min_version", "max_version"):
        if getattr(cfg, key) not in TLS_VERSIONS:
            raise WebConfigError(f"tls_server_config.{key}: unknown TLS version "
                                 f"{getattr(cfg, key)!r} (one of {', '.join(TLS_VERSIONS)})")
    if cfg.client_auth_type in ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert"):
        raise WebConfigError(f"tls_server_config.client_auth_type {cfg.client_auth_type} is not "
                             "supported (Python's ssl verifies every client certificate it asks "
                             "for): use RequireAndVerifyClientCert or VerifyClientCertIfGiven")
    if cfg.client_auth_type not in CLIENT_AUTH:
        raise WebConfigError(f"tls_server_config.client_auth_type: invalid {cfg.client_auth_type!r}")
    if (cfg.client_ca_file or cfg.client_ca) and CLIENT_AUTH[cfg.client_auth_type] == ssl.CERT_NONE:
        raise WebConfigError("tls_server_config: client CAs are configured without a client auth "
                             "policy (client_auth_type)")
    if cfg.client_allowed_sans and cfg.client_auth_type != "RequireAndVerifyClientCert":
        raise WebConfigError("tls_server_config.client_allowed_sans requires client_auth_type "
                             "RequireAndVerifyClientCert")
    return cfg


# ---- loading: files, TLS context, password checks ---------------------------------

@dataclass
class Loaded:
    config: WebConfig
    context: ssl.SSLContext | None
    auth: "BasicAuth | None"


def load(path: Path) -> Loaded:
    """Read and check ``path``: its certificate files load, its hashes can
    be checked. Raises WebConfigError (or MissingModule) saying what is wrong."""
    try:  # a regular file only (a FIFO would hang the start, /dev/null says nothing)
        text = read_regular(path, limit=1 << 20).decode("utf-8")
    except OSError as exc:
        raise CannotRead(exc) from None
    except UnicodeDecodeError:
        raise WebConfigError("not UTF-8 text") from None
    cfg = parse(text, Path(path).resolve().parent)
    context = ssl_context(cfg.tls) if cfg.tls else None
    auth = BasicAuth(cfg.users) if cfg.users else None
    return Loaded(cfg, context, auth)


def ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.minimum_version = TLS_VERSIONS[tls.min_version]
        ctx.maximum_version = TLS_VERSIONS[tls.max_version]
    except (ValueError, ssl.SSLError) as exc:
        raise WebConfigError(f"tls_server_config: TLS versions: {exc}") from None
    if tls.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    _load_pair(ctx, tls)
    mode = CLIENT_AUTH[tls.client_auth_type]
    if mode != ssl.CERT_NONE:
        try:
            if tls.client_ca_file:
                ctx.load_verify_locations(cafile=str(tls.client_ca_file))
            elif tls.client_ca:
                ctx.load_verify_locations(cadata=tls.client_ca)
            else:  # as Go with ClientCAs nil: the system's roots
                ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"tls_server_config: client CA: {_why(exc)}") from None
        ctx.verify_mode = mode
    return ctx


def _load_pair(ctx: ssl.SSLContext, tls: TlsConfig) -> None:
    """load_cert_chain reads files only: inline PEM goes through a private
    temporary file that is removed at once."""
    temps = []
    try:
        cert, key = tls.cert_file, tls.key_file
        for attr, text in (("cert", tls.cert), ("key", tls.key)):
            if text is not None and (cert if attr == "cert" else key) is None:
                fd, name = tempfile.mkstemp(prefix=".tcplinger-tls-")  # mode 0600
                with os.fdopen(fd, "w") as f:
                    f.write(text)
                temps.append(name)
                if attr == "cert":
                    cert = Path(name)
                else:
                    key = Path(name)
        try:
            ctx.load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"tls_server_config: cannot load the certificate and key "
                                 f"({cert if cert not in map(Path, temps) else 'cert'}, "
                                 f"{key if key not in map(Path, temps) else 'key'}): "
                                 f"{_why(exc)}") from None
    finally:
        for name in temps:
            os.unlink(name)


def _why(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError):
        return (exc.strerror or str(exc)) + (f": {exc.filename}" if exc.filename else "")
    return str(exc)


class BasicAuth:
    """``check(Authorization header) -> bool`` against bcrypt hashes."""

    CACHE_SIZE = 64

    def __init__(self, users: dict):
        try:
            import bcrypt
        except ImportError:
            raise MissingModule("basic_auth_users", "bcrypt", "bcrypt", "python3-bcrypt") from None
        self._bcrypt = bcrypt
        self._users = dict(users)
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._lock = threading.Lock()  # bcrypt is CPU-bound: one at a time

    def check(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, sep, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        if not sep:
            return False
        hashed = self._users.get(user)
        known = hashed is not None
        hashed = hashed if known else DUMMY_HASH
        key = hashlib.sha256(b"\0".join((user.encode(), hashed, password.encode()))).digest()
        with self._lock:
            ok = self._cache.get(key)
            if ok is None:
                try:
                    ok = self._bcrypt.checkpw(password.encode(), hashed)
                except ValueError:
                    ok = False
                self._cache[key] = ok
                if len(self._cache) > self.CACHE_SIZE:
                    self._cache.popitem(last=False)
        return bool(ok) and known
