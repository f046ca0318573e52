"""The ways the README says to install tcplinger, done for real with
Debian's own ``/usr/bin/python3`` (which refuses ``pip install`` into the
system, PEP 668): a wheel built with ``python -m build`` whose console
script runs, a venv with extras, ``pipx`` (Debian ``pipx``); then the
systemd units of packaging/ pointed at each install's path and checked with
``systemd-analyze verify`` (which fails on a command that does not exist).

Everything is installed under the test's tmp directory from a copy of the
source tree; packages come from the configured package index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tcplinger import __version__

ROOT = Path(__file__).resolve().parents[2]
PY = "/usr/bin/python3"
UNITS = ("tcplinger-watch.service", "tcplinger-exporter.service")
NEEDS = [PY, shutil.which("pipx"), shutil.which("systemd-analyze")]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not Path(PY).exists() or None in NEEDS[1:] or subprocess.run(
        [PY, "-c", "import venv, ensurepip"], capture_output=True).returncode != 0,
    reason="needs Debian's /usr/bin/python3 with venv (python3-venv), pipx, systemd-analyze "
           "(tests/run.sh installs them)")]


def clean_env(**extra) -> dict:
    """No PYTHONPATH: the installed package must be what runs, not the
    source tree the test suite imports."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return {**env, **extra}


def run(argv, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("timeout", 600)
    kw.setdefault("env", clean_env())
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)
    assert p.returncode == 0, f"{argv}: {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    """The source tree without its build products and tests."""
    dst = tmp_path_factory.mktemp("install") / "src"
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "tests"))
    return dst


def check_units(tmp: Path, command: Path) -> None:
    """Both units with ExecStart at ``command``: systemd-analyze verify passes."""
    assert os.access(command, os.X_OK), command
    units = tmp / "units"
    units.mkdir(exist_ok=True)
    for name in UNITS:
        text = (ROOT / "packaging" / name).read_text()
        assert "ExecStart=/usr/local/bin/tcplinger " in text
        (units / name).write_text(text.replace("/usr/local/bin/tcplinger", str(command)))
        p = subprocess.run(["systemd-analyze", "verify", str(units / name)], capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0 and "not executable" not in p.stderr, (name, p.stderr)


def test_system_python_refuses_pip_install(src):
    """Why the README does not say `pip install .` for Debian's Python."""
    marker = Path(PY).resolve().parent.parent / "lib" / f"python3.{_minor()}" / "EXTERNALLY-MANAGED"
    assert marker.exists(), marker


def _minor() -> int:
    return int(subprocess.run([PY, "-c", "import sys; print(sys.version_info.minor)"],
                              capture_output=True, text=True).stdout)


def test_wheel_built_with_build_runs_its_console_script(src, tmp_path):
    run([PY, "-m", "venv", tmp_path / "b"])
    run([tmp_path / "b/bin/pip", "install", "-q", "build"])
    run([tmp_path / "b/bin/python", "-m", "build", "--wheel", "--outdir", tmp_path / "dist", src])
    (wheel,) = (tmp_path / "dist").glob("tcplinger-*-py3-none-any.whl")
    run([PY, "-m", "venv", tmp_path / "w"])
    run([tmp_path / "w/bin/pip", "install", "-q", wheel])
    tl = tmp_path / "w/bin/tcplinger"
    assert run([tl, "--version"]).stdout.split()[-1] == __version__
    # the message catalogs are package data: both languages made it into the wheel
    assert "close-wait-leak" in run([tl, "--lang", "zh", "rules"]).stdout
    assert run([tl, "doctor", "--json"]).stdout.startswith("{")
    where = run([tmp_path / "w/bin/python", "-c", "import tcplinger; print(tcplinger.__file__)"])
    assert where.stdout.startswith(str(tmp_path / "w"))  # the wheel's copy, not the source
    check_units(tmp_path, tl)


def test_venv_one_liner_with_extras(src, tmp_path):
    venv = tmp_path / "opt-tcplinger"
    run([PY, "-m", "venv", venv])
    run([venv / "bin/pip", "install", "-q", f"{src}[exporter,plot]"])
    tl = venv / "bin/tcplinger"
    out = tmp_path / "prom"
    out.mkdir()
    run([tl, "exporter", "--no-findings", "--textfile", out])
    assert "tcplinger_scrape_success 1" in (out / "tcplinger.prom").read_text()
    run([venv / "bin/python", "-c", "import matplotlib"])
    check_units(tmp_path, tl)


def test_pipx_install(src, tmp_path):
    env = clean_env(PIPX_HOME=str(tmp_path / "pipx"), PIPX_BIN_DIR=str(tmp_path / "bin"))
    run(["pipx", "install", f"{src}[exporter]"], env=env)
    tl = tmp_path / "bin/tcplinger"
    assert run([tl, "--version"]).stdout.split()[-1] == __version__
    # pipx made its venv from Debian's Python
    venv_py = tmp_path / "pipx/venvs/tcplinger/bin/python"
    assert venv_py.resolve() == Path(PY).resolve()
    check_units(tmp_path, tl)
