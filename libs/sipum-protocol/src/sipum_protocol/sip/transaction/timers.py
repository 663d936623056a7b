"""Timer values of RFC 3261 §17 (table 4 in Appendix A) and RFC 6026, all derived from T1/T2/T4.

Durations are seconds (floats). A value of 0 for D/I/J/K on reliable transports follows §17:
those timers only exist to absorb retransmissions, which reliable transports do not make.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """T1 (RTT estimate), T2 (max retransmit interval for non-INVITE requests and INVITE
    responses), T4 (max time a message stays in the network); all configurable (§17.1.1.1
    allows a larger T1 on high-latency networks and a smaller one when the RTT is known)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    trying_delay: float = 0.1
    """§17.2.1: an INVITE server transaction sends ``100 Trying`` unless the TU answers within
    200 ms; we wait this long for the TU before sending it ourselves."""
    timer_d: float = 32.0
    """Timer D (unreliable): "at least 32 seconds" (§17.1.1.2)."""

    def __post_init__(self) -> None:
        if not (0 < self.t1 <= self.t2):
            raise ValueError("timers need 0 < T1 <= T2")
        if self.t4 <= 0 or self.trying_delay < 0 or self.timer_d < 0:
            raise ValueError("T4 must be positive, trying_delay and timer D non-negative")

    @property
    def timeout(self) -> float:
        """64*T1: timers B, F, H, J (unreliable), L, M."""
        return 64 * self.t1
