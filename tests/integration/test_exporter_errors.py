"""Bad input to ``tcplinger exporter``: one clear line on stderr and a
non-zero, documented exit code, before any snapshot is taken.

In process through ``main()`` (as tests/unit/test_cli.py), on loopback.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys

import pytest


GOOD_HASH = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG"


#: One prefix (issue 13): "tcplinger exporter: " on a usage error (argparse
#: names the command), "tcplinger: " on any other; never both.
PREFIX = re.compile(r"tcplinger(?: exporter)?: (?!tcplinger)")


def one_line(err: str) -> str:
    assert err.count("\n") == 1, err
    assert PREFIX.match(err) and "Traceback" not in err, err
    return err


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_busy_port(cli, busy_port):
    code, out, err = cli("exporter", "--listen", f"127.0.0.1:{busy_port}")
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{busy_port}: the address is already in use" in one_line(err)
    assert out == ""


def test_address_not_on_this_host(cli):
    code, _, err = cli("exporter", "--listen", "192.0.2.1:9469")  # TEST-NET-1 (RFC 5737)
    assert code == 2
    assert "cannot listen on 192.0.2.1:9469: Cannot assign requested address" in one_line(err)


@pytest.mark.parametrize("text", ["9469", "localhost", "::1:9469", "127.0.0.1:99999",
                                  "127.0.0.1:http"])
def test_bad_listen_syntax(cli, text):
    code, _, err = cli("exporter", "--listen", text)
    assert code == 2
    assert one_line(err).startswith("tcplinger exporter: argument --listen: invalid listen address")


def test_listen_and_textfile_exclude_each_other(cli, tmp_path):
    code, _, err = cli("exporter", "--listen", "127.0.0.1:1", "--textfile", str(tmp_path))
    assert code == 2 and one_line(err).startswith("tcplinger exporter: argument ")
    assert "not allowed with argument" in err


def test_web_config_with_textfile(cli, tmp_path):
    cfg = tmp_path / "web.yml"
    cfg.write_text("")
    code, _, err = cli("exporter", "--textfile", str(tmp_path), "--web-config", str(cfg))
    assert code == 2 and "--web-config applies to the HTTP server" in one_line(err)


BAD_CONFIGS = {
    "not yaml": ("tls_server_config: [\n", "not valid YAML"),
    "unknown key": ("basic_auth_user:\n  alice: x\n", "unknown key 'basic_auth_user'"),
    "unknown tls key": ("tls_server_config:\n  certfile: a\n",
                        "unknown key 'tls_server_config.certfile'"),
    "cert missing": ("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n",
                     "cannot load the certificate and key"),
    "no key": ("tls_server_config:\n  cert_file: a.crt\n", "missing one of key or key_file"),
    "plain password": ("basic_auth_users:\n  alice: secret\n", "basic_auth_users.alice: not a bcrypt hash"),
    "ca without policy": ("tls_server_config:\n  cert_file: a\n  key_file: b\n"
                          "  client_ca_file: c\n", "client CAs are configured without"),
    "bad header": ("http_server_config:\n  headers:\n    X-Powered-By: me\n",
                   "HTTP header 'X-Powered-By' can not be configured"),
    "bad header value": ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                         "invalid value for X-Frame-Options"),
    "bad tls version": ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS9\n",
                        "unknown TLS version 'TLS9'"),
    "refused": ("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [X]\n",
                "cipher_suites: Go cipher suite names"),
    "list at top": ("- a\n- b\n", "the file must be a mapping"),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_web_config(cli, tmp_path, name):
    text, fragment = BAD_CONFIGS[name]
    cfg = tmp_path / "web.yml"
    cfg.write_text(text)
    code, out, err = cli("exporter", "--listen", "127.0.0.1:1", "--web-config", str(cfg))
    assert code == 2
    line = one_line(err)
    assert f"bad web config {cfg}: " in line and fragment in line


def test_web_config_missing_file(cli, tmp_path):
    code, _, err = cli("exporter", "--listen", "127.0.0.1:1", "--web-config", str(tmp_path / "nope.yml"))
    assert code == 3 and "cannot read it: No such file or directory" in one_line(err)


@pytest.mark.parametrize("text", ["", "# nothing\n", "---\n"])
def test_web_config_that_enables_nothing_is_refused(cli, tmp_path, text):
    """An empty web config served plain HTTP without auth (issue 13)."""
    cfg = tmp_path / "web.yml"
    cfg.write_text(text)
    code, _, err = cli("exporter", "--listen", "127.0.0.1:1", "--web-config", str(cfg))
    assert code == 2
    assert one_line(err) == (f"tcplinger: bad web config {cfg}: it enables nothing (neither TLS"
                             " nor basic auth)\n")


def test_web_config_that_is_not_a_file(cli, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it for reading without O_NONBLOCK would hang the start
    code, _, err = cli("exporter", "--listen", "127.0.0.1:1", "--web-config", str(fifo))
    assert code == 2 and "not a regular file (a FIFO)" in one_line(err)
    code, _, err = cli("exporter", "--listen", "127.0.0.1:1", "--web-config", str(tmp_path))
    assert code == 2 and "Is a directory" in one_line(err)


def test_basic_auth_without_bcrypt(cli, tmp_path, monkeypatch):
    # None in sys.modules makes `import bcrypt` raise ImportError, as on a
    # host where the module is not installed.
    monkeypatch.setitem(sys.modules, "bcrypt", None)
    cfg = tmp_path / "web.yml"
    cfg.write_text(f"basic_auth_users:\n  alice: {GOOD_HASH}\n")
    code, _, err = cli("exporter", "--listen", "127.0.0.1:1", "--web-config", str(cfg))
    assert code == 5
    line = one_line(err)
    assert "basic_auth_users needs the Python module 'bcrypt'" in line
    assert "pip install bcrypt" in line and "python3-bcrypt" in line


def test_textfile_directory_missing(cli, tmp_path):
    code, _, err = cli("exporter", "--textfile", str(tmp_path / "nope"))
    assert code == 3
    assert f"cannot write to the textfile directory {tmp_path / 'nope'}: no such directory" \
        in one_line(err)


def test_textfile_not_a_directory(cli, tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    code, _, err = cli("exporter", "--textfile", str(f))
    assert code == 2 and "not a directory" in one_line(err)


def test_textfile_directory_unwritable(tmp_path):
    """No write permission. Root passes permission bits, so as root the
    exporter runs without CAP_DAC_OVERRIDE (setpriv) in a directory that
    belongs to nobody; otherwise a 0555 directory of our own will do."""
    d = tmp_path / "ro"
    d.mkdir()
    cmd = [sys.executable, "-m", "tcplinger", "exporter", "--textfile", str(d)]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE as root")
        os.chown(d, 65534, 65534)
        d.chmod(0o755)
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *cmd]
    else:
        d.chmod(0o555)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "LANG": "C"})
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr == f"tcplinger: cannot write to the textfile directory {d}: Permission denied\n"
    assert list(d.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only bind mount needs root")
def test_textfile_directory_on_a_read_only_mount(cli, tmp_path):
    """Exit 1 before (issue 13); the docs say 4: it cannot be written."""
    d = tmp_path / "ro"
    d.mkdir()
    subprocess.run(["mount", "--bind", str(d), str(d)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(d)], check=True)
        code, _, err = cli("exporter", "--textfile", str(d))
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)
    assert code == 4
    assert one_line(err) == (f"tcplinger: cannot write to the textfile directory {d}:"
                             " Read-only file system\n")


def test_textfile_empty_name(cli, tmp_path):
    """`--textfile ''` wrote ./tcplinger.prom (issue 13)."""
    code, _, err = cli("exporter", "--textfile", "")
    assert code == 2 and "invalid file name ''" in err and err.count("\n") == 1


def test_namespace_that_does_not_exist(cli):
    code, out, err = cli("exporter", "--netns", "tl-exporter-does-not-exist", "--listen", "127.0.0.1:1")
    assert code == 3 and "tl-exporter-does-not-exist" in one_line(err)
