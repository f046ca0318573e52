"""The CLI in process: bad input gives one line on stderr and a documented
exit code, never a traceback."""


import pytest



@pytest.mark.parametrize("argv,fragment", [
    (["ls", "--port", "70000"], "invalid port '70000'"),
    (["ls", "--sport", "http"], "invalid port 'http'"),
    (["ls", "--state", "close-wiat"], "unknown state 'close-wiat'"),
    (["ls", "--pid", "abc"], "invalid pid 'abc'"),
    (["ls", "--netns", "a", "--all-netns"], "not allowed with argument"),
    (["frobnicate"], "invalid choice"),
    (["stats", "--bogus"], "unrecognized arguments"),
])
def test_usage_errors(cli, argv, fragment):
    code, out, err = cli(*argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and fragment in err and err.startswith("tcplinger")
    assert "Traceback" not in err


def test_missing_namespace(cli, tmp_path):
    code, out, err = cli("ls", "--netns", "tl-does-not-exist-xyz")
    assert code == 3
    assert err.count("\n") == 1 and "tl-does-not-exist-xyz" in err


def test_missing_pid(cli):
    code, out, err = cli("ls", "--pid", "999999999")
    assert code == 3
    assert err.count("\n") == 1 and "999999999" in err


def test_help_and_version(cli):
    code, out, _ = cli("--help")
    assert code == 0 and "ls" in out and "stats" in out and "Exit codes" in out
    code, out, _ = cli("--version")
    assert code == 0 and out.startswith("tcplinger ")
    code, out, _ = cli("ls", "--help")
    assert code == 0 and "--owners" in out and "--all-netns" in out
