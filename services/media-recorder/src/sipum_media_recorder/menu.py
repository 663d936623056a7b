"""The main voicemail menu (``sip:alice-retrieve@…``) as a sans-I/O state machine.

Digits and ``now`` in; what to do out: play these prompts / this envelope / this message from
this offset, mark this message heard, move it to that folder, hang up. No sockets, no database,
no clock: the adapter (``mainmenu``) plays, waits, writes and publishes, and tells the machine
what happened — the play ran to its end (:meth:`MailboxMenu.play_finished`), a digit arrived
(:meth:`MailboxMenu.digit`, with how far the interrupted play had got), or the wait for a digit
ran out (:meth:`MailboxMenu.timeout`, when ``now`` passed :attr:`MailboxMenu.deadline`).

The listening order: new messages (inbox, not heard) oldest first — those the caller marked
urgent before the others, and counted ("… 3 new messages, 1 urgent, and …") — then the saved ones (the
``saved`` folder and inbox messages heard before), oldest first; the trash is not offered. The
menu starts with "You have N new and M saved messages", then plays each message's **envelope**
("Message 1. [Urgent.] Received today at 9 oh 5 A M from 5 5 5 …", the time in the mailbox's
zone; a forwarded copy "… Forwarded message from alice" instead of the caller) and its audio, then the message menu. Keys (Asterisk VoiceMailMain's where they exist):

=====  ==============================================================================
key    during the envelope / the message / the message menu
=====  ==============================================================================
``4``  previous message ("This is the first message." on the first)
``5``  repeat the message (envelope and audio)
``6``  next message ("There are no more messages." + the end menu after the last)
``7``  delete: moved to the trash, "Message deleted.", next message; ``7`` again on a
       message deleted in this call (go back with ``4``) undeletes it
``9``  save: moved to ``saved``, "Message saved.", next message
``*``  during the audio: back 3 s; during the envelope: the envelope again
``#``  during the audio: forward 3 s (past the end: the message menu); during the
       envelope: straight to the audio; in the message menu: exit ("Goodbye.")
``1``  in the end menu: from the first message again
``8``  during the audio / in the message menu: forward the message to another mailbox of the
       same domain — type the mailbox's name on the keypad (letters as printed on the keys,
       ``alice`` = 2 5 4 2 3; digits as themselves) and ``#`` (``*`` cancels); then ``1``
       record a comment (after the beep, until ``#``) that goes before the message, ``2``
       send it without one, ``*`` cancel
``3``  during the audio: pause ("Paused."); ``3`` again resumes where it stopped, ``*`` /
       ``#`` resume 3 s earlier / later, the other keys act as in the message menu; a pause
       unanswered for ``pause_limit`` resumes by itself
``0``  mailbox options: ``1``–``4`` record the unavailable / busy / name / temporary
       greeting (after the beep, until ``#``; then ``1`` keep, ``2`` listen, ``3`` again,
       ``*`` cancel), ``5`` change the PIN (typed twice, each ending with ``#``; ``*``
       starts over; a malformed or trivial PIN is refused), ``*`` back
=====  ==============================================================================

A menu unanswered for ``digit_timeout`` is offered again, ``menu_repeats`` times in all; then
"Goodbye." and the call ends. A message is marked heard when its audio starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from typing import Literal

from sipum.security.passwords import WeakSecretError, check_pin_strength
from sipum_protocol.media import say

Folder = Literal["inbox", "saved", "trash"]
GreetingKind = Literal["unavailable", "busy", "name", "temporary"]
PlayKind = Literal[
    "intro", "envelope", "message", "menu", "goodbye", "record-prompt", "comment-prompt"
]
ForwardOutcome = Literal["forwarded", "no-mailbox", "full", "gone"]
SKIP_SECONDS = 3.0

#: The keys that mean something (and so interrupt) in each place; others wait in the queue.
ENVELOPE_KEYS = "045679*#"
MESSAGE_KEYS = "0345679*#8"
MENU_KEYS = "045679#8"
END_KEYS = "014#"
OPTION_KEYS = "12345*"
REVIEW_KEYS = "123*"
GREETING_KEYS: dict[str, GreetingKind] = {
    "1": "unavailable",
    "2": "busy",
    "3": "name",
    "4": "temporary",
}
PIN_KEYS = "0123456789*#"
MAX_PIN_DIGITS = 20
FORWARD_COMMENT_KEYS = "12*"
PAUSED_KEYS = "0345679*#8"
MAX_MAILBOX_DIGITS = 40
#: How long a paused message waits before it resumes by itself (seconds).
PAUSE_LIMIT = 60.0

Where = Literal[
    "message",
    "end",
    "options",
    "newpin",
    "newpin2",
    "review",
    "fwd-target",
    "fwd-comment",
    "paused",
]
_PROMPTS: dict[str, tuple[str, str]] = {
    "message": ("message-menu", MENU_KEYS),
    "end": ("end-menu", END_KEYS),
    "options": ("options-menu", OPTION_KEYS),
    "newpin": ("enter-new-pin", PIN_KEYS),
    "newpin2": ("reenter-new-pin", PIN_KEYS),
    "review": ("review-menu", REVIEW_KEYS),
    "fwd-target": ("forward-enter-mailbox", PIN_KEYS),
    "fwd-comment": ("forward-comment-menu", FORWARD_COMMENT_KEYS),
    "paused": ("message-paused", PAUSED_KEYS),
}

#: The phone keypad's letters (ITU-T E.161).
_KEYPAD = {
    letter: key
    for key, letters in {
        "2": "abc", "3": "def", "4": "ghi", "5": "jkl",
        "6": "mno", "7": "pqrs", "8": "tuv", "9": "wxyz",
    }.items()
    for letter in letters
}  # fmt: skip


def keypad_digits(username: str) -> str:
    """What the owner types for *username*: each ASCII letter as the key it is printed on, each
    digit as itself; anything else (``.``, ``-``, ``_``, other letters) is not typed."""
    return "".join(
        c if c.isascii() and c.isdigit() else _KEYPAD.get(c, "") for c in username.lower()
    )


def mailbox_directory(usernames: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Keypad digits → the usernames spelled so (several when two names share the keys)."""
    found: dict[str, list[str]] = {}
    for name in usernames:
        digits = keypad_digits(name)
        if digits:
            found.setdefault(digits, []).append(name)
    return {digits: tuple(sorted(names)) for digits, names in found.items()}


@dataclass(frozen=True, slots=True)
class Entry:
    """One message as the menu knows it (a snapshot taken when the call starts)."""

    id: int
    folder: Folder
    heard: bool
    caller_uri: str
    caller_display: str
    received_at: datetime
    duration_s: float
    urgent: bool = False
    """The caller marked it urgent: counted and played first among the new messages, and
    its envelope says so."""
    forwarded_from: str | None = None
    """A copy forwarded from another mailbox (``username@domain``): the envelope names it
    instead of the caller."""


# -- what the adapter is told to do --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spoken:
    """Free text said with the prompt voice (a caller's display name)."""

    text: str


@dataclass(frozen=True, slots=True)
class MessageAudio:
    """A stored message's audio from *offset* seconds."""

    message_id: int
    offset: float = 0.0


@dataclass(frozen=True, slots=True)
class RecordedGreeting:
    """The greeting just recorded (not saved yet), for the owner to listen to."""


Item = str | Spoken | MessageAudio | RecordedGreeting
"""A prompt name, free text, a message's audio, or the greeting just recorded."""


@dataclass(frozen=True, slots=True)
class Play:
    items: tuple[Item, ...]
    barge_in: str
    """Digits that interrupt this play (others wait in the queue)."""
    kind: PlayKind


@dataclass(frozen=True, slots=True)
class MarkHeard:
    message_id: int


@dataclass(frozen=True, slots=True)
class Move:
    message_id: int
    folder: Folder


@dataclass(frozen=True, slots=True)
class ChangePin:
    """Set the mailbox's PIN (checked already: well-formed, not trivial, typed twice)."""

    pin: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RecordGreeting:
    """Record the owner now (after the beep) until ``#``, silence or the greeting's maximum
    length; then tell the machine :meth:`MailboxMenu.greeting_recorded`."""

    kind: GreetingKind


@dataclass(frozen=True, slots=True)
class SaveGreeting:
    """Store the greeting just recorded as the mailbox's greeting of *kind* (replacing one
    uploaded on the web: they are the same objects)."""

    kind: GreetingKind


@dataclass(frozen=True, slots=True)
class RecordComment:
    """Record the owner's comment for a forward now (after the beep) until ``#`` or silence;
    then tell the machine :meth:`MailboxMenu.comment_recorded`."""


@dataclass(frozen=True, slots=True)
class Forward:
    """Store a copy of message *message_id* as a new message in *target*'s inbox (same domain),
    the comment just recorded first when *with_comment*; then tell the machine
    :meth:`MailboxMenu.forward_done`."""

    message_id: int
    target: str
    with_comment: bool


@dataclass(frozen=True, slots=True)
class Hangup:
    pass


Action = (
    Play
    | MarkHeard
    | Move
    | ChangePin
    | RecordGreeting
    | SaveGreeting
    | RecordComment
    | Forward
    | Hangup
)


# -- saying things ---------------------------------------------------------------------------

_NUMBER = re.compile(r"^\+?[0-9]{2,20}$")


def caller_user(uri: str) -> str:
    """The user part of ``sip:+4930123@host``, ``tel:+4930123``, ``"Bob" <sip:bob@x>`` ("" if
    none)."""
    text = uri.strip()
    if "<" in text:
        text = text.split("<", 1)[1].split(">", 1)[0]
    scheme, sep, rest = text.partition(":")
    if not sep or scheme.lower() not in ("sip", "sips", "tel"):
        return ""
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    if scheme.lower() == "tel":
        return rest
    user, at, _ = rest.rpartition("@")
    return user if at else ""


def caller_items(entry: Entry) -> list[Item]:
    """ "from" + the number spelled, else the display name, else "from an unknown caller"."""
    user = caller_user(entry.caller_uri)
    number = user.replace("-", "").replace(".", "")
    if _NUMBER.match(number):
        return ["from", *say.digits(number)]
    display = " ".join(entry.caller_display.split())
    if display and not _NUMBER.match(display.replace(" ", "")):
        return ["from", Spoken(display[:60])]
    if display:
        return ["from", *say.digits(display)]
    if user and user.lower() not in ("anonymous", "unknown", "restricted"):
        return ["from", Spoken(user[:60])]
    return ["from-unknown"]


def count_items(new: int, saved: int, urgent: int = 0) -> list[Item]:
    """ "You have N new messages[, U urgent,] and M saved messages." / "You have no
    messages."; *urgent* counts the new messages marked urgent."""
    if not new and not saved:
        return ["no-messages"]
    return [
        "you-have",
        *(say.number(new) if new else ["no"]),
        "count-new-message" if new == 1 else "count-new-messages",
        *([*say.number(urgent), "count-urgent"] if urgent else []),
        "and",
        *(say.number(saved) if saved else ["no"]),
        "count-saved-message" if saved == 1 else "count-saved-messages",
    ]


def forwarded_items(mailbox: str) -> list[Item]:
    """ "Forwarded message from <the mailbox's username>" (a number digit by digit, a name with
    the prompt voice; the domain is the owner's own and not said)."""
    username = mailbox.rpartition("@")[0] or mailbox
    if _NUMBER.match(username):
        return ["forwarded-from", *say.digits(username)]
    return ["forwarded-from", Spoken(username[:60])]


def envelope_items(position: int, entry: Entry, now: datetime, zone: tzinfo) -> list[Item]:
    """ "Message <n>. [Urgent.] Received <when> from <caller>." — for a forwarded copy "…
    Received <when>. Forwarded message from <mailbox>." instead of the caller."""
    return [
        "message",
        *say.number(position),
        *(["envelope-urgent"] if entry.urgent else []),
        "received",
        *say.when(entry.received_at, now, zone),
        *(forwarded_items(entry.forwarded_from) if entry.forwarded_from else caller_items(entry)),
    ]


def listening_order(entries: Sequence[Entry], *, newest_first: bool = False) -> list[Entry]:
    """New (inbox, unheard; the urgent ones first) then saved (the rest but the trash), each
    oldest first (or newest first with *newest_first*)."""

    def key(e: Entry) -> tuple[datetime, int]:
        return (e.received_at, e.id)

    new = sorted((e for e in entries if e.folder == "inbox" and not e.heard), key=key)
    rest = sorted(
        (e for e in entries if e.folder != "trash" and not (e.folder == "inbox" and not e.heard)),
        key=key,
    )
    if newest_first:
        new.reverse()
        rest.reverse()
    new.sort(key=lambda e: not e.urgent)  # stable: the order above within each group
    return new + rest


# -- the machine -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Playing:
    kind: PlayKind
    offset: float = 0.0  # for kind "message": where in the audio this play began


@dataclass(frozen=True, slots=True)
class _Waiting:
    where: Where
    deadline: datetime


class MailboxMenu:
    def __init__(
        self,
        entries: Sequence[Entry],
        *,
        zone: tzinfo,
        digit_timeout: float,
        menu_repeats: int,
        newest_first: bool = False,
        username: str | None = None,
        directory: Mapping[str, Sequence[str]] | None = None,
        pause_limit: float = PAUSE_LIMIT,
    ) -> None:
        self.messages = listening_order(entries, newest_first=newest_first)
        self.new_count = sum(1 for e in self.messages if e.folder == "inbox" and not e.heard)
        self.saved_count = len(self.messages) - self.new_count
        self.zone = zone
        self.digit_timeout = timedelta(seconds=digit_timeout)
        self.menu_repeats = menu_repeats
        self.index = 0
        self.original_folder: dict[int, Folder] = {}
        """Where a message deleted in this call came from (for undelete)."""
        self.state: _Playing | _Waiting | None = None
        self.menu_where: Where = "message"
        """Which menu the last menu prompt offered."""
        self.options_from: Literal["message", "end"] = "message"
        """Where ``*`` in the mailbox options goes back to."""
        self.username = username
        """For the trivial-PIN check (a PIN must not contain the mailbox number)."""
        self._typed = ""
        self._first_pin: str | None = None
        self.greeting_kind: GreetingKind | None = None
        """The greeting being recorded / reviewed."""
        self.unanswered = 0
        self.ended = False
        self.directory: Mapping[str, Sequence[str]] = directory or {}
        """The domain's mailboxes by their keypad spelling (``mailbox_directory``)."""
        self.pause_limit = timedelta(seconds=pause_limit)
        self._paused_at = 0.0
        """Where in the audio the paused message stopped."""
        self._forward_id: int | None = None
        self._forward_to: str | None = None

    # -- inputs ------------------------------------------------------------------------------

    def start(self, now: datetime) -> list[Action]:
        intro = count_items(
            self.new_count,
            self.saved_count,
            sum(1 for e in self.messages[: self.new_count] if e.urgent),
        )
        if not self.messages:
            return self._goodbye(prefix=intro)
        # the count, then the first envelope; a key during the count acts on message 1
        return self._envelope(now, prefix=intro)

    @property
    def deadline(self) -> datetime | None:
        """When :meth:`timeout` is due (None while something plays or after the end)."""
        return self.state.deadline if isinstance(self.state, _Waiting) else None

    @property
    def current(self) -> Entry | None:
        return self.messages[self.index] if self.messages else None

    def play_finished(self, now: datetime) -> list[Action]:
        """The last :class:`Play` ran to its end without a digit."""
        state = self.state
        if self.ended or not isinstance(state, _Playing):
            return []
        if state.kind == "goodbye":
            self.ended = True
            return [Hangup()]
        if state.kind == "record-prompt":
            assert self.greeting_kind is not None
            self.state = None  # recording: neither playing nor waiting for a key
            return [RecordGreeting(self.greeting_kind)]
        if state.kind == "comment-prompt":
            self.state = None
            return [RecordComment()]
        if state.kind in ("intro", "envelope"):
            return self._message(offset=0.0)
        if state.kind == "message":
            return self._message_menu(now)
        # a menu prompt: now wait for the answer
        return self._wait(now, self.menu_where)

    def timeout(self, now: datetime) -> list[Action]:
        state = self.state
        if self.ended or not isinstance(state, _Waiting) or now < state.deadline:
            return []
        if state.where == "paused":  # a pause left alone: go on playing
            return self._message(offset=self._paused_at, mark=False)
        self.unanswered += 1
        if self.unanswered >= self.menu_repeats:
            return self._goodbye()
        if state.where in ("newpin", "newpin2"):  # gave up typing the new PIN
            return self._menu_prompt("options")
        if state.where in ("fwd-target", "fwd-comment"):  # gave up forwarding
            self._forward_id = self._forward_to = None
            return self._menu_prompt("message")
        return self._menu_prompt(state.where)

    def digit(self, digit: str, now: datetime, *, position: float | None = None) -> list[Action]:
        """A key, during a play (*position*: seconds into it) or while waiting."""
        state = self.state
        if self.ended or state is None:
            return []
        if isinstance(state, _Playing) and state.kind == "goodbye":
            return []
        where = self._context_of(state)
        if where in ("newpin", "newpin2"):
            return self._pin_key(digit, now)
        if where == "review":
            return self._review_key(digit)
        if where == "options":
            return self._options_key(digit)
        if where == "fwd-target":
            return self._forward_target_key(digit, now)
        if where == "fwd-comment":
            return self._forward_comment_key(digit)
        if where == "paused" and digit in "3*#":
            return self._paused_key(digit, now)
        if digit == "3" and isinstance(state, _Playing) and state.kind == "message":
            self._paused_at = state.offset + (position or 0.0)
            return self._menu_prompt("paused")
        if digit == "0":
            self.unanswered = 0
            self.options_from = "end" if where == "end" else "message"
            return self._menu_prompt("options")
        if where == "end":
            return self._end_key(digit, now)
        if where == "envelope":
            if digit == "#":
                return self._message(offset=0.0)
            if digit == "*":
                return self._envelope(now)
        if digit in "*#" and isinstance(state, _Playing) and state.kind == "message":
            heard = state.offset + (position or 0.0)
            entry = self.messages[self.index]
            if digit == "*":
                return self._message(offset=max(0.0, heard - SKIP_SECONDS), mark=False)
            target = heard + SKIP_SECONDS
            if target >= entry.duration_s:
                return self._message_menu(now)
            return self._message(offset=target, mark=False)
        if digit == "#":  # in the message menu
            return self._goodbye()
        return self._message_key(digit, now)

    def greeting_recorded(self, now: datetime, seconds: float | None) -> list[Action]:
        """The recording asked for by :class:`RecordGreeting` ended: *seconds* of greeting, or
        None when there was too little voice to keep."""
        if self.ended or self.greeting_kind is None:
            return []
        if seconds is None:
            self.greeting_kind = None
            return self._menu_prompt("options", prefix=["greeting-not-recorded"])
        return self._menu_prompt("review")

    def comment_recorded(self, now: datetime, seconds: float | None) -> list[Action]:
        """The recording asked for by :class:`RecordComment` ended: *seconds* of comment, or
        None when there was too little voice (then the comment menu again)."""
        if self.ended or self._forward_id is None:
            return []
        if seconds is None:
            return self._menu_prompt("fwd-comment", prefix=["greeting-not-recorded"])
        return self._forward(with_comment=True)

    def forward_done(self, now: datetime, outcome: ForwardOutcome) -> list[Action]:
        """The :class:`Forward` was carried out (or could not be): say so, then the message
        menu."""
        if self.ended:
            return []
        said = {
            "forwarded": "message-forwarded",
            "no-mailbox": "no-such-mailbox",
            "full": "forward-mailbox-full",
            "gone": "forward-failed",
        }[outcome]
        return self._menu_prompt("message", prefix=[said])

    def interrupted_without_effect(self, now: datetime) -> list[Action]:
        """A play was stopped by a key that asked for nothing new: go on as if it had ended
        (the adapter calls this when :meth:`digit` returned nothing to do). A key that was
        taken (a PIN digit) has left the machine waiting: nothing to do then."""
        if isinstance(self.state, _Playing):
            return self.play_finished(now)
        return []

    # -- keys --------------------------------------------------------------------------------

    def _message_key(self, digit: str, now: datetime) -> list[Action]:
        if digit not in "456789":
            return []  # no meaning here: a wait keeps its deadline, the count goes on
        self.unanswered = 0
        entry = self.messages[self.index]
        if digit == "8":
            self._forward_id, self._forward_to = entry.id, None
            return self._menu_prompt("fwd-target")
        if digit == "4":
            if self.index == 0:
                return self._menu_prompt("message", prefix=["first-message"])
            self.index -= 1
            return self._envelope(now)
        if digit == "5":
            return self._envelope(now)
        if digit == "6":
            return self._next(now)
        if digit == "7":
            if entry.folder == "trash":
                folder = self.original_folder.pop(entry.id, "inbox")
                self._set_folder(folder)
                return [
                    Move(entry.id, folder),
                    *self._menu_prompt("message", prefix=["message-undeleted"]),
                ]
            self.original_folder[entry.id] = entry.folder
            self._set_folder("trash")
            return [Move(entry.id, "trash"), *self._next(now, prefix=["message-deleted"])]
        if digit == "9":
            actions: list[Action] = []
            if entry.folder != "saved":
                self.original_folder.pop(entry.id, None)
                self._set_folder("saved")
                actions.append(Move(entry.id, "saved"))
            return [*actions, *self._next(now, prefix=["message-saved"])]
        return []  # no meaning here: a wait keeps its deadline

    def _options_key(self, digit: str) -> list[Action]:
        if digit in GREETING_KEYS:
            self.unanswered = 0
            self.greeting_kind = GREETING_KEYS[digit]
            return self._record_prompt()
        if digit == "5":
            self.unanswered = 0
            return self._menu_prompt("newpin")
        if digit == "*":
            self.unanswered = 0
            return self._menu_prompt(self.options_from)
        return []

    def _record_prompt(self) -> list[Action]:
        self.state = _Playing("record-prompt")
        return [Play(("record-greeting", "beep"), "", "record-prompt")]

    def _review_key(self, digit: str) -> list[Action]:
        kind = self.greeting_kind
        if digit not in REVIEW_KEYS or kind is None:
            return []
        self.unanswered = 0
        if digit == "1":
            self.greeting_kind = None
            return [SaveGreeting(kind), *self._menu_prompt("options", prefix=["greeting-saved"])]
        if digit == "2":
            return self._menu_prompt("review", prefix=[RecordedGreeting()])
        if digit == "3":
            return self._record_prompt()
        self.greeting_kind = None  # "*": not kept
        return self._menu_prompt("options")

    def _pin_key(self, digit: str, now: datetime) -> list[Action]:
        """A key of a new PIN: digits, ``*`` starts over, ``#`` ends it."""
        self.unanswered = 0
        where = self.menu_where
        if digit == "#":
            typed, self._typed = self._typed, ""
            return self._pin_typed(typed, where)
        if digit == "*":
            self._typed = ""
        elif digit.isdigit() and len(self._typed) < MAX_PIN_DIGITS:
            self._typed += digit
        # the prompt stops at the first key; wait for the next one
        self.state = _Waiting(where, now + self.digit_timeout)
        return []

    def _pin_typed(self, typed: str, where: Where) -> list[Action]:
        if where == "newpin":
            try:
                check_pin_strength(typed, username=self.username)
            except WeakSecretError:
                return self._menu_prompt("newpin", prefix=["pin-not-accepted"])
            self._first_pin = typed
            return self._menu_prompt("newpin2")
        first, self._first_pin = self._first_pin, None
        if typed != first or first is None:
            return self._menu_prompt("newpin", prefix=["pins-differ"])
        return [ChangePin(first), *self._menu_prompt("options", prefix=["pin-changed"])]

    def _paused_key(self, digit: str, now: datetime) -> list[Action]:
        """``3`` resumes where the audio stopped, ``*`` / ``#`` 3 s earlier / later."""
        self.unanswered = 0
        at = self._paused_at
        if digit == "*":
            at = max(0.0, at - SKIP_SECONDS)
        elif digit == "#":
            at += SKIP_SECONDS
            if at >= self.messages[self.index].duration_s:
                return self._message_menu(now)
        return self._message(offset=at, mark=False)

    def _forward_target_key(self, digit: str, now: datetime) -> list[Action]:
        """A key of the target mailbox: digits, ``#`` ends it, ``*`` cancels the forward."""
        self.unanswered = 0
        if digit == "*":
            self._forward_id = self._forward_to = None
            self._typed = ""
            return self._menu_prompt("message")
        if digit == "#":
            typed, self._typed = self._typed, ""
            matches = self.directory.get(typed, ())
            if len(matches) != 1 and typed in matches:
                matches = (typed,)  # a numeric username typed as itself wins
            if len(matches) != 1:
                self._forward_id = None
                said = "no-such-mailbox" if not matches else "mailbox-ambiguous"
                return self._menu_prompt("message", prefix=[said])
            self._forward_to = matches[0]
            return self._menu_prompt("fwd-comment", prefix=["forward-to", Spoken(matches[0][:60])])
        if digit.isdigit() and len(self._typed) < MAX_MAILBOX_DIGITS:
            self._typed += digit
        self.state = _Waiting("fwd-target", now + self.digit_timeout)
        return []

    def _forward_comment_key(self, digit: str) -> list[Action]:
        if digit not in FORWARD_COMMENT_KEYS or self._forward_id is None:
            return []
        self.unanswered = 0
        if digit == "1":
            self.state = _Playing("comment-prompt")
            return [Play(("record-comment", "beep"), "", "comment-prompt")]
        if digit == "2":
            return self._forward(with_comment=False)
        self._forward_id = self._forward_to = None  # "*": not forwarded
        return self._menu_prompt("message")

    def _forward(self, *, with_comment: bool) -> list[Action]:
        """The Forward; the adapter answers with :meth:`forward_done` (nothing plays
        meanwhile)."""
        message_id, target = self._forward_id, self._forward_to
        assert message_id is not None and target is not None
        self._forward_id = self._forward_to = None
        self.state = None
        return [Forward(message_id, target, with_comment)]

    def _end_key(self, digit: str, now: datetime) -> list[Action]:
        if digit not in END_KEYS:
            return []
        self.unanswered = 0
        if digit == "1":
            self.index = 0
            return self._envelope(now)
        if digit == "4":
            return self._envelope(now)  # the last message again
        if digit == "#":
            return self._goodbye()
        return []

    # -- transitions -------------------------------------------------------------------------

    def _set_folder(self, folder: Folder) -> None:
        self.messages[self.index] = replace(self.messages[self.index], folder=folder)

    def _next(self, now: datetime, prefix: Sequence[Item] = ()) -> list[Action]:
        if self.index + 1 < len(self.messages):
            self.index += 1
            return self._envelope(now, prefix=prefix)
        return self._menu_prompt("end", prefix=[*prefix, "no-more-messages"])

    def _envelope(self, now: datetime, prefix: Sequence[Item] = ()) -> list[Action]:
        entry = self.messages[self.index]
        items = [*prefix, *envelope_items(self.index + 1, entry, now, self.zone)]
        self.state = _Playing("envelope")
        return [Play(tuple(items), ENVELOPE_KEYS, "envelope")]

    def _message(self, *, offset: float, mark: bool = True) -> list[Action]:
        entry = self.messages[self.index]
        actions: list[Action] = []
        if mark and not entry.heard and entry.folder != "trash":
            self.messages[self.index] = replace(entry, heard=True)
            actions.append(MarkHeard(entry.id))
        self.state = _Playing("message", offset)
        actions.append(Play((MessageAudio(entry.id, offset),), MESSAGE_KEYS, "message"))
        return actions

    def _message_menu(self, now: datetime) -> list[Action]:
        return self._menu_prompt("message")

    def _menu_prompt(self, where: Where, prefix: Sequence[Item] = ()) -> list[Action]:
        self.state = _Playing("menu")
        self.menu_where = where
        if where in ("newpin", "newpin2", "fwd-target"):
            self._typed = ""
        name, keys = _PROMPTS[where]
        return [Play((*prefix, name), keys, "menu")]

    def _wait(self, now: datetime, where: Where) -> list[Action]:
        limit = self.pause_limit if where == "paused" else self.digit_timeout
        self.state = _Waiting(where, now + limit)
        return []

    def _goodbye(self, prefix: Sequence[Item] = ()) -> list[Action]:
        self.state = _Playing("goodbye")
        return [Play((*prefix, "goodbye"), "", "goodbye")]

    # -- where are we ------------------------------------------------------------------------

    def _context_of(self, state: _Playing | _Waiting) -> Where | Literal["envelope"]:
        if isinstance(state, _Waiting):
            return state.where
        if state.kind == "envelope" or state.kind == "intro":
            return "envelope"
        if state.kind == "menu":
            return self.menu_where
        return "message"
