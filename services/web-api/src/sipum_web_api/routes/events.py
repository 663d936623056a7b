"""``GET /api/v1/events``: the signed-in mailbox's events as Server-Sent Events (sipum_web_api.live)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query
from fastapi.responses import StreamingResponse

from sipum_web_api.deps import CurrentUser, StateDep
from sipum_web_api.live import MAX_STREAMS_PER_MAILBOX, TooManyStreams
from sipum_web_api.schemas import ErrorOut

router = APIRouter(prefix="/api/v1", tags=["events"])


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "the event stream"},
        401: {"model": ErrorOut},
        429: {"model": ErrorOut},
    },
)
async def events(
    user: CurrentUser,
    state: StateDep,
    last_event_id: Annotated[int | None, Header(ge=0)] = None,
    after: Annotated[
        int | None, Query(ge=0, description="like Last-Event-ID, for clients that cannot set it")
    ] = None,
) -> StreamingResponse:
    """``message.created``, ``message.updated`` and ``message.deleted`` of your mailbox as they
    happen: ``id`` is the event's stream sequence, ``event`` its kind, ``data`` its JSON (as in
    docs/events.md). Reconnect with ``Last-Event-ID`` to get what you missed; an ``event:
    reset`` means too much was missed — reload the list."""
    try:
        stream = await state.live.open(f"{user.username}@{user.domain}")
    except TooManyStreams:
        raise HTTPException(
            429, f"at most {MAX_STREAMS_PER_MAILBOX} event streams per mailbox"
        ) from None
    resume = last_event_id if last_event_id is not None else after
    return StreamingResponse(
        state.live.frames(stream, resume),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
