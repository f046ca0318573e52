"""fin-wait-1-stuck: we sent our FIN and it is not acknowledged.

Shared logic and the measurements behind it: rules/_unacked_fin.py.
"""

from __future__ import annotations

from ...model.states import TcpState
from ..metadata import BY_ID
from ._unacked_fin import UnackedFin, evaluate_state

META = BY_ID["fin-wait-1-stuck"]


class FinWait1Stuck(UnackedFin):
    meta = META


def evaluate(ctx, th, world, limit):
    return evaluate_state(FinWait1Stuck, int(TcpState.FIN_WAIT1), ctx, th, world, limit)
