"""What every test shares: the CLI run in process, and the one rule for
privileged tests.

* ``cli`` (fixture): ``cli("ls", "--json")`` runs ``tcplinger.cli.main.main``
  with an injected :class:`~tcplinger.cli.terminal.Terminal` (in-memory
  stdout/stderr, ``LANG=C`` unless told, no tty) and returns a
  :class:`CliRun` ``(code, out, err)``.
* ``@pytest.mark.privileged(needs=(...))``: the test needs root, iproute2's
  ``ip``/``ss`` and a working ``ip netns``, plus every command named in
  ``needs`` (``"tracefs"`` means a mounted tracefs). :func:`privileged_skip_reason`
  is the one check; a marked test that cannot run is skipped with its reason.
  Every test under tests/privileged/ carries the marker.
* CI cannot go green by skipping: with ``CI=true`` and root, a privileged
  test that skips (by the marker, by ``pytest.skip`` in its body or a
  fixture, or a whole module skipped at import) is reported as FAILED with
  the reason. Outside CI, or not as root, it stays a skip.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

PRIVILEGED_DIR = Path(__file__).resolve().parent / "privileged"


# ---- the CLI in process -----------------------------------------------------------------

class CliRun(NamedTuple):
    """One in-process run of the CLI (unpacks as ``code, out, err``)."""

    code: int
    out: str
    err: str


def run_cli(*argv: str, lang: str = "C", env: dict | None = None, tty: bool = False,
            width: int | None = None, stdin: str | None = None) -> CliRun:
    """``tcplinger ARGV...`` in this process: exit code, stdout, stderr.

    ``env`` replaces the whole environment the CLI sees (``{"LANG": lang}``
    by default); ``stdin`` is what a confirmation prompt reads.
    """
    from tcplinger.cli.main import main
    from tcplinger.cli.terminal import Terminal

    out, err = io.StringIO(), io.StringIO()
    term = Terminal(stdout=out, stderr=err, env={"LANG": lang} if env is None else env,
                    is_tty=tty, width=width)
    if stdin is not None:
        term.stdin = io.StringIO(stdin)
    code = main(list(argv), term=term)
    return CliRun(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def cli():
    """:func:`run_cli` (a module that wants other defaults overrides this
    fixture with a ``functools.partial`` of it)."""
    return run_cli


# ---- privileged tests ---------------------------------------------------------------------

@functools.cache
@contextlib.contextmanager
def _read_only_directory(path: Path):
    """``path``, a new directory that cannot be written: a read-only bind
    mount as root (root writes through permission bits), mode 0555
    otherwise; undone on the way out."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture(scope="session")
def read_only_directory():
    """``with read_only_directory(path) as ro:`` (any fixture scope)."""
    return _read_only_directory


def _base_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    missing = [t for t in ("ip", "ss") if shutil.which(t) is None]
    if missing:
        return f"needs iproute2 ({', '.join(missing)} not found)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`ip netns` unavailable: {probe.stderr.strip()}"
    return None


@functools.cache
def _need_reason(need: str) -> str | None:
    if need == "tracefs":
        from tcplinger.collect import tracefs
        try:
            tracefs.find_tracefs()
        except tracefs.TracefsUnavailable as exc:
            return f"no tracefs: {exc}"
        return None
    if shutil.which(need) is None:
        return f"needs {need} (tests/run.sh installs it)"
    return None


def privileged_skip_reason(needs: tuple[str, ...] = ()) -> str | None:
    """Why a privileged test cannot run here, or None when it can: root,
    ``ip``/``ss``, ``ip netns`` working, and every need (a command, or
    ``"tracefs"``)."""
    return _base_reason() or next(filter(None, map(_need_reason, needs)), None)


def _needs(item: pytest.Item) -> tuple[str, ...]:
    needs: list[str] = []
    for mark in item.iter_markers("privileged"):
        needs += mark.kwargs.get("needs", ())
    return tuple(dict.fromkeys(needs))


def _ci_as_root() -> bool:
    return os.environ.get("CI") == "true" and os.geteuid() == 0


def _in_privileged_dir(path) -> bool:
    return PRIVILEGED_DIR in Path(str(path)).resolve().parents


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "privileged(needs=()): needs root, iproute2 and a working `ip netns`, and "
        "each command (or \"tracefs\") in needs; skipped where it cannot run, FAILED "
        "instead under CI=true as root (tests/conftest.py)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _in_privileged_dir(item.path) and item.get_closest_marker("privileged") is None:
            item.add_marker(pytest.mark.privileged)
        if item.get_closest_marker("privileged") is None:
            continue
        why = privileged_skip_reason(_needs(item))
        if why:
            item.add_marker(pytest.mark.skip(reason=why))


def _fail_instead(report, what: str) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (f"CI=true as root: {what} may not skip; it would have skipped "
                       f"with: {reason}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if (report.skipped and not hasattr(report, "wasxfail") and _ci_as_root()
            and item.get_closest_marker("privileged") is not None):
        _fail_instead(report, f"privileged test {item.nodeid}")
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if report.skipped and _ci_as_root() and _in_privileged_dir(collector.path):
        _fail_instead(report, f"privileged module {collector.nodeid}")
    return report
