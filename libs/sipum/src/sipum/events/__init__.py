"""Event contracts: every NATS subject, the versioned payload models, and ``EventBus``.

The bus itself is split by job; ``sipum.events.bus`` lists the modules.

See ``docs/events.md`` for the subjects with example payloads.
"""

from sipum.events.bus import EventBus
from sipum.events.consumer import Delivery, EventSubscription, current_delivery
from sipum.events.errors import EventBusError, NoResponders, RemoteError, RequestTimeout
from sipum.events.models import (
    EVENT_MODELS,
    SESSION_COMMAND_MODELS,
    AgentHeartbeat,
    CallAnswered,
    CallEnded,
    CallStarted,
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
    parse_event,
    stable_event_id,
)
from sipum.events.rpc import ERROR_HEADER
from sipum.events.stream import MSG_ID_HEADER
from sipum.events.subjects import (
    DEFAULT_PREFIX,
    DEFAULT_STREAM,
    EVENT_KINDS,
    MEDIA_RECORDER_QUEUE,
    Subjects,
)

__all__ = [
    "CallAnswered",
    "CallEnded",
    "CallStarted",
    "DEFAULT_PREFIX",
    "DEFAULT_STREAM",
    "DomainUpdated",
    "Delivery",
    "ERROR_HEADER",
    "EVENT_KINDS",
    "EVENT_MODELS",
    "Envelope",
    "Event",
    "EventBus",
    "EventBusError",
    "EventSubscription",
    "MEDIA_RECORDER_QUEUE",
    "MSG_ID_HEADER",
    "MediaAllocateReply",
    "MediaAllocateRequest",
    "MessageCreated",
    "MessageDeleted",
    "MessageTranscribed",
    "MessageUpdated",
    "NoResponders",
    "MailboxLocked",
    "AgentHeartbeat",
    "NotificationFailed",
    "NotificationSent",
    "RecorderHeartbeat",
    "RegistrationChanged",
    "RemoteError",
    "RequestTimeout",
    "RpcError",
    "SESSION_COMMAND_MODELS",
    "SessionCommand",
    "SessionDtmf",
    "SessionEnded",
    "SessionHangup",
    "Subjects",
    "UserCreated",
    "UserDeleted",
    "UserUpdated",
    "current_delivery",
    "parse_event",
    "stable_event_id",
]
