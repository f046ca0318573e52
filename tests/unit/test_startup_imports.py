"""The light commands start light (issue 16): ``--version``, ``--help``,
``rules`` and ``explain RULE`` import neither numpy (~0.1 s of start-up
here) nor any collector, so they cost at most ~3x ``python3 -c pass``
(bench/startup.py measures it). Each runs in a fresh interpreter, whose
``sys.modules`` is read back after the command returned."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

PROBE = r"""
import io, json, sys, contextlib
from tcplinger.cli.main import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def modules_after(*argv: str) -> tuple[int, list[str]]:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                         env=env, timeout=60, check=True)
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    return doc["code"], doc["modules"]


@pytest.mark.parametrize("argv", [("--version",), ("--help",), ("rules",), ("rules", "--json"),
                                  ("explain", "close-wait-leak"), ("--lang", "zh", "rules")])
def test_light_commands_import_no_numpy_and_no_collector(argv):
    code, modules = modules_after(*argv)
    assert code == 0
    heavy = [m for m in modules if m == "numpy" or m.startswith(("numpy.", "tcplinger.collect",
                                                                "tcplinger.app", "tcplinger.sim",
                                                                "tcplinger.wire"))]
    assert heavy == []


def test_a_snapshot_command_still_imports_what_it_needs():
    """The probe sees what a run imports (the check above is not vacuous):
    ``ls --help`` loads the ls command's module."""
    code, modules = modules_after("ls", "--help")
    assert code == 0
    assert "tcplinger.cli.commands.ls" in modules


#: Standard modules that report and stats imported without using them (on a
#: run without a capture, with one namespace), ~45 ms of their start-up
#: together (issue 16): xml.sax.saxutils pulled in urllib.request, http.client,
#: ssl and email; collect/tracefs subprocess; collect/snapshot's thread pool
#: concurrent.futures (with logging and queue).
UNUSED = ("urllib.request", "http.client", "ssl", "email", "xml", "subprocess",
          "concurrent", "logging", "queue")


@pytest.mark.parametrize("command", ["report", "stats", "ls"])
def test_snapshot_commands_import_no_unused_standard_modules(command):
    code, modules = modules_after(command, "--help")
    assert code == 0 and f"tcplinger.cli.commands.{command}" in modules
    assert [m for m in modules if m in UNUSED or m.split(".")[0] in UNUSED] == []


def test_report_imports_the_interval_sampler_only_with_interval():
    """``report --interval`` samples twice and may record connects through
    tracefs (app/interval.py, collect/connects.py): a plain report imports
    none of it (~10 ms, 9 dataclasses)."""
    code, modules = modules_after("report", "--help")
    assert code == 0
    assert [m for m in modules if m in ("tcplinger.app.interval", "tcplinger.collect.connects",
                                        "tcplinger.collect.tracefs")] == []


THREADS_PROBE = r"""
import io, json, os, sys, contextlib
from tcplinger.cli.main import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "numpy": "numpy" in sys.modules,
                  "threads": len(os.listdir("/proc/self/task")),
                  "env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS",
                                                         "OMP_NUM_THREADS")}}))
"""


def probe_threads(env: dict, *argv: str) -> dict:
    env = dict(env, PYTHONPATH=str(SRC))
    out = subprocess.run([sys.executable, "-c", THREADS_PROBE, *argv], capture_output=True,
                         text=True, env=env, timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_numpy_starts_no_blas_threads():
    """numpy is imported with one BLAS thread (OpenBLAS starts one per
    further CPU, busy-waiting through the import: ~0.06-0.1 s of CPU of a
    small host's ``stats``), and the variable that says so is gone after
    the import, so the programs tcplinger starts see the user's
    environment. On this 2-CPU machine numpy alone starts a second
    thread (the last check shows the probe can see it)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")}
    doc = probe_threads(env, "stats", "--help")
    assert doc["code"] == 0 and doc["numpy"]
    assert doc["threads"] == 1
    assert doc["env"] == {"OPENBLAS_NUM_THREADS": None, "OMP_NUM_THREADS": None}
    if (os.cpu_count() or 1) > 1:  # the user's choice is kept: 2 threads where asked
        doc = probe_threads(dict(env, OPENBLAS_NUM_THREADS="2"), "stats", "--help")
        assert doc["threads"] == 2 and doc["env"]["OPENBLAS_NUM_THREADS"] == "2"


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="numpy starts no BLAS thread on 1 CPU")
@pytest.mark.parametrize("name", ["OMP_NUM_THREADS", "GOTO_NUM_THREADS"])
def test_numpy_keeps_the_users_other_blas_thread_count(name):
    """A user's OMP_NUM_THREADS or GOTO_NUM_THREADS alone is a choice too:
    OpenBLAS reads OPENBLAS_NUM_THREADS first, so setting that one beside
    it overrode the user (1 thread where they asked 2), and nothing is
    added to the environment the programs tcplinger starts see."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")}
    doc = probe_threads(dict(env, **{name: "2"}), "stats", "--help")
    assert doc["threads"] == 2
    assert doc["env"] == {"OPENBLAS_NUM_THREADS": None,
                          "OMP_NUM_THREADS": "2" if name == "OMP_NUM_THREADS" else None}


#: Standard modules a start did not need, which this sandbox's own .pth
#: files import anyway (certifi: importlib.resources, so the table's runs
#: here do not see it): the catalogs' folder found through
#: importlib.resources (with tempfile, zipfile, shutil, random, bz2, lzma:
#: ~9 ms of CPU on a host without them loaded, issue 16) and the netlink
#: sequence number from the random module (~3 ms).
NOT_AT_START = ("importlib.resources", "tempfile", "zipfile", "random")


@pytest.mark.parametrize("argv", [("report", "--help"), ("stats", "--help"),
                                  ("--lang", "zh", "rules")])
def test_a_start_without_site_imports_no_resource_machinery(argv):
    """Without ``site`` (``-S``: no .pth file of this machine runs, numpy's
    folder on PYTHONPATH) a start that reads the catalogs and loads the
    command's modules imports none of NOT_AT_START."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(SRC), str(Path(numpy.__file__).resolve().parents[1])]))
    out = subprocess.run([sys.executable, "-S", "-c", PROBE, *argv], capture_output=True,
                         text=True, env=env, timeout=60, check=True)
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["code"] == 0 and "tcplinger.i18n" in doc["modules"]
    assert [m for m in doc["modules"] if m in NOT_AT_START] == []


GC_PROBE = r"""
import contextlib, gc, io, json, sys
from tcplinger.cli.main import main
started = []
gc.callbacks.append(lambda phase, info: phase == "start" and started.append(info["generation"]))
program = sys.argv[1] == "program"
sys.argv = ["tcplinger"] + sys.argv[2:]
with contextlib.redirect_stdout(io.StringIO()):
    code = main() if program else main(sys.argv[1:])
print(json.dumps({"code": code, "collections": len(started), "frozen": gc.get_freeze_count(),
                  "enabled": gc.isenabled(), "numpy": "numpy" in sys.modules}))
"""


def gc_probe(how: str, *argv: str) -> dict:
    out = subprocess.run([sys.executable, "-c", GC_PROBE, how, *argv], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(SRC)), timeout=60,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_no_collection_while_the_command_loads_and_a_program_freezes_what_it_loaded():
    """cli/main._no_collection: the garbage collector scanned the objects
    of numpy's and the command's import 40-50 times (7-8 ms of a report's
    CPU, issue 16). Loading `stats` (numpy included) now collects nothing;
    run as a program, main() freezes what exists (gc.freeze) and the
    collector is on again; called by a library with its own argv, nothing
    is frozen (the caller's uncollected cycles would stay forever)."""
    doc = gc_probe("program", "stats", "--help")
    assert doc["code"] == 0 and doc["numpy"]
    assert doc["collections"] == 0
    assert doc["frozen"] > 10_000 and doc["enabled"]
    doc = gc_probe("library", "stats", "--help")
    assert doc["code"] == 0 and doc["numpy"] and doc["enabled"]
    assert doc["frozen"] == 0
    assert doc["collections"] <= 2  # none while loading; the first after it (not frozen)
