"""Message summary bodies of the ``message-summary`` event package (RFC 3842), sans-I/O.

A NOTIFY of the package carries ``application/simple-message-summary`` (RFC 3842 §5.2)::

    Messages-Waiting: yes
    Message-Account: sip:alice@example.com
    Voice-Message: 2/8 (0/2)

``Messages-Waiting`` is ``yes`` when at least one message is new (§5.2: "the summary line");
``Voice-Message`` gives new/old counts and, in parentheses, the urgent new/old counts
(§5.2, the message-context-class ``voice-message`` of RFC 3458). We only produce voice
messages; the parser also keeps other message classes and optional message headers it meets
(a phone may log them), and skips the rest.

The parser is bounded (``MAX_BODY`` bytes, ``MAX_LINES`` lines) and raises
``MessageSummaryError`` with the line at fault for anything it cannot read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "CONTENT_TYPE",
    "EVENT_PACKAGE",
    "MAX_BODY",
    "MessageCounts",
    "MessageSummary",
    "MessageSummaryError",
    "build_summary",
    "parse_summary",
]

EVENT_PACKAGE = "message-summary"
"""RFC 3842 §3.1: the value of ``Event`` / ``Allow-Events``."""
CONTENT_TYPE = "application/simple-message-summary"
"""RFC 3842 §3.5, §5: the body type of NOTIFY."""
MAX_BODY = 4096
"""Bytes; a summary is a handful of short lines."""
MAX_LINES = 64
MAX_COUNT = 2**31 - 1

# RFC 3842 §5.2 / RFC 3458 §6.2: the message-context-class values.
MESSAGE_CLASSES = (
    "voice-message",
    "fax-message",
    "pager-message",
    "multimedia-message",
    "text-message",
    "none",
)

_COUNTS = re.compile(
    r"^\s*(\d{1,10})\s*/\s*(\d{1,10})\s*(?:\(\s*(\d{1,10})\s*/\s*(\d{1,10})\s*\))?\s*$"
)


class MessageSummaryError(ValueError):
    """A message summary body we cannot read (or values we cannot write)."""


@dataclass(frozen=True, slots=True)
class MessageCounts:
    """new/old messages, and the urgent ones among them (RFC 3842 §5.2)."""

    new: int = 0
    old: int = 0
    urgent_new: int = 0
    urgent_old: int = 0

    def __post_init__(self) -> None:
        for name in ("new", "old", "urgent_new", "urgent_old"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
                raise MessageSummaryError(
                    f"{name} must be an integer 0..{MAX_COUNT}, not {value!r}"
                )

    def line(self) -> str:
        return f"{self.new}/{self.old} ({self.urgent_new}/{self.urgent_old})"


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """One ``application/simple-message-summary`` body."""

    waiting: bool
    account: str | None = None
    """``Message-Account`` (§5.2: the account the summary is for), a SIP URI."""
    voice: MessageCounts | None = None
    others: dict[str, MessageCounts] = field(default_factory=dict)
    """Other message classes (``fax-message`` ...) read from a body."""

    @classmethod
    def for_voice(
        cls, account: str, new: int, old: int, urgent_new: int = 0, urgent_old: int = 0
    ) -> MessageSummary:
        """What we send: ``Messages-Waiting`` says whether anything is new."""
        counts = MessageCounts(new, old, urgent_new, urgent_old)
        return cls(waiting=new > 0, account=account, voice=counts)


def _check_text(name: str, value: str) -> str:
    if any(c in value for c in "\r\n\0") or len(value) > 512:
        raise MessageSummaryError(f"{name} must be one short line")
    return value


def build_summary(summary: MessageSummary) -> bytes:
    """The body (CRLF lines, RFC 3842 §5.2 order: status line, account, then the counts)."""
    lines = [f"Messages-Waiting: {'yes' if summary.waiting else 'no'}"]
    if summary.account is not None:
        lines.append(f"Message-Account: {_check_text('account', summary.account)}")
    if summary.voice is not None:
        lines.append(f"Voice-Message: {summary.voice.line()}")
    for name, counts in summary.others.items():
        if name.lower() not in MESSAGE_CLASSES or name.lower() == "voice-message":
            raise MessageSummaryError(f"unknown message class {name!r}")
        lines.append(f"{name.title()}: {counts.line()}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def parse_summary(body: bytes) -> MessageSummary:
    """Read a body; raise ``MessageSummaryError`` saying what is wrong."""
    if len(body) > MAX_BODY:
        raise MessageSummaryError(f"message summary longer than {MAX_BODY} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageSummaryError("message summary is not UTF-8") from exc
    lines = text.replace("\r\n", "\n").split("\n")
    if len(lines) > MAX_LINES:
        raise MessageSummaryError(f"message summary has more than {MAX_LINES} lines")
    waiting: bool | None = None
    account: str | None = None
    voice: MessageCounts | None = None
    others: dict[str, MessageCounts] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            # §5.2: an empty line ends the summary; optional message headers (RFC 3458) follow.
            if waiting is not None:
                break
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise MessageSummaryError(f"line {number}: no ':' in {line[:40]!r}")
        key = name.strip().lower()
        value = value.strip()
        if key == "messages-waiting":
            if value.lower() not in ("yes", "no"):
                raise MessageSummaryError(f"line {number}: Messages-Waiting must be yes or no")
            waiting = value.lower() == "yes"
        elif waiting is None:
            raise MessageSummaryError(f"line {number}: the body must start with Messages-Waiting")
        elif key == "message-account":
            account = value
        elif key in MESSAGE_CLASSES:
            match = _COUNTS.match(value)
            if match is None:
                raise MessageSummaryError(
                    f"line {number}: counts must read new/old (urgent_new/urgent_old)"
                )
            new, old, unew, uold = (int(g) if g is not None else 0 for g in match.groups())
            counts = MessageCounts(new, old, unew, uold)
            if key == "voice-message":
                voice = counts
            else:
                others[key] = counts
        # other headers (extensions) are ignored, as §5.2 allows
    if waiting is None:
        raise MessageSummaryError("no Messages-Waiting line")
    return MessageSummary(waiting=waiting, account=account, voice=voice, others=others)
