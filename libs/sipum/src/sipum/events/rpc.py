"""Request/reply over core NATS (not stored: a request nobody answered now is void).

``serve()`` answers as a member of a queue group, so one replica gets each request.
``request()`` raises ``NoResponders`` at once when nobody serves the subject and
``RequestTimeout`` when nobody answered in time. An error reply carries header
``Sipum-Error`` and an ``RpcError`` body and is raised as ``RemoteError`` on the caller's side.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as CoreSubscription
from pydantic import BaseModel, ValidationError

from sipum.events.errors import EventBusError, NoResponders, RemoteError, RequestTimeout
from sipum.events.models import RpcError
from sipum.events.subjects import validate_token

log = logging.getLogger("sipum.events")

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)

ERROR_HEADER = "Sipum-Error"


async def request(
    nc: NATS,
    subject: str,
    request: BaseModel,
    reply_model: type[Rep],
    *,
    timeout: float,  # noqa: ASYNC109 - passed on to the NATS request
) -> Rep:
    """Send ``request`` to one responder of ``subject`` and decode its reply."""
    try:
        msg = await nc.request(subject, request.model_dump_json().encode(), timeout=timeout)
    except nats.errors.NoRespondersError as exc:
        raise NoResponders(f"nobody serves {subject}") from exc
    except nats.errors.TimeoutError as exc:
        raise RequestTimeout(f"no reply on {subject} within {timeout:.1f}s") from exc
    if msg.headers and ERROR_HEADER in msg.headers:
        try:
            err = RpcError.model_validate_json(msg.data)
        except ValidationError:
            raise RemoteError(
                msg.headers[ERROR_HEADER], msg.data.decode(errors="replace")
            ) from None
        raise RemoteError(err.code, err.message)
    try:
        return reply_model.model_validate_json(msg.data)
    except ValidationError as exc:
        raise EventBusError(
            f"reply on {subject} is not a {reply_model.__name__}: "
            f"{exc.error_count()} validation errors"
        ) from exc


async def serve(
    nc: NATS,
    subject: str,
    request_model: type[Req],
    handler: Callable[[Req], Awaitable[BaseModel]],
    *,
    queue: str,
    in_flight: set[asyncio.Task[None]],
) -> CoreSubscription:
    """Answer requests on ``subject`` as member of queue group ``queue``.

    Each request runs in its own task (a slow one does not hold up the next), kept in
    ``in_flight`` until it has answered.
    """
    validate_token(queue, "queue name")

    async def on_msg(msg: Msg) -> None:
        task = asyncio.create_task(_answer(nc, msg, request_model, handler))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)

    return await nc.subscribe(subject, queue=queue, cb=on_msg)


async def _answer(
    nc: NATS,
    msg: Msg,
    request_model: type[Req],
    handler: Callable[[Req], Awaitable[BaseModel]],
) -> None:
    if not msg.reply:
        log.warning("request on %s without a reply subject, ignored", msg.subject)
        return
    try:
        req = request_model.model_validate_json(msg.data)
        reply = await handler(req)
    except ValidationError as exc:
        await _reply_error(nc, msg, "bad_request", str(exc.errors(include_url=False)))
        return
    except RemoteError as exc:
        await _reply_error(nc, msg, exc.code, exc.message)
        return
    except Exception as exc:
        log.exception("handler for %s failed", msg.subject)
        await _reply_error(nc, msg, "internal", f"{type(exc).__name__}: {exc}")
        return
    await nc.publish(msg.reply, reply.model_dump_json().encode())


async def _reply_error(nc: NATS, msg: Msg, code: str, message: str) -> None:
    body = RpcError(code=code, message=message).model_dump_json().encode()
    await nc.publish(msg.reply, body, headers={ERROR_HEADER: code})
