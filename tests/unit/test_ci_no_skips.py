"""CI cannot go green by skipping (tests/conftest.py): pytest run in a
subprocess on a tiny test tree next to a copy of our conftest.py, once with
CI=true and once without. As root under CI, every privileged test that
would skip fails with its reason; unprivileged skips and xfails stay what
they are."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

TESTS = '''
import pytest

@pytest.mark.privileged(needs=("tl-no-such-command",))
def test_needs_a_missing_command():
    pass

@pytest.mark.privileged
def test_skips_in_its_body():
    pytest.skip("the host flooded the tracepoint: 3 events lost")

@pytest.fixture
def lost_events():
    pytest.skip("skipped by a fixture")

@pytest.mark.privileged
def test_skipped_by_its_fixture(lost_events):
    pass

def test_unprivileged_skip():
    pytest.skip("matplotlib is installed")

@pytest.mark.privileged
@pytest.mark.xfail(reason="known", strict=True)
def test_privileged_xfail():
    assert False

def test_passes():
    pass
'''

#: a module of tests/privileged/ that skips itself at import
PRIVILEGED_MODULE = '''
import pytest
pytest.skip("needs root (network namespaces)", allow_module_level=True)

def test_never_collected():
    pass
'''


def outcomes(tmp: Path, ci: bool) -> dict[str, str]:
    """name -> passed/failed/skipped/error, and the failure texts."""
    shutil.copy(CONFTEST, tmp / "conftest.py")
    (tmp / "test_tiny.py").write_text(TESTS)
    (tmp / "privileged").mkdir(exist_ok=True)
    (tmp / "privileged" / "test_module_skip.py").write_text(PRIVILEGED_MODULE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    xml = tmp / f"junit-{ci}.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                    "--import-mode=importlib", "--continue-on-collection-errors",
                    f"--junitxml={xml}", str(tmp)],
                   cwd=tmp, env=env, capture_output=True, text=True, timeout=120)
    got = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = case.get("name") or case.get("classname")
        kinds = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
        text = " ".join((c.get("message") or "") + (c.text or "") for c in case)
        got[name] = (kinds[0] if kinds else "passed", text)
    return got


def test_without_ci_privileged_tests_skip(tmp_path):
    got = outcomes(tmp_path, ci=False)
    assert got["test_needs_a_missing_command"][0] == "skipped"
    assert got["test_skips_in_its_body"][0] == "skipped"
    assert got["test_skipped_by_its_fixture"][0] == "skipped"
    assert got["test_unprivileged_skip"][0] == "skipped"
    assert got["test_privileged_xfail"][0] == "skipped"  # junit's word for xfailed
    assert got["test_passes"][0] == "passed"


def test_ci_as_root_turns_privileged_skips_into_failures(tmp_path):
    got = outcomes(tmp_path, ci=True)
    if os.geteuid() != 0:  # not root: CI may skip what needs root
        assert got["test_needs_a_missing_command"][0] == "skipped"
        assert got["test_skips_in_its_body"][0] == "skipped"
        return
    # a skip in the setup phase (the marker, a fixture) fails as an error
    kind, text = got["test_needs_a_missing_command"]
    assert kind == "error" and "needs tl-no-such-command" in text, text
    kind, text = got["test_skips_in_its_body"]
    assert kind == "failure" and "3 events lost" in text and "CI=true as root" in text, text
    kind, text = got["test_skipped_by_its_fixture"]
    assert kind == "error" and "skipped by a fixture" in text, text
    module = next(v for k, v in got.items() if "test_module_skip" in k)
    assert module[0] == "error" and "needs root (network namespaces)" in module[1], module
    assert got["test_unprivileged_skip"][0] == "skipped"
    assert got["test_privileged_xfail"][0] == "skipped"  # xfailed: not a skip to refuse
    assert got["test_passes"][0] == "passed"


def test_the_tiny_tree_is_what_it_claims():
    """The strings above are a test module (a typo would hide the check)."""
    compile(textwrap.dedent(TESTS), "test_tiny.py", "exec")
    compile(PRIVILEGED_MODULE, "test_module_skip.py", "exec")
