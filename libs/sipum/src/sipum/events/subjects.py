"""Every NATS subject sipum uses, in one place.

Layout (``<p>`` is the subject prefix, ``sipum`` in production; tests use a unique prefix so
suites running at the same time on one NATS server never see each other's messages):

* ``<p>.evt.<entity>.<verb>`` — domain events, persisted by the JetStream stream ``SIPUM``
  (which captures ``<p>.evt.>``). Consumers are durable and ack after their work is done.
* ``<p>.media.allocate`` — core NATS request/reply; the ``media-recorder`` replicas answer as the
  queue group ``media-recorder`` so each request reaches exactly one of them.
* ``<p>.media.session.<session_id>.<command>`` — core NATS control messages for one live media
  session (the recorder that owns the session subscribes to ``<p>.media.session.<id>.>``).
* ``<p>.call.<session_id>.transfer`` — core NATS request/reply: the media-recorder asks the
  registrar-agent holding the session's call to transfer the caller (REFER, RFC 3515); the
  agent subscribes for each answered call, so the request reaches the one holding the dialog.
* ``<p>.media.recorder.heartbeat`` — core NATS: every media-recorder replica says it is alive
  every ``heartbeat_interval_seconds``; agents and the other replicas listen (liveness).
* ``<p>.registrar.agent.heartbeat`` — core NATS: every registrar-agent says it is alive, which
  shard it owns and which shards it serves; the other agents take over a silent one's shard.

Media subjects are deliberately *not* in the stream: a session lives on one replica for a few
minutes, and replaying a stale ``hangup`` after a restart would do harm, not good.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PREFIX = "sipum"
DEFAULT_STREAM = "SIPUM"

#: Queue group of the media-recorder replicas serving ``<p>.media.allocate``.
MEDIA_RECORDER_QUEUE = "media-recorder"
#: Queue group of the registrar-agent serving ``<p>.call.<session_id>.transfer`` (one member:
#: the agent holding the call).
TRANSFER_QUEUE = "registrar-agent"

# Event kinds: ``<entity>.<verb>``; the subject is ``<prefix>.evt.<kind>``.
MESSAGE_CREATED = "message.created"
MESSAGE_UPDATED = "message.updated"
MESSAGE_DELETED = "message.deleted"
MESSAGE_TRANSCRIBED = "message.transcribed"
USER_CREATED = "user.created"
USER_UPDATED = "user.updated"
USER_DELETED = "user.deleted"
DOMAIN_UPDATED = "domain.updated"
CALL_STARTED = "call.started"
CALL_ANSWERED = "call.answered"
CALL_ENDED = "call.ended"
REGISTRATION_CHANGED = "registration.changed"
NOTIFICATION_SENT = "notification.sent"
NOTIFICATION_FAILED = "notification.failed"
MAILBOX_LOCKED = "mailbox.locked"

EVENT_KINDS: tuple[str, ...] = (
    MESSAGE_CREATED,
    MESSAGE_UPDATED,
    MESSAGE_DELETED,
    USER_CREATED,
    USER_UPDATED,
    USER_DELETED,
    CALL_STARTED,
    CALL_ANSWERED,
    CALL_ENDED,
    REGISTRATION_CHANGED,
    NOTIFICATION_SENT,
    NOTIFICATION_FAILED,
    MESSAGE_TRANSCRIBED,
    DOMAIN_UPDATED,
    MAILBOX_LOCKED,
)

# Commands on ``<prefix>.media.session.<id>.<command>``.
SESSION_HANGUP = "hangup"  # agent -> recorder: the caller hung up (BYE/CANCEL); stop and store
SESSION_DTMF = "dtmf"  # agent -> recorder: a digit that arrived by SIP INFO, not RTP
SESSION_ENDED = "ended"  # recorder -> agent: the session finished on its own; send BYE
SESSION_COMMANDS: tuple[str, ...] = (SESSION_HANGUP, SESSION_DTMF, SESSION_ENDED)

# A subject token: no dots, spaces, wildcards or control characters.
_TOKEN = re.compile(r"[A-Za-z0-9_\-]+")
_PREFIX = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")
_STREAM = re.compile(r"[A-Za-z0-9_\-]+")


def validate_token(value: str, what: str) -> str:
    """Return ``value`` if it is one safe subject token, else raise ``ValueError``."""
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a valid NATS subject token")
    return value


@dataclass(frozen=True, slots=True)
class Subjects:
    """Subject names under one prefix (``sipum`` unless a test isolates itself)."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix):
            raise ValueError(f"subject prefix {self.prefix!r} is not valid")

    @property
    def events(self) -> str:
        """Wildcard for every event; the subjects of the stream."""
        return f"{self.prefix}.evt.>"

    @property
    def events_root(self) -> str:
        return f"{self.prefix}.evt."

    def event(self, kind: str) -> str:
        """Subject of one event kind, e.g. ``sipum.evt.message.created``."""
        entity, _, verb = kind.partition(".")
        validate_token(entity, "event entity")
        validate_token(verb, "event verb")
        return f"{self.prefix}.evt.{kind}"

    def kind_of(self, subject: str) -> str | None:
        """The event kind of an event subject, or None if it is not one of ours."""
        if subject.startswith(self.events_root):
            return subject[len(self.events_root) :]
        return None

    @property
    def media_allocate(self) -> str:
        return f"{self.prefix}.media.allocate"

    def media_allocate_at(self, recorder_id: str) -> str:
        """``sipum.media.allocate`` addressed to one replica (a moved call's continue): the id
        hex-encoded, so any id is one valid token."""
        return f"{self.prefix}.media.allocate.{recorder_id.encode().hex()}"

    def media_session(self, session_id: str, command: str) -> str:
        """Control subject of one live media session."""
        validate_token(session_id, "session id")
        validate_token(command, "session command")
        return f"{self.prefix}.media.session.{session_id}.{command}"

    def call_transfer(self, session_id: str) -> str:
        """Transfer request for the call of one media session (``CallTransferRequest``)."""
        validate_token(session_id, "session id")
        return f"{self.prefix}.call.{session_id}.transfer"

    @property
    def recorder_heartbeat(self) -> str:
        """Liveness of the media-recorder replicas (``RecorderHeartbeat``, core NATS)."""
        return f"{self.prefix}.media.recorder.heartbeat"

    @property
    def agent_heartbeat(self) -> str:
        """Liveness of the registrar-agents and their shards (``AgentHeartbeat``, core NATS)."""
        return f"{self.prefix}.registrar.agent.heartbeat"

    def media_session_all(self, session_id: str) -> str:
        """Wildcard for every command of one session (what its recorder subscribes to)."""
        validate_token(session_id, "session id")
        return f"{self.prefix}.media.session.{session_id}.>"


def validate_stream_name(name: str) -> str:
    if not _STREAM.fullmatch(name):
        raise ValueError(f"stream name {name!r} is not valid (letters, digits, - and _)")
    return name
