"""Mailbox limits for a new message: is there room at all, and how long may it be?

Pure functions (no I/O): the record flow reads the numbers from the database
(``users.effective_settings``, ``messages.usage`` → ``MailboxUsage``) and asks here.

* **Full**: the mailbox holds ``max_messages`` messages or ``quota_bytes`` bytes (the stored
  WAVs' ``size_bytes``). Every folder counts, the trash too: its audio is still stored until it
  is deleted for good, so emptying the trash is how a user makes room.
* **Length**: the user's effective ``max_message_seconds``, lowered by the request's
  ``max_duration_s``, and lowered to what the quota still holds in the stored format — a WAV of
  16-bit mono PCM at the codec's audio rate: 44 header bytes plus 2 × rate bytes a second. So a
  message never takes the mailbox past its quota, except that a caller always gets at least
  ``min_seconds`` (the setting ``quota_min_message_seconds``) when the mailbox is not full: a
  mailbox that is just short of its quota may end up that much audio over it (5 s at 8 kHz is
  80 kB). Calls recorded at the same time are each limited by what was free when they began,
  so concurrent messages can together pass the quota by their combined length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sipum.db.messages import MailboxUsage

#: Bytes of the canonical RIFF/WAVE header of a stored message (``sipum_protocol.media.recording``).
WAV_HEADER_BYTES = 44
#: Bytes per sample of the stored format (16-bit mono PCM).
BYTES_PER_SAMPLE = 2

#: Used when the user has no effective settings (cannot happen for an existing user; the
#: domain column's default).
DEFAULT_MAX_MESSAGE_SECONDS = 180.0


FullBecause = Literal["messages", "bytes"]


def full_because(usage: MailboxUsage) -> FullBecause | None:
    """Why the mailbox can take no message: ``messages`` (count limit reached), ``bytes``
    (quota used up); None if it has room."""
    if usage.messages >= usage.max_messages:
        return "messages"
    if usage.bytes >= usage.quota_bytes:
        return "bytes"
    return None


def seconds_that_fit(remaining_bytes: int, sample_rate: int) -> float:
    """Length of the longest stored WAV at *sample_rate* whose size is at most
    *remaining_bytes* (whole samples, so the recording engine's ``round(seconds × rate)`` gives
    exactly that many)."""
    samples = max(0, remaining_bytes - WAV_HEADER_BYTES) // BYTES_PER_SAMPLE
    return samples / sample_rate


@dataclass(frozen=True, slots=True)
class LengthLimit:
    seconds: float
    """The recording's maximum length."""
    by_quota: bool
    """The quota made it shorter than the other limits."""


def max_recording_length(
    *,
    max_message_seconds: float,
    usage: MailboxUsage | None,
    sample_rate: int,
    request_max_seconds: float | None = None,
    min_seconds: float = 5.0,
) -> LengthLimit:
    """The maximum length of a message recorded now (see the module's rules).

    *usage* None: no quota to apply (only the length limits). The result is at least 1 s,
    as before quotas were applied (the recording engine needs a positive length)."""
    limit = float(max_message_seconds)
    if request_max_seconds:
        limit = min(limit, request_max_seconds)
    limit = max(limit, 1.0)
    if usage is None:
        return LengthLimit(limit, False)
    fit = seconds_that_fit(usage.quota_bytes - usage.bytes, sample_rate)
    quota_limit = max(fit, min_seconds)
    if quota_limit < limit:
        return LengthLimit(quota_limit, True)
    return LengthLimit(limit, False)
