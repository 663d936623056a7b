"""The mailbox: list, metadata, audio (HTTP Range), mark heard, move, delete.

A user sees only their own messages: another mailbox's id answers 404, exactly like an id
that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sipum.blobstore import BlobNotFoundError, peaks_key
from sipum.db import Pool, messages, transcripts, users
from sipum.events import MessageDeleted
from sipum.security.tokens import InvalidToken, play_link_claims
from sipum_protocol.media.recording import Peaks, peaks_of_wav

from sipum_web_api.deps import BlobsDep, BusDep, CurrentUser, PoolDep, SecretDep, current_user
from sipum_web_api.schemas import (
    ErrorOut,
    FolderName,
    MessageOut,
    MessagePage,
    MessagePatch,
    PeaksOut,
    Responses,
    TranscriptOut,
    TranscriptWordOut,
)

log = logging.getLogger("sipum.misc.web.messages")
router = APIRouter(prefix="/api/v1/messages", tags=["messages"])
NOT_FOUND: Responses = {404: {"model": ErrorOut}, 401: {"model": ErrorOut}}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def transcript_out(t: transcripts.Transcript | None) -> TranscriptOut | None:
    if t is None:
        return None
    return TranscriptOut(
        text=t.text,
        language=t.language,
        engine=t.engine,
        engine_version=t.engine_version,
        confidence=None if t.confidence is None else round(t.confidence, 3),
        words=[TranscriptWordOut(**w.as_json()) for w in t.words],
        created_at=t.created_at,
    )


def message_out(
    user: users.User, m: messages.Message, transcript: transcripts.Transcript | None = None
) -> MessageOut:
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
        urgent=m.urgent,
        forwarded_from=m.forwarded_from,
        audio_url=f"/api/v1/messages/{m.id}/audio",
        peaks_url=f"/api/v1/messages/{m.id}/peaks",
        rtsp_path=f"/{user.username}/{m.folder.value}/{m.id}.wav",
        expires_at=m.expires_at,
        transcript=transcript_out(transcript),
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
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description='search the transcripts (web-search syntax: words, "a phrase", '
            "or, -word); best match first",
        ),
    ] = None,
    order: Annotated[
        Literal["newest", "oldest"] | None,
        Query(description="default: the user's setting message_order (newest)"),
    ] = None,
) -> MessagePage:
    """Newest first unless ``order`` or the setting ``message_order`` says oldest;
    ``total``/``unheard`` count the whole folder for paging. With ``q``: the folder's messages
    whose transcript matches, best match first; ``total`` counts the matches."""
    if q is not None:
        return await search_page(pool, user, q, folder, limit, offset)
    if order is None:
        effective = await users.effective_settings(pool, user.id)
        order = "oldest" if effective and effective.message_order == "oldest" else "newest"
    items = await messages.list_for_user(
        pool, user.id, folder, limit=limit, offset=offset, oldest_first=order == "oldest"
    )
    counts = getattr(await messages.counts(pool, user.id), folder)
    texts = await transcripts.get_many(pool, [m.id for m in items])
    return MessagePage(
        items=[message_out(user, m, texts.get(m.id)) for m in items],
        folder=folder,
        total=counts.total,
        unheard=counts.unheard,
        limit=limit,
        offset=offset,
    )


async def search_page(
    pool: Pool, user: users.User, query: str, folder: FolderName, limit: int, offset: int
) -> MessagePage:
    """``GET /api/v1/messages?q=``: full-text search of the user's own transcripts (the
    owner is part of the query, so another mailbox's words never match)."""
    effective = await users.effective_settings(pool, user.id)
    language = (effective.transcription_language if effective else None) or "en-US"
    if language == "auto":
        language = "en-US"
    page = await transcripts.search_messages(
        pool, user.id, query, folder=folder, language=language, limit=limit, offset=offset
    )
    counts = getattr(await messages.counts(pool, user.id), folder)
    texts = await transcripts.get_many(pool, [m.id for m in page.messages])
    return MessagePage(
        items=[message_out(user, m, texts.get(m.id)) for m in page.messages],
        folder=folder,
        total=page.total,
        unheard=counts.unheard,
        limit=limit,
        offset=offset,
    )


@router.get("/{message_id}", response_model=MessageOut, responses=NOT_FOUND)
async def get_message(message_id: int, pool: PoolDep, user: CurrentUser) -> MessageOut:
    message = await owned(pool, user, message_id)
    return message_out(user, message, await transcripts.get(pool, message.id))


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
        if user.disabled:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this account is disabled")
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


@router.get("/{message_id}/peaks", response_model=PeaksOut, responses=NOT_FOUND)
async def get_peaks(
    message_id: int, pool: PoolDep, blobs: BlobsDep, user: CurrentUser, response: Response
) -> PeaksOut:
    """The waveform peaks, stored next to the audio when the message was recorded; for an
    older message computed from its WAV on first request and stored then."""
    message = await owned(pool, user, message_id)
    key = peaks_key(message.blob_key)
    try:
        peaks = Peaks.from_json(await blobs.get(key))
    except (BlobNotFoundError, ValueError):
        try:
            wav = await blobs.get(message.blob_key)
        except BlobNotFoundError:
            raise HTTPException(404, "audio of this message is missing") from None
        try:
            peaks = await asyncio.to_thread(peaks_of_wav, wav)
        except ValueError as exc:
            raise HTTPException(404, f"no waveform for this audio: {exc}") from None
        try:
            await blobs.put(key, peaks.to_json(), content_type="application/json")
        except Exception:  # served anyway; computed again next time
            log.warning("could not store the waveform peaks %s", key, exc_info=True)
    response.headers["Cache-Control"] = "private, max-age=86400"  # they never change
    return PeaksOut(
        sample_rate=peaks.sample_rate,
        samples=peaks.samples,
        duration_s=peaks.duration_s,
        peaks=peaks.peaks,
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
    await blobs.delete(peaks_key(message.blob_key))
    await bus.publish(
        MessageDeleted(
            username=user.username,
            domain=user.domain,
            message_id=message.id,
            blob_key=message.blob_key,
        )
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
