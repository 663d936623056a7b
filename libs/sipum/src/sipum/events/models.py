"""Versioned payload models of every NATS message sipum sends.

Every payload is a JSON object with the envelope fields

* ``v``  — schema version of that payload kind (an integer; starts at 1),
* ``id`` — a UUID naming this event; it is also the JetStream ``Nats-Msg-Id`` header, so the
  stream drops a re-publish of the same event inside its duplicate window,
* ``ts`` — when the event happened (UTC, RFC 3339 with ``Z``),

followed by the fields a consumer needs. Versioning rule: adding an *optional* field keeps
``v``; renaming, removing or changing the meaning of a field bumps ``v`` of that kind.
Consumers ignore fields they do not know (``extra="ignore"``), so producers may be upgraded
before consumers.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from sipum.events import subjects as s

Folder = Literal["inbox", "saved", "trash"]
#: How a call reached us: straight to our contact, forked by the proxy, or diverted
#: (302 / Diversion RFC 5806 / History-Info RFC 7044 / RFC 4458 ``cause=``).
Reason = Literal["direct", "forked", "diverted"]
CallMode = Literal["record", "retrieve", "greeting", "menu", "access"]
"""``access``: the voicemail access number (``sip:voicemail@<domain>``): the caller says which
mailbox (its number), then the PIN; ``username`` is then the access number's user part."""
GreetingKind = Literal["unavailable", "busy", "name", "temporary"]

# Namespace of deterministic event ids (uuid5); any fixed UUID works, this one is ours.
_EVENT_ID_NAMESPACE = uuid.UUID("5b1f0a52-3d1c-4f7e-9a51-7e0b8f2c6d10")


def utc_now() -> datetime:
    return datetime.now(UTC)


def stable_event_id(kind: str, key: str | int) -> uuid.UUID:
    """A deterministic event id: retrying the same fact publishes the same id.

    With the id in ``Nats-Msg-Id`` JetStream keeps only the first copy (within the stream's
    duplicate window), e.g. ``stable_event_id("message.created", 67212)``.
    """
    return uuid.uuid5(_EVENT_ID_NAMESPACE, f"{kind}:{key}")


class Envelope(BaseModel):
    """Fields every payload carries."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    #: Schema version this class writes.
    SCHEMA_VERSION: ClassVar[int] = 1

    v: int = 1
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    ts: AwareDatetime = Field(default_factory=utc_now)

    @field_validator("v")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v < 1:
            raise ValueError("schema version starts at 1")
        return v

    @field_validator("ts")
    @classmethod
    def _to_utc(cls, ts: datetime) -> datetime:
        return ts.astimezone(UTC)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


class Event(Envelope):
    """A fact published on ``<prefix>.evt.<kind>`` and kept by the stream."""

    kind: ClassVar[str] = ""

    def summary(self) -> str:
        """The human part of one ``sipum-events`` line (after time and kind)."""
        return ""


class MailboxEvent(Event):
    username: str
    domain: str

    @property
    def mailbox(self) -> str:
        return f"{self.username}@{self.domain}"


# --- messages -------------------------------------------------------------------------------


class MessageCreated(MailboxEvent):
    """A voice message was stored (blob written, row committed)."""

    kind: ClassVar[str] = s.MESSAGE_CREATED

    message_id: int
    folder: Folder = "inbox"
    caller_uri: str
    caller_display: str | None = None
    called_uri: str
    received_at: AwareDatetime
    duration_s: float
    codec: str
    content_type: str = "audio/wav"
    size: int
    blob_key: str
    reason: Reason = "direct"
    diversion_cause: str | None = None
    call_id: str | None = None
    session_id: str | None = None
    interrupted: bool = False
    """Recovered after the recorder holding the call died: the caller was cut off."""
    urgent: bool = False
    """The caller marked the message urgent (key 4 in the review after the recording); a
    forwarded copy keeps the original's mark."""
    forwarded_from: str | None = Field(default=None, examples=["alice@example.com"])
    """A copy forwarded by phone (main menu key 8): the mailbox it came from; None: a message
    a caller left."""

    def summary(self) -> str:
        name = f' "{self.caller_display}"' if self.caller_display else ""
        cut = " interrupted" if self.interrupted else ""
        urgent = " urgent" if self.urgent else ""
        fwd = f" forwarded-from={self.forwarded_from}" if self.forwarded_from else ""
        return (
            f"{self.mailbox} id={self.message_id} dur={self.duration_s:.1f}s "
            f"from={self.caller_uri}{name} reason={self.reason} size={self.size}{cut}{urgent}"
            f"{fwd}"
        )


class MessageUpdated(MailboxEvent):
    """Folder or heard flag of a message changed."""

    kind: ClassVar[str] = s.MESSAGE_UPDATED

    message_id: int
    folder: Folder
    heard: bool
    changed: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        changed = ",".join(self.changed) or "-"
        return (
            f"{self.mailbox} id={self.message_id} folder={self.folder} "
            f"heard={str(self.heard).lower()} changed={changed}"
        )


class MessageDeleted(MailboxEvent):
    """A message was removed for good (its blob may already be gone). `reason` is `expired`
    when the notifier's retention sweeper removed it, its retention window after the e-mail
    that carried it (delete after e-mail); absent (null) when its owner deleted it."""

    kind: ClassVar[str] = s.MESSAGE_DELETED

    message_id: int
    blob_key: str | None = None
    reason: Literal["expired"] | None = None
    """``expired``: deleted by the notifier's retention sweeper, its retention window after the
    e-mail that carried it (delete after e-mail); absent: deleted by its owner."""

    def summary(self) -> str:
        why = f" reason={self.reason}" if self.reason else ""
        return f"{self.mailbox} id={self.message_id}{why}"


class MessageTranscribed(MailboxEvent):
    """The transcript of a message was stored (table ``transcripts``); the text itself is not
    in the event (the stream keeps events for days and ``sipum-events`` prints them): read it
    from PostgreSQL."""

    kind: ClassVar[str] = s.MESSAGE_TRANSCRIBED

    message_id: int
    language: str
    engine: str
    engine_version: str
    chars: int
    words: int
    confidence: float | None = None
    elapsed_s: float

    def summary(self) -> str:
        confidence = "-" if self.confidence is None else f"{self.confidence:.2f}"
        return (
            f"{self.mailbox} id={self.message_id} lang={self.language} "
            f"engine={self.engine} chars={self.chars} words={self.words} "
            f"conf={confidence} took={self.elapsed_s:.1f}s"
        )


# --- users ----------------------------------------------------------------------------------


class UserCreated(MailboxEvent):
    """A mailbox was created (signup or admin); the agent starts registering it."""

    kind: ClassVar[str] = s.USER_CREATED

    display_name: str | None = None
    email: str | None = None

    def summary(self) -> str:
        return f"{self.mailbox} email={self.email or '-'}"


class UserUpdated(MailboxEvent):
    """Settings or credentials of a user changed (``changed`` names the fields, no values)."""

    kind: ClassVar[str] = s.USER_UPDATED

    display_name: str | None = None
    email: str | None = None
    changed: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        return f"{self.mailbox} changed={','.join(self.changed) or '-'}"


class UserDeleted(MailboxEvent):
    """A mailbox was removed with its messages and greetings."""

    kind: ClassVar[str] = s.USER_DELETED

    def summary(self) -> str:
        return self.mailbox


class DomainUpdated(Event):
    """An administrator changed a domain's defaults (``changed`` names the settings, no
    values). Services read the settings per call, so nothing needs reloading — except
    ``registrar``: the registrar-agent then moves the domain's users to the new registrar."""

    kind: ClassVar[str] = s.DOMAIN_UPDATED

    domain: str
    changed: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        return f"{self.domain} changed={','.join(self.changed) or '-'}"


# --- calls ----------------------------------------------------------------------------------


class CallStarted(MailboxEvent):
    """An INVITE for a mailbox was accepted for processing (ringing, not yet answered)."""

    kind: ClassVar[str] = s.CALL_STARTED

    call_id: str
    mode: CallMode
    from_uri: str
    from_display: str | None = None
    to_uri: str
    reason: Reason = "direct"
    diversion_cause: str | None = None
    agent_id: str | None = None

    def summary(self) -> str:
        return (
            f"{self.mailbox} call={self.call_id} mode={self.mode} "
            f"from={self.from_uri} reason={self.reason}"
        )


class CallAnswered(MailboxEvent):
    """We sent 200 OK: a media session serves the call."""

    kind: ClassVar[str] = s.CALL_ANSWERED

    call_id: str
    mode: CallMode
    session_id: str
    recorder_id: str

    def summary(self) -> str:
        return (
            f"{self.mailbox} call={self.call_id} mode={self.mode} "
            f"session={self.session_id} recorder={self.recorder_id}"
        )


CallEndReason = Literal[
    "bye",  # the caller hung up after we answered
    "cancel",  # the caller gave up before we answered (CANCEL, 487)
    "answered_elsewhere",  # the forked call was picked up by the user's phone
    "max_length",
    "silence",
    "mailbox_full",  # the mailbox had no room (message count or quota): told so, nothing recorded
    "completed",  # the session ended on its own (e.g. '#' pressed, message played)
    "rejected",  # we answered with a final error response
    "media_lost",  # the media-recorder holding the call was gone (no heartbeat): we sent BYE
    "max_duration",  # the call reached the agent's max_call_seconds: we sent BYE
    "session_expired",  # no RFC 4028 session refresh in time: we sent BYE
    "transferred",  # the caller pressed 0 and was transferred to the operator (REFER)
    "error",
]


class CallEnded(MailboxEvent):
    """A call for a mailbox is over (answered or not); ``message_id`` if one was stored."""

    kind: ClassVar[str] = s.CALL_ENDED

    call_id: str
    mode: CallMode
    end_reason: CallEndReason
    duration_s: float = 0.0
    status_code: int | None = None
    session_id: str | None = None
    message_id: int | None = None

    def summary(self) -> str:
        text = (
            f"{self.mailbox} call={self.call_id} mode={self.mode} "
            f"end={self.end_reason} dur={self.duration_s:.1f}s"
        )
        if self.message_id is not None:
            text += f" message={self.message_id}"
        return text


# --- registrations --------------------------------------------------------------------------


class RegistrationChanged(MailboxEvent):
    """Our REGISTER binding for a user at the domain's registrar changed state."""

    kind: ClassVar[str] = s.REGISTRATION_CHANGED

    state: Literal["registered", "unregistered", "failed"]
    registrar: str
    contact: str | None = None
    expires_s: int | None = None
    status_code: int | None = None
    detail: str | None = None

    def summary(self) -> str:
        text = f"{self.mailbox} state={self.state} registrar={self.registrar}"
        if self.expires_s is not None:
            text += f" expires={self.expires_s}s"
        if self.status_code is not None:
            text += f" status={self.status_code}"
        return text


# --- notifications --------------------------------------------------------------------------


Channel = Literal["email", "webhook", "command"]


class NotificationSent(MailboxEvent):
    """The user was told about a new message (the SMTP server accepted the e-mail)."""

    kind: ClassVar[str] = s.NOTIFICATION_SENT

    message_id: int
    channel: Channel
    recipient: str

    def summary(self) -> str:
        return f"{self.mailbox} id={self.message_id} {self.channel} to={self.recipient}"


class NotificationFailed(MailboxEvent):
    """A notification attempt failed; ``will_retry`` says whether it will be tried again."""

    kind: ClassVar[str] = s.NOTIFICATION_FAILED

    message_id: int
    channel: Channel
    recipient: str
    error: str
    attempt: int = 1
    will_retry: bool = False

    def summary(self) -> str:
        return (
            f"{self.mailbox} id={self.message_id} {self.channel} to={self.recipient} "
            f"attempt={self.attempt} retry={str(self.will_retry).lower()} error={self.error}"
        )


# --- mailbox security -----------------------------------------------------------------------


class MailboxLocked(MailboxEvent):
    """Phone access to the mailbox was locked after too many wrong PINs (counted across calls
    and recorder replicas, ``sipum.security.pin_lockout``); it opens again at ``locked_until``,
    on a web login, a PIN change or an administrator's unlock. No PIN digits are in the event."""

    kind: ClassVar[str] = s.MAILBOX_LOCKED

    failures: int
    """Wrong PINs within the window that led to this lock."""
    lockouts: int
    """This is the n-th lock in a row (each one twice as long as the one before)."""
    locked_until: AwareDatetime
    lock_seconds: float
    caller_uri: str | None = None
    """Who typed the last wrong PIN (the From / asserted identity of that call)."""
    call_id: str | None = None
    recorder_id: str | None = None

    def summary(self) -> str:
        return (
            f"{self.mailbox} failures={self.failures} lockouts={self.lockouts} "
            f"for={self.lock_seconds:.0f}s until={self.locked_until.isoformat()} "
            f"from={self.caller_uri or '-'}"
        )


EVENT_MODELS: dict[str, type[Event]] = {
    model.kind: model
    for model in (
        MessageCreated,
        MessageUpdated,
        MessageDeleted,
        MessageTranscribed,
        UserCreated,
        UserUpdated,
        UserDeleted,
        DomainUpdated,
        CallStarted,
        CallAnswered,
        CallEnded,
        RegistrationChanged,
        NotificationSent,
        NotificationFailed,
        MailboxLocked,
    )
}
assert set(EVENT_MODELS) == set(s.EVENT_KINDS), "every event kind needs exactly one model"


def parse_event(kind: str, data: bytes | str) -> Event:
    """Decode the payload of ``<prefix>.evt.<kind>``; ``KeyError`` for an unknown kind,
    ``pydantic.ValidationError`` for a payload that does not match."""
    return EVENT_MODELS[kind].model_validate_json(data)


# --- media RPC ------------------------------------------------------------------------------


class MediaAllocateRequest(Envelope):
    """``<prefix>.media.allocate``: the agent asks a recorder for a media session.

    ``offer_sdp`` is the caller's SDP offer (RFC 3264); the reply carries our answer.
    ``trusted`` means the caller is authenticated as the mailbox owner (own phone or PIN
    accepted), which a ``menu``/``retrieve`` session needs.
    """

    call_id: str
    mode: CallMode
    username: str
    domain: str
    message_id: int | None = None  # mode=retrieve: the message to play
    greeting_kind: GreetingKind | None = None  # mode=greeting: which greeting to record
    offer_sdp: str
    caller_uri: str
    caller_display: str | None = None
    called_uri: str
    reason: Reason = "direct"
    diversion_cause: str | None = None
    trusted: bool = False
    max_duration_s: float | None = None
    agent_id: str | None = None
    continue_session_id: str | None = None
    """The call moves here from a replica that is gone (``mode=record``): this session takes over
    the recording of that session — same session id (the message's idempotency key), the audio
    the gone replica spooled first, then what is said from now on; one message. Without a
    spooled recording (the caller was still hearing the greeting) the call starts again."""


class MediaAllocateReply(Envelope):
    """The recorder's answer: it owns ``session_id`` until the session ends."""

    session_id: str
    answer_sdp: str
    recorder_id: str


class RpcError(Envelope):
    """Body of an error reply (the reply also carries header ``Sipum-Error: <code>``).

    Codes: ``bad_request`` (the request did not validate), ``unsupported`` (e.g. no common
    codec — the agent answers 488), ``not_found`` (mailbox/message), ``overloaded`` (try
    another replica / 503), ``internal``.
    """

    code: str
    message: str


TransferOutcome = Literal["transferred", "refused", "failed", "timeout", "gone"]


class CallTransferRequest(Envelope):
    """``<prefix>.call.<session_id>.transfer``: the media-recorder asks the registrar-agent
    holding the call to transfer the caller to ``target_uri`` (the mailbox's ``operator_uri``)
    by an in-dialog REFER (RFC 3515). The agent replies when the transfer is over, at most
    ``timeout_s`` after sending the REFER."""

    session_id: str
    call_id: str
    target_uri: str
    timeout_s: float = Field(default=30.0, gt=0, le=300)


class CallTransferReply(Envelope):
    """How the transfer ended. ``transferred``: the caller reached the target (NOTIFY sipfrag
    2xx) and the agent has sent BYE — the session's ``hangup`` follows. Otherwise the call goes
    on: ``refused`` (the caller's UA answered the REFER 3xx–6xx, ``status_code``), ``failed``
    (the target answered 3xx–6xx, ``status_code``), ``timeout`` (no answer or no final NOTIFY
    in time), ``gone`` (the call is not, or no longer, confirmed)."""

    outcome: TransferOutcome
    status_code: int | None = None


# --- live session control ------------------------------------------------------------------


class SessionCommand(Envelope):
    """Sent on ``<prefix>.media.session.<session_id>.<command>`` (core NATS, not stored)."""

    command: ClassVar[str] = ""

    session_id: str


class SessionHangup(SessionCommand):
    command: ClassVar[str] = s.SESSION_HANGUP

    reason: Literal["bye", "cancel", "timeout", "shutdown"] = "bye"


class SessionDtmf(SessionCommand):
    command: ClassVar[str] = s.SESSION_DTMF

    digit: str = Field(pattern=r"^[0-9*#A-D]$")
    duration_ms: int = 100


class SessionEnded(SessionCommand):
    command: ClassVar[str] = s.SESSION_ENDED

    call_id: str
    end_reason: CallEndReason
    message_id: int | None = None


# --- liveness ----------------------------------------------------------------------------------


class RecorderHeartbeat(Envelope):
    """A media-recorder replica is alive (``<prefix>.media.recorder.heartbeat``, core NATS, every
    ``interval_s``). Silence for ``dead_after_s`` means the replica is gone: the agent ends the
    calls it held, the other replicas recover its recordings. ``state=stopped`` is its last word
    on a clean stop (nothing of it needs recovering)."""

    recorder_id: str
    interval_s: float = Field(gt=0, le=60)
    dead_after_s: float = Field(gt=0, le=600)
    state: Literal["up", "stopping", "stopped"] = "up"
    sessions: int = Field(default=0, ge=0)
    link: str | None = Field(default=None, max_length=300)
    """``host:port`` (``[v6]:port``) of the replica's liveness link (``sipum.events.liveness``):
    a TCP port the agent keeps a connection open to, so the death of the process is seen at
    once (the kernel closes its sockets) and not after ``dead_after_s``; none: heartbeats only."""


class AgentHeartbeat(Envelope):
    """A registrar-agent is alive (``<prefix>.registrar.agent.heartbeat``, core NATS, every
    ``interval_s``). Silence for ``dead_after_s`` (or ``state`` ``stopping``/``stopped``) means
    its shard is unserved: the live agent with the lowest ``shard_index`` REGISTERs that
    shard's users until the shard's own agent says ``up`` again. ``starting``: its own shard's
    first REGISTERs are not all answered yet (a taker keeps the shard meanwhile). ``serving``:
    the shards whose users it registers now (its own and those it took over); ``contact`` is
    the ``host:port`` of its registered contact."""

    agent_id: str
    shard_index: int = Field(ge=0)
    shard_count: int = Field(ge=1)
    interval_s: float = Field(gt=0, le=60)
    dead_after_s: float = Field(gt=0, le=600)
    state: Literal["starting", "up", "stopping", "stopped"] = "up"
    serving: list[int] = Field(default_factory=list)
    contact: str = ""


SESSION_COMMAND_MODELS: dict[str, type[SessionCommand]] = {
    model.command: model for model in (SessionHangup, SessionDtmf, SessionEnded)
}
assert set(SESSION_COMMAND_MODELS) == set(s.SESSION_COMMANDS)
