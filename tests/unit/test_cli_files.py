"""Files named on the command line (issue 13): one line on stderr, the
README's exit code, and nothing changed on disk; a device node is never
replaced (a private one: never the machine's /dev/null), a state file or
database that is not tcplinger's is refused and left as it is, and an
explicit --db that cannot be used is an error."""

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from tcplinger.track.store import Store

CAPTURE = Path(__file__).resolve().parents[1] / "data" / "lab" / "fin_dropped.client.pcap"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")


@pytest.fixture
def files(tmp_path):
    d = tmp_path / "f"
    d.mkdir()
    (d / "precious.txt").write_text("precious\n")
    (d / "foreign.json").write_text('{"not": "tcplinger"}\n')
    (d / "corrupt.bin").write_bytes(bytes(range(256)) * 4)
    (d / "dir").mkdir()
    con = sqlite3.connect(d / "foreign.db")
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with Store(d / "watch.db"):
        pass
    (d / "truncated.db").write_bytes((d / "watch.db").read_bytes()[:200])
    if os.geteuid() == 0:
        os.mknod(d / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return d


def snapshot(d):
    return {p: (p.lstat().st_mode, p.read_bytes() if p.is_file() and not p.is_symlink()
                else None) for p in sorted(d.rglob("*"))}


def one_line(err):
    return err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("command", [["report"], ["ls"], ["stats"], ["tune"], ["top", "--once"],
                                     ["history"]])
@pytest.mark.parametrize("name,code,fragment", [
    ("missing.db", 3, "missing.db"),
    ("precious.txt", 7, "is not a tcplinger watch database (file is not a database)"),
    ("corrupt.bin", 7, "is not a tcplinger watch database"),
    ("truncated.db", 7, "is not a tcplinger watch database"),
    ("foreign.db", 7, "is not a tcplinger watch database (no watch tables)"),
    ("dir", 2, "Is a directory"),
])
def test_an_explicit_db_that_cannot_be_used_is_an_error(cli, files, command, name, code,
                                                         fragment):
    before = snapshot(files)
    got, out, err = cli(*command, "--db", str(files / name))
    assert (got, out) == (code, "") and one_line(err) and fragment in err, err
    assert snapshot(files) == before


@needs_root
@pytest.mark.parametrize("command", [["report"], ["history"], ["watch", "--samples", "1"]])
def test_a_device_as_db_is_refused(cli, files, command):
    got, _, err = cli(*command, "--db", str(files / "null"))
    assert got == 2 and one_line(err) and "not a regular file (a character device)" in err
    assert stat.S_ISCHR(os.lstat(files / "null").st_mode)


@pytest.mark.parametrize("name", ["precious.txt", "corrupt.bin", "foreign.db", "truncated.db"])
def test_watch_leaves_a_file_that_is_not_its_database_alone(cli, files, name):
    before = snapshot(files)
    got, _, err = cli("watch", "--samples", "1", "--interval", "0.1", "--no-trace",
                      "--db", str(files / name))
    assert got == 7 and one_line(err) and "left as it is" in err, err
    assert snapshot(files) == before


def test_the_check_state_file_of_someone_else_is_refused_and_kept(cli, files):
    """`printf 'precious\\n' > x; tcplinger check --state x` replaced x with
    counter JSON (issue 13)."""
    before = snapshot(files)
    for name, reason in (("precious.txt", "not JSON"), ("foreign.json", "other JSON"),
                         ("corrupt.bin", "not JSON")):
        code, out, err = cli("check", "--state", str(files / name))
        assert (code, err) == (3, "")
        assert out == (f"TCPLINGER UNKNOWN - could not diagnose: {files / name} is not a"
                       f" tcplinger check state file"
                       f" ({reason}); it was left as it is\n")
    assert snapshot(files) == before


def test_the_check_state_file_is_ours_and_read_back(cli, tmp_path):
    state = tmp_path / "s" / "state.json"
    assert cli("check", "--state", str(state)).code in (0, 1, 2)
    first = state.read_text()
    assert first.startswith('{"kind": "tcplinger check state"')
    assert cli("check", "--state", str(state)).code in (0, 1, 2)
    (tmp_path / "empty").write_text("")  # `check --state $(mktemp)`: nothing to lose
    assert cli("check", "--state", str(tmp_path / "empty")).code in (0, 1, 2)
    assert (tmp_path / "empty").read_text().startswith('{"kind"')


@needs_root
@pytest.mark.parametrize("argv", [
    ["check", "--state", "{null}"], ["tune", "--write", "{null}"],
    ["report", "--html", "{null}"], ["history", "--png", "{null}"],
    ["sim", "run", "--preset", "linux-orphan-fin-wait-2", "--svg", "{null}"],
    ["pcap", "{capture}", "--svg", "{null}"], ["pcap", "{capture}", "--html", "{null}"],
])
def test_a_device_node_is_never_replaced(cli, files, argv):
    """`check --state /dev/null`, `tune --write /dev/null`, `report --html
    /dev/null` renamed a file over the device node (issue 13)."""
    argv = [a.replace("{null}", str(files / "null")).replace("{capture}", str(CAPTURE))
            for a in argv]
    (files / "link").symlink_to(files / "null")
    for target in ("null", "link"):
        line = [a.replace(str(files / "null"), str(files / target)) for a in argv]
        code, _, err = cli(*line)
        assert code in ((3,) if argv[0] == "check" else (2,)), (line, code, err)
        assert stat.S_ISCHR(os.lstat(files / "null").st_mode)
        assert os.path.islink(files / "link")
    assert sorted(p.name for p in files.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("argv", [["tune", "--write", "{d}"], ["report", "--html", "{d}"],
                                  ["check", "--state", "{d}"]])
def test_a_directory_as_target_leaves_no_temporary(cli, tmp_path, argv):
    """`tune --write /tmp/somedir` left /tmp/.somedir.tmp, `check --state
    /tmp/somedir` /tmp/.tcplinger-XXXX (issue 13)."""
    (tmp_path / "somedir").mkdir()
    code, out, err = cli(*[a.replace("{d}", str(tmp_path / "somedir")) for a in argv])
    if argv[0] == "check":
        assert code == 3 and "Is a directory" in out
    else:
        assert code == 2 and one_line(err) and "Is a directory" in err
    assert os.listdir(tmp_path) == ["somedir"] and os.listdir(tmp_path / "somedir") == []


@pytest.mark.parametrize("argv,code", [
    (["tune", "--write", "{tmp}/missing/x.conf"], 3),
    (["report", "--html", ""], 2),
    (["sim", "run", "--preset", "linux-orphan-fin-wait-2", "--svg", "{tmp}/" + "x" * 300], 2),
])
def test_write_targets_refused_before_any_work(cli, tmp_path, argv, code):
    got, out, err = cli(*[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert (got, out) == (code, "") and one_line(err), err
    assert os.listdir(tmp_path) == []


def test_global_options_anywhere(cli):
    """`tcplinger --netns X --lang zh` said "unrecognized arguments" (issue 13)."""
    for argv in (["--netns", "tl-none-xyz", "--lang", "zh"], ["report", "--lang", "zh",
                                                                "--netns", "tl-none-xyz"],
                 ["--lang", "zh", "report", "--netns", "tl-none-xyz"]):
        code, _, err = cli(*argv)
        assert code == 3 and "没有名为 'tl-none-xyz' 的网络命名空间" in err, (argv, err)
    code, out, _ = cli("rules", "--lang", "zh")
    assert code == 0 and "规则" in out or "close-wait-leak" in out
    code, _, err = cli("sim", "run", "--preset", "nope", "--lang", "zh")
    assert code == 3 and "没有名为 'nope' 的预设" in err


def test_usage_errors_have_one_prefix(cli):
    """"tcplinger: tcplinger report: argument ..." (issue 13)."""
    code, _, err = cli("report", "--sockets", "-1")
    assert code == 2 and err.startswith("tcplinger report: argument --sockets: ")


def test_a_netns_name_longer_than_a_file_name(cli):
    """A 300-character name: "File name too long" with exit 1 (issue 13)."""
    for command in (["report"], ["ls"], ["stats"], ["tune"], ["top", "--once"],
                    ["exporter", "--textfile", "/nonexistent"], ["watch", "--samples", "1"]):
        code, out, err = cli(*command, "--netns", "x" * 300)
        assert (code, out) == (3, "") and one_line(err), (command, err)
        assert "invalid network namespace name" in err
