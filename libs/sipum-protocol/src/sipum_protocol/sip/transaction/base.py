"""What every transaction shares: its state, its named timers and its link to the layer.

A transaction never touches a socket or a clock. It is driven by three kinds of input — a
message from the peer, a message from the TU, a timer that is due — and its output goes to the
layer's queues (``_send`` for bytes, ``_emit`` for events). Timers are kept as
``{letter: deadline}``; the layer asks for the earliest (``deadline``) and calls
``on_timer(now)`` when it is due.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from sipum_protocol.sip.transaction.timers import TimerConfig

if TYPE_CHECKING:
    from sipum_protocol.sip.transaction.events import Event, Peer


class TransactionState(enum.Enum):
    """States of RFC 3261 §17 figures 5-8, plus Accepted from RFC 6026."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class TransactionStateError(RuntimeError):
    """The TU asked for something the transaction's state does not allow (e.g. a second final
    response, or a response after the CANCEL's 487)."""


class Output:
    """Where transactions put what they produce; implemented by ``TransactionLayer``."""

    def _send(self, data: bytes, peer: Peer) -> None:
        raise NotImplementedError

    def _emit(self, event: Event) -> None:
        raise NotImplementedError


class Transaction:
    """Base of the four transaction kinds."""

    __slots__ = (
        "_out",
        "config",
        "peer",
        "key",
        "state",
        "timers",
        "_heap_deadline",
        "retransmissions",
    )

    def __init__(self, out: Output, config: TimerConfig, peer: Peer, key: tuple[object, ...]):
        self._out = out
        self.config = config
        self.peer = peer
        """The remote side: destination of a client transaction, source of a server one."""
        self.key = key
        """Matching key in the layer (RFC 3261 §17.1.3 / §17.2.3)."""
        self.state = TransactionState.TRYING
        self.timers: dict[str, float] = {}
        """Running timers: letter -> absolute deadline."""
        self._heap_deadline: float | None = None  # owned by the layer's timer heap
        self.retransmissions = 0
        """How many times this transaction re-sent a message (request or response)."""

    @property
    def terminated(self) -> bool:
        return self.state is TransactionState.TERMINATED

    @property
    def reliable(self) -> bool:
        return self.peer.reliable

    def deadline(self) -> float | None:
        """The earliest running timer, or ``None``."""
        return min(self.timers.values()) if self.timers else None

    def on_timer(self, now: float) -> None:
        """Fire every timer that is due, earliest first."""
        while self.timers and not self.terminated:
            letter, when = min(self.timers.items(), key=lambda item: item[1])
            if when > now:
                return
            del self.timers[letter]
            self._fire(letter, now)

    def _fire(self, letter: str, now: float) -> None:
        raise NotImplementedError

    def _terminate(self) -> None:
        from sipum_protocol.sip.transaction.events import TransactionTerminated

        self.state = TransactionState.TERMINATED
        self.timers.clear()
        self._emit(TransactionTerminated(self))  # type: ignore[arg-type]

    def _send(self, data: bytes) -> None:
        self._out._send(data, self.peer)

    def _emit(self, event: Event) -> None:
        self._out._emit(event)

    def transport_failed(self) -> None:
        """The transport could not deliver our message (§17.1.4 / §17.2.4)."""
        from sipum_protocol.sip.transaction.events import TransportError

        if self.terminated:
            return
        self._emit(TransportError(self, self.peer))  # type: ignore[arg-type]
        self._terminate()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key!r} {self.state.value}>"
