"""The JetStream stream that keeps every event: its settings, creating or updating it, and
storing an event in it.

Events are stored under their id as ``Nats-Msg-Id``, so the stream drops a re-publish of the
same event within its duplicate window: a producer that retries after a crash, with an id
derived from the fact (``stable_event_id``), never yields a second event.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api

from sipum.events.errors import EventBusError
from sipum.events.models import Event
from sipum.events.subjects import DEFAULT_STREAM, Subjects, validate_stream_name

log = logging.getLogger("sipum.events")

MSG_ID_HEADER = "Nats-Msg-Id"

DEFAULT_SUBJECTS = Subjects()
DEFAULT_MAX_AGE = timedelta(days=14)
DEFAULT_DUPLICATE_WINDOW = timedelta(minutes=2)


def stream_config(
    stream: str = DEFAULT_STREAM,
    subjects: Subjects = DEFAULT_SUBJECTS,
    *,
    max_age: timedelta = DEFAULT_MAX_AGE,
    max_bytes: int = -1,
    duplicate_window: timedelta = DEFAULT_DUPLICATE_WINDOW,
    replicas: int = 1,
) -> api.StreamConfig:
    """The stream that keeps every event: file storage, limits retention (events stay for
    ``max_age`` whether or not anyone consumed them, so the events command can replay them),
    old events discarded first, duplicates by ``Nats-Msg-Id`` dropped within the window.
    ``replicas`` > 1 keeps that many copies on a NATS cluster (3 survives one node's loss)."""
    return api.StreamConfig(
        name=validate_stream_name(stream),
        description="sipum domain events",
        subjects=[subjects.events],
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        discard=api.DiscardPolicy.OLD,
        max_age=max_age.total_seconds(),
        max_bytes=max_bytes,
        duplicate_window=duplicate_window.total_seconds(),
        num_replicas=replicas,
    )


async def ensure_stream(js: JetStreamContext, config: api.StreamConfig) -> api.StreamInfo:
    """Create the stream or bring its settings up to date; safe to call from every replica
    at every start, also concurrently."""
    name = config.name
    if not name:
        raise ValueError("a stream config without a name")
    try:
        info = await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        try:
            return await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            # Another replica created it between our two calls; fall through to update.
            info = await js.stream_info(name)
    current = info.config
    if (
        current.subjects == config.subjects
        and current.max_age == config.max_age
        and current.max_bytes == config.max_bytes
        and current.duplicate_window == config.duplicate_window
        and (current.num_replicas or 1) == (config.num_replicas or 1)
    ):
        return info
    log.info("updating stream %s settings", name)
    return await js.update_stream(config)


async def delete_stream(js: JetStreamContext, stream: str) -> None:
    """Remove the stream and all its consumers (tests; never done by a service)."""
    try:
        await js.delete_stream(stream)
    except nats.js.errors.NotFoundError:
        pass


async def check_stream(js: JetStreamContext, stream: str) -> None:
    """Health: the stream exists and JetStream answers (raises ``EventBusError`` otherwise)."""
    try:
        await js.stream_info(stream)
    except nats.js.errors.NotFoundError as exc:
        raise EventBusError(f"stream {stream} does not exist") from exc
    except (TimeoutError, nats.errors.Error) as exc:
        raise EventBusError(f"JetStream does not answer: {exc}") from exc


async def store_event(
    js: JetStreamContext,
    subjects: Subjects,
    stream: str,
    event: Event,
    *,
    timeout: float,  # noqa: ASYNC109 - passed on to the JetStream publish
) -> api.PubAck:
    """Publish ``event`` to the stream and wait for its ack (``duplicate`` is true when the
    same event id was already stored within the duplicate window)."""
    if not event.kind:
        raise TypeError(f"{type(event).__name__} is not a concrete event kind")
    subject = subjects.event(event.kind)
    try:
        return await js.publish(
            subject,
            event.to_json(),
            timeout=timeout,
            stream=stream,
            headers={MSG_ID_HEADER: str(event.id)},
        )
    except nats.js.errors.NoStreamResponseError as exc:
        raise EventBusError(
            f"no stream stores {subject} (does stream {stream} exist? ensure_stream() creates it)"
        ) from exc
