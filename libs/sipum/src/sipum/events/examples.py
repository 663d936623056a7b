"""One example of every payload, with fixed ids and times.

``docs/events.md`` is generated from these (``python -m sipum.events.docs --write``) and a
test checks the document still matches, so the examples there are always valid payloads.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sipum.events.models import (
    AgentHeartbeat,
    CallAnswered,
    CallEnded,
    CallStarted,
    CallTransferReply,
    CallTransferRequest,
    DomainUpdated,
    Envelope,
    Event,
    MailboxLocked,
    MediaAllocateReply,
    MediaAllocateRequest,
    MessageCreated,
    MessageDeleted,
    MessageTranscribed,
    MessageUpdated,
    NotificationFailed,
    NotificationSent,
    RecorderHeartbeat,
    RegistrationChanged,
    RpcError,
    SessionCommand,
    SessionDtmf,
    SessionEnded,
    SessionHangup,
    UserCreated,
    UserDeleted,
    UserUpdated,
    stable_event_id,
)

T0 = datetime(2026, 11, 26, 5, 10, 0, tzinfo=UTC)
CALL_ID = "a84b4c76e66710@198.51.100.7"
SESSION_ID = "r1-5f2c9e"
OFFER = (
    "v=0\r\no=bob 2890844526 2890844526 IN IP4 198.51.100.7\r\ns=-\r\n"
    "c=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
)
ANSWER = (
    "v=0\r\no=sipum 1 1 IN IP4 203.0.113.20\r\ns=sipum\r\n"
    "c=IN IP4 203.0.113.20\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0 101\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"
)


def _id(n: int) -> uuid.UUID:
    return uuid.UUID(int=0x5195_0000_0000_4000_8000_0000_0000_0000 + n)


EVENT_EXAMPLES: list[Event] = [
    MessageCreated(
        id=stable_event_id("message.created", 67212),
        ts=T0,
        username="alice",
        domain="example.com",
        message_id=67212,
        folder="inbox",
        caller_uri="sip:bob@example.org",
        caller_display="Bob",
        called_uri="sip:alice@example.com",
        received_at=T0,
        duration_s=5.0,
        codec="pcmu",
        content_type="audio/wav",
        size=80044,
        blob_key="messages/example.com/alice/67212.wav",
        reason="forked",
        call_id=CALL_ID,
        session_id=SESSION_ID,
    ),
    MessageUpdated(
        id=_id(2),
        ts=T0,
        username="alice",
        domain="example.com",
        message_id=67212,
        folder="saved",
        heard=True,
        changed=["folder", "heard"],
    ),
    MessageDeleted(
        id=_id(3),
        ts=T0,
        username="alice",
        domain="example.com",
        message_id=67212,
        blob_key="messages/example.com/alice/67212.wav",
    ),
    UserCreated(
        id=_id(4),
        ts=T0,
        username="alice",
        domain="example.com",
        display_name="Alice Liddell",
        email="alice@example.com",
    ),
    UserUpdated(
        id=_id(5),
        ts=T0,
        username="alice",
        domain="example.com",
        display_name="Alice Liddell",
        email="alice@example.com",
        changed=["ring_timeout_seconds", "pin"],
    ),
    UserDeleted(id=_id(6), ts=T0, username="alice", domain="example.com"),
    CallStarted(
        id=_id(7),
        ts=T0,
        username="alice",
        domain="example.com",
        call_id=CALL_ID,
        mode="record",
        from_uri="sip:bob@example.org",
        from_display="Bob",
        to_uri="sip:alice@example.com",
        reason="forked",
        agent_id="registrar-agent-1",
    ),
    CallAnswered(
        id=_id(8),
        ts=T0,
        username="alice",
        domain="example.com",
        call_id=CALL_ID,
        mode="record",
        session_id=SESSION_ID,
        recorder_id="media-recorder-1",
    ),
    CallEnded(
        id=_id(9),
        ts=T0,
        username="alice",
        domain="example.com",
        call_id=CALL_ID,
        mode="record",
        end_reason="bye",
        duration_s=17.3,
        session_id=SESSION_ID,
        message_id=67212,
    ),
    RegistrationChanged(
        id=_id(10),
        ts=T0,
        username="alice",
        domain="example.com",
        state="registered",
        registrar="sip:example.com",
        contact="<sip:alice@203.0.113.10:5060>",
        expires_s=3600,
        status_code=200,
    ),
    NotificationSent(
        id=_id(11),
        ts=T0,
        username="alice",
        domain="example.com",
        message_id=67212,
        channel="email",
        recipient="alice@example.com",
    ),
    NotificationFailed(
        id=_id(12),
        ts=T0,
        username="alice",
        domain="example.com",
        message_id=67212,
        channel="email",
        recipient="alice@example.com",
        error="451 4.3.0 mailbox temporarily unavailable",
        attempt=2,
        will_retry=True,
    ),
    MessageTranscribed(
        id=stable_event_id("message.transcribed", 67212),
        ts=T0,
        username="alice",
        domain="example.com",
        message_id=67212,
        language="en-US",
        engine="pocketsphinx",
        engine_version="5.1.1",
        chars=38,
        words=7,
        confidence=0.62,
        elapsed_s=1.4,
    ),
    DomainUpdated(
        id=_id(20),
        ts=T0,
        domain="example.com",
        changed=["ring_timeout_seconds", "time_zone"],
    ),
    MailboxLocked(
        id=_id(13),
        ts=T0,
        username="alice",
        domain="example.com",
        failures=5,
        lockouts=1,
        locked_until=datetime(2026, 11, 26, 5, 15, 0, tzinfo=UTC),
        lock_seconds=300.0,
        caller_uri="sip:mallory@example.org",
        call_id=CALL_ID,
        recorder_id="media-recorder-1",
    ),
]

MEDIA_ALLOCATE_REQUEST = MediaAllocateRequest(
    id=_id(20),
    ts=T0,
    call_id=CALL_ID,
    mode="record",
    username="alice",
    domain="example.com",
    offer_sdp=OFFER,
    caller_uri="sip:bob@example.org",
    caller_display="Bob",
    called_uri="sip:alice@example.com",
    reason="forked",
    trusted=False,
    max_duration_s=120.0,
    agent_id="registrar-agent-1",
)

MEDIA_ALLOCATE_REPLY = MediaAllocateReply(
    id=_id(21), ts=T0, session_id=SESSION_ID, answer_sdp=ANSWER, recorder_id="media-recorder-1"
)

RPC_ERROR = RpcError(
    id=_id(22), ts=T0, code="unsupported", message="no common codec in the offer (PCMA only?)"
)

CALL_TRANSFER_REQUEST = CallTransferRequest(
    id=_id(23),
    ts=T0,
    session_id=SESSION_ID,
    call_id=CALL_ID,
    target_uri="sip:operator@example.com",
    timeout_s=30.0,
)

CALL_TRANSFER_REPLY = CallTransferReply(id=_id(24), ts=T0, outcome="failed", status_code=486)

SESSION_EXAMPLES: list[SessionCommand] = [
    SessionHangup(id=_id(30), ts=T0, session_id=SESSION_ID, reason="bye"),
    SessionDtmf(id=_id(31), ts=T0, session_id=SESSION_ID, digit="#", duration_ms=160),
    SessionEnded(
        id=_id(32),
        ts=T0,
        session_id=SESSION_ID,
        call_id=CALL_ID,
        end_reason="max_length",
        message_id=67212,
    ),
]

RECORDER_HEARTBEAT = RecorderHeartbeat(
    id=_id(40),
    ts=T0,
    recorder_id="media-recorder-1",
    interval_s=0.5,
    dead_after_s=1.5,
    state="up",
    sessions=12,
)

AGENT_HEARTBEAT = AgentHeartbeat(
    id=_id(41),
    ts=T0,
    agent_id="registrar-agent-2",
    shard_index=1,
    shard_count=2,
    interval_s=0.5,
    dead_after_s=2.0,
    state="up",
    serving=[0, 1],
    contact="10.0.0.12:5070",
)

ALL_EXAMPLES: list[Envelope] = [
    *EVENT_EXAMPLES,
    MEDIA_ALLOCATE_REQUEST,
    MEDIA_ALLOCATE_REPLY,
    RPC_ERROR,
    CALL_TRANSFER_REQUEST,
    CALL_TRANSFER_REPLY,
    *SESSION_EXAMPLES,
    RECORDER_HEARTBEAT,
    AGENT_HEARTBEAT,
]
