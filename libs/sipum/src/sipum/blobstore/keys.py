"""Blob keys: the one place that decides where a message or greeting lives.

Deterministic (same inputs, same key — an upload retried after a crash overwrites instead of
duplicating) and validated (anything that could escape a directory or confuse S3 raises
``ValueError``). The domain is lower-cased (DNS names are case-insensitive); the user part is
kept as given (SIP user parts are case-sensitive, RFC 3261 §19.1.4).

    messages/<domain>/<username>/<message_id>.<ext>
    greetings/<domain>/<username>/<kind>.<ext>
    partial/<session_id>.<ext>          (a recording in progress; see media-recorder)
"""

from __future__ import annotations

import re

from sipum.blobstore.base import validate_key

GREETING_KINDS = ("unavailable", "busy", "name", "temporary")

_DOMAIN = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)
_USERNAME = re.compile(r"[A-Za-z0-9_+=~\-][A-Za-z0-9_+=~.\-]{0,127}")
_EXT = re.compile(r"[a-z0-9]{1,8}")
_SESSION = re.compile(r"[A-Za-z0-9_\-]{1,128}")


def _domain(domain: str) -> str:
    d = domain.lower()
    if not _DOMAIN.fullmatch(d):
        raise ValueError(f"invalid domain for a blob key: {domain!r}")
    return d


def _username(username: str) -> str:
    if not _USERNAME.fullmatch(username):
        raise ValueError(f"invalid username for a blob key: {username!r}")
    return username


def _ext(ext: str) -> str:
    if not _EXT.fullmatch(ext):
        raise ValueError(f"invalid file extension: {ext!r}")
    return ext


def message_key(domain: str, username: str, message_id: int, ext: str = "wav") -> str:
    if isinstance(message_id, bool) or not isinstance(message_id, int) or message_id <= 0:
        raise ValueError(f"message id must be a positive integer, not {message_id!r}")
    return validate_key(
        f"messages/{_domain(domain)}/{_username(username)}/{message_id}.{_ext(ext)}"
    )


def greeting_key(domain: str, username: str, kind: str, ext: str = "wav") -> str:
    if kind not in GREETING_KINDS:
        raise ValueError(f"greeting kind must be one of {', '.join(GREETING_KINDS)}: {kind!r}")
    return validate_key(f"greetings/{_domain(domain)}/{_username(username)}/{kind}.{_ext(ext)}")


def partial_recording_key(session_id: str, ext: str = "wav") -> str:
    if not _SESSION.fullmatch(session_id):
        raise ValueError(f"invalid session id for a blob key: {session_id!r}")
    return validate_key(f"partial/{session_id}.{_ext(ext)}")


def mailbox_prefix(domain: str, username: str) -> str:
    """Prefix of all of one user's messages (for listing or deleting a mailbox)."""
    return f"messages/{_domain(domain)}/{_username(username)}/"


def peaks_key(blob_key: str) -> str:
    """Where the waveform peaks (JSON) of a message's audio live: next to it, same name, suffix
    ``.peaks.json`` (``messages/d/alice/10000.wav`` → ``messages/d/alice/10000.peaks.json``).
    Under the mailbox's prefix, so deleting a mailbox by prefix takes them too."""
    validate_key(blob_key)
    head, _, last = blob_key.rpartition("/")
    stem = last.rsplit(".", 1)[0] if "." in last else last
    return validate_key(f"{head}/{stem}.peaks.json" if head else f"{stem}.peaks.json")
