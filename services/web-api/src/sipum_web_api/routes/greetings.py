"""The user's greetings: upload (any audio FFmpeg reads), list, download, delete.

The media-recorder plays them instead of the default prompt (temporary before busy/unavailable,
see docs/recorder.md).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel
from sipum.blobstore import BlobNotFoundError
from sipum.blobstore.keys import greeting_key
from sipum.db import greetings

from sipum_web_api.audio import BadAudio, to_greeting_wav
from sipum_web_api.deps import BlobsDep, CurrentUser, PoolDep
from sipum_web_api.schemas import ErrorOut, Responses

router = APIRouter(prefix="/api/v1/greetings", tags=["greetings"])
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
"""Largest greeting upload (``limits.BodyLimit`` enforces it, with the time bound)."""
ERRORS: Responses = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}}


class GreetingOut(BaseModel):
    kind: greetings.GreetingKind
    duration_s: float
    size_bytes: int
    expires_at: datetime | None
    updated_at: datetime
    audio_url: str


def greeting_out(g: greetings.Greeting) -> GreetingOut:
    return GreetingOut(
        kind=g.kind,
        duration_s=g.duration_ms / 1000,
        size_bytes=g.size_bytes,
        expires_at=g.expires_at,
        updated_at=g.updated_at,
        audio_url=f"/api/v1/greetings/{g.kind.value}/audio",
    )


@router.get("", response_model=list[GreetingOut], responses=ERRORS)
async def list_greetings(pool: PoolDep, user: CurrentUser) -> list[GreetingOut]:
    return [greeting_out(g) for g in await greetings.list_for_user(pool, user.id)]


@router.put(
    "/{kind}",
    response_model=GreetingOut,
    responses={**ERRORS, 413: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    openapi_extra={
        "requestBody": {
            "content": {"audio/*": {"schema": {"type": "string", "format": "binary"}}},
            "required": True,
        }
    },
)
async def upload_greeting(
    kind: greetings.GreetingKind,
    request: Request,
    pool: PoolDep,
    blobs: BlobsDep,
    user: CurrentUser,
    expires_at: datetime | None = None,
) -> GreetingOut:
    """Upload a greeting as the request body (WAV, MP3, Ogg/Opus, … up to 10 MiB and 120 s).
    ``expires_at`` applies to the ``temporary`` greeting."""
    data = await request.body()  # bounded in size and time by limits.BodyLimit
    try:
        wav, duration_ms = await asyncio.to_thread(to_greeting_wav, data)
    except BadAudio as exc:
        raise HTTPException(422, str(exc)) from None
    key = greeting_key(user.domain, user.username, kind.value)
    await blobs.put(key, wav, content_type="audio/wav")
    greeting, replaced = await greetings.put(
        pool,
        user.id,
        kind,
        key,
        duration_ms=duration_ms,
        size_bytes=len(wav),
        expires_at=expires_at if kind is greetings.GreetingKind.TEMPORARY else None,
    )
    if replaced is not None and replaced != key:
        await blobs.delete(replaced)
    return greeting_out(greeting)


@router.get(
    "/{kind}/audio",
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}}}, **ERRORS},
)
async def greeting_audio(
    kind: greetings.GreetingKind, pool: PoolDep, blobs: BlobsDep, user: CurrentUser
) -> Response:
    greeting = await greetings.get(pool, user.id, kind)
    if greeting is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such greeting")
    try:
        data = await blobs.get(greeting.blob_key)
    except BlobNotFoundError:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "audio of this greeting is missing"
        ) from None
    return Response(data, media_type="audio/wav")


@router.delete("/{kind}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_greeting(
    kind: greetings.GreetingKind, pool: PoolDep, blobs: BlobsDep, user: CurrentUser
) -> Response:
    """Back to the default prompt."""
    greeting = await greetings.delete(pool, user.id, kind)
    if greeting is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such greeting")
    await blobs.delete(greeting.blob_key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
