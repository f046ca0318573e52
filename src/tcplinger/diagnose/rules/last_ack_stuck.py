"""last-ack-stuck: the peer closed, we closed too, and our FIN is not
acknowledged.

Measured on Linux 6.18 through a router namespace whose conntrack forgot
the flow (nf_conntrack_tcp_timeout_close_wait = 5 s, ``ct state invalid
drop``): the server's FIN sent 7 s after the client's was dropped as
INVALID (6 packets on the drop counter within 3 s); the server sat in
LAST_ACK retransmitting, the client in FIN_WAIT2. Shared logic:
rules/_unacked_fin.py.
"""

from __future__ import annotations

from ...model.states import TcpState
from ..metadata import BY_ID
from ._unacked_fin import UnackedFin, evaluate_state

META = BY_ID["last-ack-stuck"]


class LastAckStuck(UnackedFin):
    meta = META


def evaluate(ctx, th, world, limit):
    return evaluate_state(LastAckStuck, int(TcpState.LAST_ACK), ctx, th, world, limit)
