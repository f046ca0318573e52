"""Bad input that is not a file name (issue 13): each is one line on
stderr with the README's exit code, refused before any work or output."""

import os
import stat

import pytest

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")


def one_line(err):
    return err.count("\n") == 1 and "Traceback" not in err


def test_watch_refuses_a_bad_scope_before_saying_or_making_anything(cli, tmp_path):
    """It printed "sampling every 10.0 s into ..." first, and made the database."""
    for scope in (["--netns", "tl-none-xyz"], ["--container", "tl-none-xyz"],
                  ["--pod", "tl-none/xyz"], ["--netns", ""], ["--netns", "x" * 300]):
        code, out, err = cli("watch", *scope, "--samples", "1", "--db", str(tmp_path / "w.db"))
        assert code == 3 and out == "" and one_line(err), (scope, err)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["", "x" * 16, "a/b", "a:b", "a b", ".", ".."])
def test_capture_refuses_a_name_no_interface_can_have(cli, name):
    """tcpdump said "(No such device exists)", exit 1 (issue 13)."""
    code, out, err = cli("capture", "--seconds", "0.2", "--interface", name)
    assert (code, out) == (2, "") and one_line(err), err
    assert "argument --interface: invalid interface name" in err


def test_messages_quoting_a_newline_stay_one_line(cli):
    code, _, err = cli("ls", "--netns", "tl-a\nb")
    assert code == 3 and err == "tcplinger: no network namespace named 'tl-a\\nb' in /run/netns\n"


def test_a_scenario_that_is_not_text(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(bytes(range(256)))
    for action in (["run"], ["sweep", "--vary", "tcp_fin_timeout=1,2"]):
        code, out, err = cli("sim", *action, str(bad))
        assert (code, out) == (2, "") and one_line(err)
        assert f"{bad}: scenario is not UTF-8 text (byte 128)" in err


def test_a_scenario_that_is_not_a_file(cli, tmp_path):
    os.mkfifo(tmp_path / "fifo")  # read without O_NONBLOCK, this would wait for a writer
    for name, text in (("fifo", "not a regular file (a FIFO)"), (".", "Is a directory")):
        code, out, err = cli("sim", "run", str(tmp_path / name))
        assert (code, out) == (2, "") and one_line(err) and text in err, err


@needs_root
def test_a_device_is_no_scenario(cli, tmp_path):
    """`sim run /dev/null` ran the default scenario (issue 13)."""
    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    code, out, err = cli("sim", "run", str(null))
    assert (code, out) == (2, "") and "not a regular file (a character device)" in err


@pytest.mark.parametrize("value,why", [("nan", "nan and infinity"), ("-1", "must not be negative"),
                                       ("1" * 40, "at most 3650d")])
def test_sweep_judges_a_set_value_its_vary_overrides(cli, value, why):
    """`--set tcp_fin_timeout=nan` with `--vary tcp_fin_timeout=...` passed (issue 13)."""
    code, out, err = cli("sim", "sweep", "--preset", "linux-orphan-fin-wait-2", "--vary",
                         "tcp_fin_timeout=30,90", "--set", f"tcp_fin_timeout={value}")
    assert (code, out) == (2, "") and one_line(err) and why in err, err


def test_a_million_point_grid_is_refused(cli):
    code, _, err = cli("sim", "sweep", "--preset", "linux-orphan-fin-wait-2", "--vary",
                       "tcp_fin_timeout=1..1000000:1")
    assert code == 2 and one_line(err) and "at most 200000" in err
