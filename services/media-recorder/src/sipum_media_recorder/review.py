"""The caller's review after ``#`` ends a message: a sans-I/O state machine (digits and ``now``
in, actions out). The adapter is ``record.caller_review``.

Keys (Asterisk's ``VoiceMail`` review keys where they exist):

* ``1`` send: store the message as recorded;
* ``2`` listen: play back what was recorded, then offer the keys again (any key interrupts);
* ``3`` re-record: discard what was recorded, beep, record again;
* ``4`` urgent: mark it urgent and send it — only where the mailbox's ``urgent_allowed``
  setting says callers may (``urgent_allowed=False``: the offer leaves ``4`` out, prompt
  ``review-message-no-urgent``, and ``4`` is one of the other keys).

The offer ("To send your message, press 1 …") is repeated ``repeats`` times when nothing is
pressed for ``digit_timeout`` seconds after it; then the message is stored, as it is on a
hang-up at any point: a caller who recorded a message and goes away has left it. Other keys
(``#`` again, ``*``, ``0`` …) repeat the offer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

#: The keys the review acts on.
REVIEW_KEYS = "1234"
#: The keys without ``4`` (the mailbox does not allow urgent messages).
REVIEW_KEYS_NO_URGENT = "123"


@dataclass(frozen=True)
class PlayPrompts:
    """Play these prompts; keys in ``barge_in`` stop the play and count as pressed."""

    names: tuple[str, ...]
    barge_in: str = REVIEW_KEYS


@dataclass(frozen=True)
class PlayRecording:
    """Play back what the caller recorded."""

    barge_in: str = REVIEW_KEYS


@dataclass(frozen=True)
class Store:
    """Store the message (``urgent`` marked)."""

    urgent: bool


@dataclass(frozen=True)
class Rerecord:
    """Discard the recording; beep and record again."""


ReviewAction = PlayPrompts | PlayRecording | Store | Rerecord


class _State(Enum):
    OFFER = "offer"  # playing the keys
    WAIT = "wait"  # waiting for a key after them
    LISTEN = "listen"  # playing the recording back
    CLOSING = "closing"  # stored; saying so
    ENDED = "ended"


class CallerReview:
    def __init__(
        self, *, digit_timeout: float, repeats: int = 3, urgent_allowed: bool = True
    ) -> None:
        if digit_timeout <= 0 or repeats < 1:
            raise ValueError("digit_timeout must be positive and repeats at least 1")
        self.digit_timeout = digit_timeout
        self.repeats = repeats
        self.urgent_allowed = urgent_allowed
        self.keys = REVIEW_KEYS if urgent_allowed else REVIEW_KEYS_NO_URGENT
        """The keys offered (and barging in)."""
        self._state = _State.ENDED
        self._offers = 0
        self.deadline: float | None = None
        """When the wait for a key runs out (``timeout`` is due); None while playing."""
        self.urgent = False
        self.stored = False

    @property
    def ended(self) -> bool:
        return self._state is _State.ENDED

    @property
    def state(self) -> str:
        return self._state.value

    # -- inputs ------------------------------------------------------------------------------

    def start(self, now: float) -> list[ReviewAction]:
        self._offers = 0
        return self._offer(now)

    def play_finished(self, now: float) -> list[ReviewAction]:
        """The current play ran to its end."""
        if self._state is _State.OFFER:
            self._state = _State.WAIT
            self.deadline = now + self.digit_timeout
            return []
        if self._state is _State.LISTEN:
            self._offers = 0
            return self._offer(now)
        if self._state is _State.CLOSING:
            self._state = _State.ENDED
            self.deadline = None
        return []

    def digit(self, digit: str, now: float) -> list[ReviewAction]:
        """A key, during a play (barge-in) or while waiting."""
        if self._state not in (_State.OFFER, _State.WAIT, _State.LISTEN):
            return []
        if digit == "1":
            return self._store(now, urgent=False)
        if digit == "4" and self.urgent_allowed:
            return self._store(now, urgent=True)
        if digit == "2":
            self._state = _State.LISTEN
            self.deadline = None
            return [PlayRecording(barge_in=self.keys)]
        if digit == "3":
            self._state = _State.ENDED
            self.deadline = None
            return [Rerecord()]
        self._offers = 0
        return self._offer(now)

    def timeout(self, now: float) -> list[ReviewAction]:
        """The wait for a key ran out: offer again, or store once offered ``repeats`` times."""
        if self._state is not _State.WAIT:
            return []
        if self.deadline is not None and now < self.deadline:
            return []
        if self._offers >= self.repeats:
            return self._store(now, urgent=False)
        return self._offer(now)

    def hangup(self, now: float) -> list[ReviewAction]:
        """The caller hung up: the message is stored unless it already was (or is discarded)."""
        if self._state in (_State.OFFER, _State.WAIT, _State.LISTEN):
            self._state = _State.ENDED
            self.deadline = None
            self.stored = True
            return [Store(urgent=False)]
        self._state = _State.ENDED
        self.deadline = None
        return []

    # -- transitions -------------------------------------------------------------------------

    def _offer(self, now: float) -> list[ReviewAction]:
        self._state = _State.OFFER
        self._offers += 1
        self.deadline = None
        if self.urgent_allowed:
            return [PlayPrompts(("review-message",), barge_in=self.keys)]
        return [PlayPrompts(("review-message-no-urgent",), barge_in=self.keys)]

    def _store(self, now: float, *, urgent: bool) -> list[ReviewAction]:
        self._state = _State.CLOSING
        self.deadline = None
        self.urgent = urgent
        self.stored = True
        closing = (
            ("marked-urgent", "message-sent", "goodbye") if urgent else ("message-sent", "goodbye")
        )
        return [Store(urgent=urgent), PlayPrompts(closing, barge_in="")]
