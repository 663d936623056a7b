"""Live session control: ``<prefix>.media.session.<session_id>.<command>`` on core NATS.

Not stored on purpose: a ``hangup`` or ``dtmf`` replayed after a restart would act on a call
that is long over. The recorder owning a session listens for ``hangup``/``dtmf``, the agent
for ``ended``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as CoreSubscription
from pydantic import ValidationError

from sipum.events.models import SESSION_COMMAND_MODELS, SessionCommand
from sipum.events.subjects import Subjects

log = logging.getLogger("sipum.events")


async def send_command(nc: NATS, subjects: Subjects, command: SessionCommand) -> None:
    """Publish a live-session command (fire and forget)."""
    if not command.command:
        raise TypeError(f"{type(command).__name__} is not a concrete session command")
    await nc.publish(subjects.media_session(command.session_id, command.command), command.to_json())


async def subscribe_session(
    nc: NATS,
    subjects: Subjects,
    session_id: str,
    handler: Callable[[SessionCommand], Awaitable[None]],
    *,
    commands: Iterable[str] | None,
) -> list[CoreSubscription]:
    """Receive commands for one session: all of them, or only ``commands``. A command that
    does not decode, or a handler that raises, is logged and dropped."""
    if commands is None:
        names = [subjects.media_session_all(session_id)]
    else:
        names = [subjects.media_session(session_id, c) for c in commands]

    async def on_msg(msg: Msg) -> None:
        command = msg.subject.rsplit(".", 1)[-1]
        model = SESSION_COMMAND_MODELS.get(command)
        if model is None:
            log.info("ignoring unknown session command %r", command)
            return
        try:
            cmd = model.model_validate_json(msg.data)
        except ValidationError as exc:
            log.error("dropping undecodable %s: %s", msg.subject, exc)
            return
        try:
            await handler(cmd)
        except Exception:
            log.exception("session command handler failed for %s", msg.subject)

    return [await nc.subscribe(name, cb=on_msg) for name in names]
