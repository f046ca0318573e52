"""The README's Quickstart says what tests/run.sh installs: the same
Debian packages and the same extras (CI runs run.sh on a fresh machine;
a reader follows the README), and exactly two commands."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_sh():
    text = (ROOT / "tests" / "run.sh").read_text().replace("\\\n", " ")
    (apt,) = re.findall(r"apt-get install -y -qq ([^>\n]+)", text)
    (extras,) = re.findall(r"pip install -q -e '\.\[([^\]]+)\]'", text)
    return set(apt.split()), set(extras.split(","))


def quickstart():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)```", section, re.S)
    packages = re.search(r"Debian packages `([^`]+)`", section).group(1)
    extras = re.search(r"with its (.*?) extras", section, re.S).group(1)
    return commands, set(packages.split()), set(re.findall(r"`(\w+)`", extras))


def test_readme_lists_what_run_sh_installs():
    apt, extras = run_sh()
    commands, packages, readme_extras = quickstart()
    assert packages == apt
    assert readme_extras == extras


def test_quickstart_keeps_two_commands():
    commands, _, _ = quickstart()
    assert [c.strip() for c in commands] == ["pip install . && tcplinger", "./tests/run.sh"]


def test_run_sh_extras_exist():
    _, extras = run_sh()
    section = (ROOT / "pyproject.toml").read_text().split(
        "[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    declared = set(re.findall(r"^(\w+) = \[", section, re.M))
    assert extras <= declared and "test" in declared
