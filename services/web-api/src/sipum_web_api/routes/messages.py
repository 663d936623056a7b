"""The mailbox: list, metadata, audio (HTTP Range), mark heard, move, delete.

A user sees only their own messages: another mailbox's id answers 404, exactly like an id
that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sipum.blobstore import BlobNotFoundError
from sipum.db import Pool, messages, users
from sipum.events import MessageDeleted
from sipum.security.tokens import InvalidToken, play_link_claims

from sipum_web_api.deps import BlobsDep, BusDep, CurrentUser, PoolDep, SecretDep, current_user
from sipum_web_api.schemas import (
    ErrorOut,
    FolderName,
    MessageOut,
    MessagePage,
    MessagePatch,
    Responses,
)

router = APIRouter(prefix="/api/v1/messages", tags=["messages"])
NOT_FOUND: Responses = {404: {"model": ErrorOut}, 401: {"model": ErrorOut}}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def message_out(user: users.User, m: messages.Message) -> MessageOut:
    return MessageOut(
        id=m.id,
        folder=m.folder.value,
        caller_uri=m.caller_uri,
        caller_display_name=m.caller_display_name,
        called_uri=m.called_uri,
        arrival=m.arrival.value,
        diversion_cause=m.diversion_cause,
        received_at=m.received_at,
        duration_s=m.duration_ms / 1000,
        codec=m.codec,
        size_bytes=m.size_bytes,
        heard=m.heard,
        interrupted=m.interrupted,
        audio_url=f"/api/v1/messages/{m.id}/audio",
        rtsp_path=f"/{user.username}/{m.folder.value}/{m.id}.wav",
    )


async def owned(pool: Pool, user: users.User, message_id: int) -> messages.Message:
    found = await messages.get_for_user(pool, user.id, message_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such message")
    return found


@router.get("", response_model=MessagePage, responses=NOT_FOUND)
async def list_messages(
    pool: PoolDep,
    user: CurrentUser,
    folder: FolderName = "inbox",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> MessagePage:
    """Newest first; ``total``/``unheard`` count the whole folder for paging."""
    items = await messages.list_for_user(pool, user.id, folder, limit=limit, offset=offset)
    counts = getattr(await messages.counts(pool, user.id), folder)
    return MessagePage(
        items=[message_out(user, m) for m in items],
        folder=folder,
        total=counts.total,
        unheard=counts.unheard,
        limit=limit,
        offset=offset,
    )


@router.get("/{message_id}", response_model=MessageOut, responses=NOT_FOUND)
async def get_message(message_id: int, pool: PoolDep, user: CurrentUser) -> MessageOut:
    return message_out(user, await owned(pool, user, message_id))


async def audio_owner(
    request: Request, pool: Pool, secret: str, message_id: int, token: str | None
) -> users.User:
    """The session's user, or the user a playback token from the e-mail was issued for."""
    if token is not None:
        try:
            uid, mid = play_link_claims(secret, token)
        except InvalidToken:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or expired link") from None
        user = await users.get(pool, uid)
        if user is None or mid != message_id:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such message")
        return user
    return await current_user(request, pool, secret)


@router.get(
    "/{message_id}/audio",
    responses={
        200: {"content": {"audio/wav": {}}},
        206: {"content": {"audio/wav": {}}},
        **NOT_FOUND,
        416: {"model": ErrorOut},
    },
    response_class=Response,
)
async def get_audio(
    message_id: int,
    request: Request,
    pool: PoolDep,
    blobs: BlobsDep,
    secret: SecretDep,
    token: str | None = None,
) -> Response:
    """The WAV file; honours ``Range: bytes=…`` (RFC 9110 §14) for seeking players.

    ``?token=`` accepts the signed playback link from the notification e-mail instead of a
    session."""
    user = await audio_owner(request, pool, secret, message_id, token)
    message = await owned(pool, user, message_id)
    try:
        size = (await blobs.stat(message.blob_key)).size
    except BlobNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "audio of this message is missing") from None
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'inline; filename="{message.id}.wav"',
        "Cache-Control": "private, max-age=0",
    }
    spec = request.headers.get("range")
    match = _RANGE.match(spec.strip()) if spec else None
    if match is None or (not match[1] and not match[2]):
        data = await blobs.get(message.blob_key)
        return Response(data, media_type="audio/wav", headers=headers)
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    else:  # suffix range: the last N bytes
        start = max(0, size - int(match[2]))
        end = size - 1
    if start >= size or start > end:
        headers["Content-Range"] = f"bytes */{size}"
        return Response(status_code=416, headers=headers)
    data = await blobs.get(message.blob_key, start, end - start + 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(
        data, status_code=status.HTTP_206_PARTIAL_CONTENT, media_type="audio/wav", headers=headers
    )


@router.patch("/{message_id}", response_model=MessageOut, responses=NOT_FOUND)
async def update_message(
    message_id: int, body: MessagePatch, pool: PoolDep, bus: BusDep, user: CurrentUser
) -> MessageOut:
    """Mark heard/unheard and/or move to another folder."""
    message = await owned(pool, user, message_id)
    changed: list[str] = []
    if body.heard is not None and body.heard != message.heard:
        message = await messages.mark_heard(pool, user.id, message_id, body.heard) or message
        changed.append("heard")
    if body.folder is not None and body.folder != message.folder.value:
        message = await messages.move(pool, user.id, message_id, body.folder) or message
        changed.append("folder")
    if changed:
        await bus.publish(messages.updated_event(user, message, changed))
    return message_out(user, message)


@router.delete("/{message_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def delete_message(
    message_id: int, pool: PoolDep, blobs: BlobsDep, bus: BusDep, user: CurrentUser
) -> Response:
    """Delete for good: the row, then the audio."""
    message = await messages.delete(pool, user.id, message_id)
    if message is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such message")
    await blobs.delete(message.blob_key)
    await bus.publish(
        MessageDeleted(
            username=user.username,
            domain=user.domain,
            message_id=message.id,
            blob_key=message.blob_key,
        )
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
