"""``tcplinger exporter`` as a process on loopback: /metrics over HTTP,
basic auth and TLS from an exporter-toolkit web config (cross-checked with
``promtool check web-config``), SIGTERM, and the textfile mode."""

from __future__ import annotations

import base64
import contextlib
import gzip
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tcplinger.export import webconfig

PROMTOOL = shutil.which("promtool")
OPENSSL = shutil.which("openssl")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def exporter(*argv, port=None):
    """The exporter on 127.0.0.1:PORT until the block ends; then SIGTERM,
    which must end it with exit code 0 within 10 s."""
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tcplinger", "exporter",
                             "--listen", f"127.0.0.1:{port}", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "LANG": "C"})
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"exporter exited {proc.returncode}: {proc.stderr.read()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise AssertionError("exporter did not listen within 30 s")
            time.sleep(0.05)
        info = {"port": port, "proc": proc}
        yield info
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        info["stderr"] = proc.stderr.read()
        assert code == 0, info["stderr"]
        assert "Traceback" not in info["stderr"], info["stderr"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def get(url, *, headers=None, context=None, timeout=60):
    """(status, headers, body); HTTP errors are answers too."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, context=context, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def families(body: bytes) -> dict:
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# ---- plain HTTP -----------------------------------------------------------------

def test_metrics_over_http():
    with exporter() as ex:
        port = ex["port"]
        status, headers, body = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        fams = families(body)
        assert fams["tcplinger_scrape_success"].samples[0].value == 1
        listening = [s for s in fams["tcplinger_sockets"].samples if s.labels["state"] == "LISTEN"]
        assert sum(s.value for s in listening) >= 1  # the exporter's own socket, at least
        assert "process_cpu_seconds" in fams  # the exporter's own cost
        status, _, body = get(f"http://127.0.0.1:{port}/")
        assert status == 200 and b'href="/metrics"' in body
        assert get(f"http://127.0.0.1:{port}/other")[0] == 404
        # content negotiation and compression come from prometheus_client
        status, headers, body = get(f"http://127.0.0.1:{port}/metrics",
                                    headers={"Accept": "application/openmetrics-text; version=1.0.0",
                                             "Accept-Encoding": "gzip"})
        assert headers["Content-Type"].startswith("application/openmetrics-text")
        assert headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(body).rstrip().endswith(b"# EOF")
    assert ex["stderr"] == (f"tcplinger exporter: serving http://127.0.0.1:{port}/metrics "
                            "(no authentication)\n")


# ---- basic auth -------------------------------------------------------------------

def test_basic_auth(tmp_path):
    bcrypt = pytest.importorskip("bcrypt", reason="basic auth needs the bcrypt module")
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    cfg = tmp_path / "web.yml"
    cfg.write_text(f"basic_auth_users:\n  prometheus: {hashed}\n"
                   "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n")
    with exporter("--web-config", str(cfg)) as ex:
        port = ex["port"]
        url = f"http://127.0.0.1:{port}/metrics"
        status, headers, _ = get(url)
        assert status == 401 and headers["WWW-Authenticate"] == "Basic"
        assert get(url, headers=basic("prometheus", "wrong"))[0] == 401
        assert get(url, headers=basic("nobody", "s3cret"))[0] == 401
        assert get(url, headers={"Authorization": "Basic !!!"})[0] == 401
        status, headers, body = get(url, headers=basic("prometheus", "s3cret"))
        assert status == 200 and b"tcplinger_scrape_success 1.0" in body
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert get(f"http://127.0.0.1:{port}/")[0] == 401  # every path is behind auth


# ---- TLS ----------------------------------------------------------------------------

def openssl(*args, cwd):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    if OPENSSL is None:
        pytest.skip("needs the openssl command")
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "2", "-subj", "/CN=tcplinger test CA", cwd=d)
    for name, san in (("server", "IP:127.0.0.1"), ("client", "DNS:prometheus.test")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile",
                f"{name}.ext", cwd=d)
    return d


def client_context(pki, cert=False):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if cert:
        ctx.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
    return ctx


def test_tls(pki, tmp_path):
    cfg = tmp_path / "web.yml"
    # relative paths: to the config file's directory
    for name in ("server.crt", "server.key"):
        shutil.copy(pki / name, tmp_path / name)
    cfg.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                   "  min_version: TLS12\n")
    with exporter("--web-config", str(cfg)) as ex:
        port = ex["port"]
        status, _, body = get(f"https://127.0.0.1:{port}/metrics", context=client_context(pki))
        assert status == 200 and b"tcplinger_scrape_success 1.0" in body
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        # a client that fails its handshake does not stop the next one
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"\x16\x03\x01 garbage")
        assert get(f"https://127.0.0.1:{port}/metrics", context=client_context(pki))[0] == 200


def test_tls_client_certificates(pki, tmp_path):
    cfg = tmp_path / "web.yml"
    cfg.write_text(f"tls_server_config:\n  cert_file: {pki / 'server.crt'}\n"
                   f"  key_file: {pki / 'server.key'}\n"
                   "  client_auth_type: RequireAndVerifyClientCert\n"
                   f"  client_ca_file: {pki / 'ca.crt'}\n"
                   "  client_allowed_sans: [prometheus.test]\n")
    with exporter("--web-config", str(cfg)) as ex:
        url = f"https://127.0.0.1:{ex['port']}/metrics"
        assert get(url, context=client_context(pki, cert=True))[0] == 200
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError, OSError)):
            get(url, context=client_context(pki), timeout=10)
    # a valid certificate whose SAN is not in the list is turned away
    cfg.write_text(cfg.read_text().replace("[prometheus.test]", "[grafana.test]"))
    with exporter("--web-config", str(cfg)) as ex:
        url = f"https://127.0.0.1:{ex['port']}/metrics"
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            get(url, context=client_context(pki, cert=True), timeout=10)


# ---- the web config against promtool's reading of the same file ------------------------

@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
@pytest.mark.parametrize("case", ["empty", "tls", "auth", "headers", "unknown key", "bad hash",
                                  "no key file", "missing cert", "ca without policy",
                                  "bad header", "bad version"])
def test_web_config_agrees_with_promtool(case, pki, tmp_path):
    good_hash = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG"
    tls = f"tls_server_config:\n  cert_file: {pki / 'server.crt'}\n  key_file: {pki / 'server.key'}\n"
    text = {
        "empty": "",
        "tls": tls + "  client_auth_type: RequireAndVerifyClientCert\n"
                     f"  client_ca_file: {pki / 'ca.crt'}\n",
        "auth": f"basic_auth_users:\n  alice: {good_hash}\n",
        "headers": "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        "unknown key": tls + "  cert_fil: x\n",
        "bad hash": "basic_auth_users:\n  alice: hunter2\n",
        "no key file": f"tls_server_config:\n  cert_file: {pki / 'server.crt'}\n",
        "missing cert": "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n",
        "ca without policy": tls + f"  client_ca_file: {pki / 'ca.crt'}\n",
        "bad header": "http_server_config:\n  headers:\n    Server: me\n",
        "bad version": tls + "  min_version: TLS99\n",
    }[case]
    cfg = tmp_path / "web.yml"
    cfg.write_text(text)
    theirs = subprocess.run([PROMTOOL, "check", "web-config", str(cfg)], capture_output=True,
                            text=True, timeout=30)
    try:
        webconfig.load(cfg)
        ours = None
    except webconfig.MissingModule:
        pytest.skip("bcrypt not installed")
    except webconfig.WebConfigError as exc:
        ours = str(exc)
    assert (ours is None) == (theirs.returncode == 0), (ours, theirs.stdout, theirs.stderr)


# ---- textfile -----------------------------------------------------------------------------

def test_textfile_once(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tcplinger", "exporter", "--textfile",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["tcplinger.prom"]  # no temporary left
    path = tmp_path / "tcplinger.prom"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    fams = {f.name for f in text_string_to_metric_families(path.read_text())}
    assert {"tcplinger_sockets", "tcplinger_scrape_success"} <= fams
    assert not any(name.startswith("process_") for name in fams)  # node_exporter has its own
    if PROMTOOL:
        lint = subprocess.run([PROMTOOL, "check", "metrics"], input=path.read_bytes(),
                              capture_output=True, timeout=30)
        assert lint.returncode == 0, lint.stdout + lint.stderr


def test_textfile_interval_rewrites_until_sigterm(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "tcplinger", "exporter", "--textfile",
                             str(tmp_path), "--interval", "1"], stderr=subprocess.PIPE, text=True)
    try:
        path = tmp_path / "tcplinger.prom"
        seen = set()
        deadline = time.monotonic() + 60
        while len(seen) < 3 and time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                text = path.read_text()  # never half written: a rename replaced it whole
                assert text.endswith("\n") and "tcplinger_build_info{" in text
                seen.add(path.stat().st_ino)  # each write is a new file renamed in place
            time.sleep(0.1)
        assert len(seen) >= 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["tcplinger.prom"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(shutil.which("prometheus-node-exporter") is None,
                    reason="needs node_exporter (Debian package prometheus-node-exporter)")
def test_node_exporter_reads_the_textfile(tmp_path):
    """node_exporter's own textfile collector takes the file as it is."""
    proc = subprocess.run([sys.executable, "-m", "tcplinger", "exporter", "--textfile",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    port = free_port()
    node = subprocess.Popen(["prometheus-node-exporter", "--collector.disable-defaults",
                             "--collector.textfile",
                             f"--collector.textfile.directory={tmp_path}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def scrape():
            try:
                return get(f"http://127.0.0.1:{port}/metrics", timeout=10)
            except (urllib.error.URLError, ConnectionError):
                return None
        deadline = time.monotonic() + 30
        while (answer := scrape()) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert answer is not None, "node_exporter did not answer"
        status, _, body = answer
        fams = families(body)
        assert status == 200
        assert fams["node_textfile_scrape_error"].samples[0].value == 0
        assert fams["tcplinger_scrape_success"].samples[0].value == 1
        text = (tmp_path / "tcplinger.prom").read_text()
        ours = {f.name for f in text_string_to_metric_families(text) if f.samples}
        assert ours <= set(fams)  # node_exporter drops only families without samples
    finally:
        node.terminate()
        node.wait(timeout=10)
