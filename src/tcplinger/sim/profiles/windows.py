"""Windows (the TCP/IP stack of Windows 2000 to Server 2003 as documented
in the Microsoft Knowledge Base and TechNet; later versions kept the
registry values).

* TIME_WAIT lasts ``TcpTimedWaitDelay`` (TechNet "TcpTimedWaitDelay":
  30-300 s, 240 s on Windows 2000, 120 s from Windows Server 2003).
* FIN_WAIT_2 is closed by force after ``TcpFinWait2Delay`` -- also when
  the application only called shutdown(SD_SEND) and still holds the
  socket (KB 813056: at most 300 s; KB 923200: two minutes on Windows
  Server 2003, configurable from 30 to 300 s with TcpFinWait2Delay).
  The timer restarts when an acceptable segment arrives (the TCP chimney
  offload specification of the same stack, "FIN_WAIT_2 Timer"). After the
  close the stack answers further segments with RST (KB 923200).
* Keepalives only with SO_KEEPALIVE: ``KeepAliveTime`` idle (7200 s), then
  a probe every ``KeepAliveInterval`` (1 s), 10 probes (TcpMaxDataRetransmissions
  before Vista; fixed at 10 since).
* Retransmission: doubling from the RTO, at most ``TcpMaxDataRetransmissions``
  (5) retransmissions, then reset.
"""

from __future__ import annotations

from ..num import truth
from ...model.params import Param
from . import Profile
from .classic import FIN_WAIT2, ClassicEndpoint

_TN = "TechNet, TCP/IP registry values (HKLM\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters)"

PARAMS = (
    Param("TcpTimedWaitDelay", 120.0, "seconds", "TIME_WAIT duration (30-300 s)",
          _TN + ": TcpTimedWaitDelay", minimum=0, maximum=300),
    Param("TcpFinWait2Delay", 120.0, "seconds",
          "FIN_WAIT_2 is closed by force after this (also after shutdown(SD_SEND))",
          "KB 923200 (two minutes on Windows Server 2003; 30-300 s); KB 813056 (300 s)",
          minimum=30, maximum=300),
    Param("fin_wait_2_restart", 1, "bool",
          "an acceptable segment restarts the FIN_WAIT_2 timer",
          "Windows Driver Kit, TCP chimney offload: FIN_WAIT_2 Timer"),
    Param("KeepAliveTime", 7200.0, "seconds", "idle time before the first keepalive probe",
          _TN + ": KeepAliveTime", minimum=1),
    Param("KeepAliveInterval", 1.0, "seconds", "interval between unanswered probes",
          _TN + ": KeepAliveInterval", minimum=0.001),
    Param("keepalive_probes", 10, "count", "probes before the connection is reset",
          "Windows Vista and later: 10, not configurable (SIO_KEEPALIVE_VALS docs)", minimum=1),
    Param("TcpMaxDataRetransmissions", 5, "count", "retransmissions before giving up",
          _TN + ": TcpMaxDataRetransmissions", minimum=0),
    Param("rto_min", 0.3, "seconds", "minimum RTO (MinRto)", "netsh interface tcp (MinRto)",
          minimum=0.01),
    Param("rto_slop", 0.0, "seconds", "added to the RTT for the RTO", "model choice", minimum=0),
    Param("rto_max", 60.0, "seconds", "RTO cap", "model choice", minimum=0.1),
    Param("rto_syn", 3.0, "seconds", "initial RTO of the SYN",
          _TN + ": TcpInitialRtt / InitialRto", minimum=0.01),
)
SOCKET = (
    Param("so_keepalive", 0, "bool", "SO_KEEPALIVE", "setsockopt (Winsock)"),
)


class WindowsEndpoint(ClassicEndpoint):
    profile = "windows"

    def max_retries(self):
        return self.p.TcpMaxDataRetransmissions

    def keep_idle(self):
        return self.p.KeepAliveTime

    def keep_intvl(self):
        return self.p.KeepAliveInterval

    def keep_count(self):
        return self.p.keepalive_probes

    def time_wait_s(self):
        return self.p.TcpTimedWaitDelay

    def on_fin_acked(self, seg):
        self.timer("fw2", self.p.TcpFinWait2Delay, self.fw2_expire)

    def on_segment(self, seg):
        super().on_segment(seg)
        if self.state == FIN_WAIT2 and truth(self.p.fin_wait_2_restart != 0) \
                and "fw2" in self.timers and self.timers["fw2"].active:
            self.timer("fw2", self.p.TcpFinWait2Delay, self.fw2_expire)

    def on_close(self):
        if self.state == FIN_WAIT2:
            self.set_state(FIN_WAIT2)  # an orphan now; the timer already runs
            return
        super().on_close()


PROFILES = (
    Profile("windows", "Windows TCP/IP (2000 to Server 2003 documentation)", PARAMS, SOCKET,
            WindowsEndpoint, ("KB 813056", "KB 923200", _TN)),
)
