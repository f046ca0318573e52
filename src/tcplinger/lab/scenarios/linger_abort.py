"""linger-abort (seed 001's fix: SO_LINGER {1, 0}): close() with a zero
linger time aborts the connection: a RST instead of a FIN, no
FIN_WAIT2 and no TIME_WAIT on either side (tcp_close(): "sk->sk_lingertime
== 0 ... tcp_disconnect" path, net/ipv4/tcp.c; the peer's socket is reset
by tcp_reset()). With linger off, the closer ends in TIME_WAIT.
"""

from __future__ import annotations

from ..checks import Diagnosed, Fact, Held, Never, Reaches, Sent
from ...model.params import Param
from ..scenario import Scenario

NAME = "linger-abort"


def script(run) -> None:
    p = run.p
    closer = p["closer"]
    other = "client" if closer == "server" else "server"
    c = run.connect(request="GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
    names = {"client": c.client, "server": c.server}
    keys = {"client": c.client_key, "server": c.server_key}
    run.peer(other).call("watch", name=names[other], mode="close_on_eof")
    run.wait(0.3)
    if p["linger"]:
        run.peer(closer).call("setopt", name=names[closer], opts={"linger": [1, 0]})
    run.do(closer, "close", names[closer], key=keys[closer])
    run.wait_gone(other, keys[other], timeout=3)
    run.wait(0.5)
    run.facts["peer_error"] = next((n.field_dict().get("error") for n in run.notes
                                    if n.key == "lab.note.app_error" and n.party == other), None)


def horizon(p: dict) -> float:
    return 6.0


def checks(p: dict, tol) -> list:
    closer = p["closer"]
    other = "client" if closer == "server" else "server"
    if p["linger"]:
        return [Sent(closer, "R", most=1), Sent(closer, "F", least=0, most=0),
                Never(closer, "TIME_WAIT"), Never(other, "TIME_WAIT"),
                Never(closer, "FIN_WAIT1"), Never(closer, "FIN_WAIT2"),
                Never(other, "CLOSE_WAIT"),
                Fact("peer_error", "==", "ECONNRESET"),
                Diagnosed("orphan-fin-wait-2", present=False)]
    return [Sent(closer, "F"), Sent(closer, "R", least=0, most=0),
            Reaches(closer, "TIME_WAIT"), Never(other, "TIME_WAIT"),
            Held(closer, "TIME_WAIT", *tol.about(60), still_held=None, held_at_least=0.3)]


SCENARIO = Scenario(
    name=NAME, seeds=("001",),
    params=(Param("closer", "server", "choice", choices=("client", "server")),
            Param("linger", 1, "bool")),
    script=script, checks=checks, horizon=horizon, moments=("end",))
