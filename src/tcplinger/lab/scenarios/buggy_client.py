"""buggy-client-keepalive (seeds 001, 002): an HTTP-like server closes an
idle persistent connection after its keep-alive timeout; a buggy client
never sends its FIN, a proper one closes when it reads EOF.

Seed 001 says FIN_WAIT2 has no timeout and stays until reboot; seed 002
(Apache) that it stays "until the client closes, or FIN_WAIT_2 times out
on servers that have a timeout". On Linux the server's socket is an
orphan once Apache-like code close()s it, so tcp_fin_timeout ends it; the
buggy client keeps CLOSE_WAIT for as long as it runs.
"""

from __future__ import annotations

from ..checks import Diagnosed, Held, Never, Reaches, Sent
from ...model.params import Param
from ..scenario import Scenario
from ._common import fin_timeout

NAME = "buggy-client-keepalive"


def script(run) -> None:
    p = run.p
    c = run.connect(request="GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
    if p["client"] == "proper":
        run.peer("client").call("watch", name=c.client, mode="close_on_eof")
    run.wait(p["keepalive_timeout"], "lab.wait.idle", side="server")
    run.do("server", "close", c.server, key=c.server_key, note="lab.note.idle_close")
    run.wait(min(1.0, max(p["tcp_fin_timeout"], 1) / 2))
    run.diagnose("idle_closed")
    if p["client"] == "buggy":
        run.wait_gone("server", c.server_key, timeout=max(p["tcp_fin_timeout"], 1) * 1.2 + 4)
    else:
        run.wait(1.0)


def horizon(p: dict) -> float:
    return p["keepalive_timeout"] + max(p["tcp_fin_timeout"], 1) * 1.2 + 8


def checks(p: dict, tol) -> list:
    if p["client"] == "buggy":
        life = max(p["tcp_fin_timeout"], 0.7)
        return [Held("server", "FIN_WAIT2", *tol.about(life)),
                Never("server", "TIME_WAIT"),
                Held("client", "CLOSE_WAIT", 1.0, still_held=True),
                Sent("server", "F", most=1), Sent("client", "F", least=0, most=0),
                Diagnosed("keepalive-timeout-fin-wait-2", "server", at="idle_closed"),
                Diagnosed("close-wait-leak", "client", at="idle_closed")]
    return [Sent("server", "F"), Sent("client", "F"),
            Held("server", "FIN_WAIT2", 0.0, 0.5),
            Held("client", "LAST_ACK", 0.0, 0.5),
            Reaches("server", "TIME_WAIT"),
            # TIME_WAIT lasts TCP_TIMEWAIT_LEN, 60 s: to its end with --duration 70
            Held("server", "TIME_WAIT", *tol.about(60), still_held=None, held_at_least=0.5),
            Never("client", "TIME_WAIT"),
            Diagnosed("close-wait-leak", "client", present=False)]


SCENARIO = Scenario(
    name=NAME, seeds=("001", "002"),
    params=(Param("client", "buggy", "choice", choices=("buggy", "proper")),
            Param("keepalive_timeout", 1.0, "float", minimum=0, maximum=3600, unit="s"),
            fin_timeout("server", 3)),
    script=script, checks=checks, horizon=horizon,
    moments=("idle_closed", "end"))
