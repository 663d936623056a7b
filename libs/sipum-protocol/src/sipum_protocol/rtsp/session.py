"""RTSP session state (RFC 2326 Appendix A.2) and the ``Range`` header (§3.6, §12.29).

The whole state machine is the table below: (state, method) → new state. A method that is not
in the table for the current state is answered with 455 Method Not Valid in This State.
OPTIONS, DESCRIBE and GET_PARAMETER never change state and need no session (GET_PARAMETER
with a ``Session`` header refreshes it: it is how ffmpeg keeps a session alive).
"""

from __future__ import annotations

import enum
import re
import secrets
from dataclasses import dataclass, field

from sipum_protocol.rtsp.transport import TransportSpec


class State(enum.Enum):
    INIT = "init"
    READY = "ready"
    PLAYING = "playing"


TRANSITIONS: dict[tuple[State, str], State] = {
    (State.INIT, "SETUP"): State.READY,
    (State.INIT, "TEARDOWN"): State.INIT,
    (State.READY, "SETUP"): State.READY,
    (State.READY, "PLAY"): State.PLAYING,
    (State.READY, "PAUSE"): State.READY,
    (State.READY, "TEARDOWN"): State.INIT,
    (State.PLAYING, "PLAY"): State.PLAYING,
    (State.PLAYING, "PAUSE"): State.READY,
    (State.PLAYING, "TEARDOWN"): State.INIT,
}


class InvalidState(Exception):
    """The method is not valid in the session's state (→ 455)."""


class InvalidRange(ValueError):
    """A ``Range`` that cannot be served (→ 457 Invalid Range)."""


_CLOCK = re.compile(r"^(\d+):([0-5]?\d):([0-5]?\d(?:\.\d*)?)$")


def _npt_time(text: str) -> float:
    """npt-sec (``12.5``) or npt-hhmmss (``0:00:12.5``), RFC 2326 §3.6."""
    match = _CLOCK.match(text)
    if match:
        return int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])
    try:
        value = float(text)
    except ValueError:
        raise InvalidRange(f"malformed npt time {text!r}") from None
    if value < 0 or value != value or value == float("inf"):
        raise InvalidRange(f"npt time out of range {text!r}")
    return value


def parse_npt_range(header: str | None, duration: float) -> tuple[float | None, float]:
    """``Range: npt=<start>-[<end>]`` → (start or None for "resume", end).

    ``None`` means the header was absent: resume from the paused position (§10.5).
    ``now`` as a start means the same. Other units (smpte, clock) are refused.
    """
    if header is None:
        return None, duration
    value = header.split(";", 1)[0].strip()
    unit, sep, spec = value.partition("=")
    if unit.strip().lower() != "npt" or not sep:
        raise InvalidRange(f"only npt ranges are supported, got {header!r}")
    start_text, dash, end_text = spec.strip().partition("-")
    if not dash:
        raise InvalidRange(f"malformed range {header!r}")
    start = None if start_text.strip() in ("now", "") else _npt_time(start_text.strip())
    end = _npt_time(end_text.strip()) if end_text.strip() else duration
    end = min(end, duration)
    if start is not None and (start > duration or start > end):
        raise InvalidRange(f"range {header!r} outside 0-{duration:.3f}")
    return start, end


@dataclass
class RtspSession:
    """One client session: its id, chosen transport, state and playback position."""

    url: str
    transport: TransportSpec
    timeout: int = 60
    id: str = field(default_factory=lambda: secrets.token_hex(8).upper())
    ssrc: int = field(default_factory=lambda: secrets.randbits(32))
    state: State = State.INIT
    position: float = 0.0
    last_seen: float = field(kw_only=True)
    """When the client last kept the session alive (a request or an RTCP report)."""

    def apply(self, method: str) -> State:
        """Move the state machine; raises :class:`InvalidState` for a method out of place."""
        try:
            self.state = TRANSITIONS[(self.state, method)]
        except KeyError:
            raise InvalidState(f"{method} not valid in state {self.state.value}") from None
        return self.state

    def touch(self, now: float) -> None:
        self.last_seen = now

    def expired(self, now: float) -> bool:
        """No request for longer than the advertised timeout (§12.37)."""
        return now - self.last_seen > self.timeout

    @property
    def header(self) -> str:
        """The ``Session`` header value of responses."""
        return f"{self.id};timeout={self.timeout}"
