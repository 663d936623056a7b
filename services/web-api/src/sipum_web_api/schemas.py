"""Request and response bodies of the REST API (what `/docs` shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FolderName = Literal["inbox", "saved", "trash"]


class SignupRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64, examples=["alice"])
    password: str = Field(min_length=1, max_length=256)
    domain: str | None = Field(
        default=None, max_length=253, description="default: the server's domain"
    )
    email: str | None = Field(default=None, max_length=254, examples=["alice@example.com"])
    display_name: str = Field(default="", max_length=128)
    pin: str | None = Field(default=None, max_length=16, description="digits for phone access")


class LoginRequest(BaseModel):
    username: str = Field(max_length=320, description="alice or alice@domain")
    password: str = Field(max_length=256)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class UserOut(BaseModel):
    id: int
    username: str
    domain: str
    address: str
    display_name: str
    email: str | None
    has_pin: bool


class AccountOut(UserOut):
    email_attaches_audio: bool = Field(
        description="notification e-mails carry the message as a WAV attachment (your choice, "
        "else the domain's default)"
    )
    email_audio_format: Literal["wav", "mp3"] = Field(
        description="format of that attachment (your choice, else the domain's default)"
    )


class AccountPatch(BaseModel):
    """Only the fields present change; unknown fields are refused (422)."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, max_length=128)
    email: str | None = Field(
        default=None,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="where new-message notifications go; null stops them",
        examples=["alice@example.com"],
    )
    email_attaches_audio: bool | None = Field(
        default=None, description="attach the WAV to notifications; null: the domain's default"
    )
    email_audio_format: Literal["wav", "mp3"] | None = Field(
        default=None, description="attach as WAV or MP3; null: the domain's default"
    )
    pin: str | None = Field(
        default=None, min_length=1, max_length=16, description="4 to 12 digits, for phone access"
    )
    new_password: str | None = Field(default=None, min_length=1, max_length=256)
    current_password: str | None = Field(
        default=None, max_length=256, description="required with new_password"
    )


class AccountDelete(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(max_length=256, description="the current password, to confirm")


class TranscriptWordOut(BaseModel):
    word: str
    start: float = Field(description="seconds from the start of the message")
    end: float
    confidence: float | None = Field(description="0..1; null when the engine gives none")


class TranscriptOut(BaseModel):
    """The machine transcript of a message (the transcriber's work; may be inaccurate)."""

    text: str
    language: str = Field(examples=["en-US"])
    engine: str = Field(examples=["pocketsphinx"])
    engine_version: str
    confidence: float | None = Field(description="0..1 over the whole text; null: unknown")
    words: list[TranscriptWordOut] = Field(description="each word with its time, in order")
    created_at: datetime


class MessageOut(BaseModel):
    id: int
    folder: FolderName
    caller_uri: str
    caller_display_name: str
    called_uri: str
    arrival: str
    diversion_cause: str | None
    received_at: datetime
    duration_s: float
    codec: str
    size_bytes: int
    heard: bool
    interrupted: bool = False
    """Recovered after the recorder died mid-call: the caller was cut off."""
    urgent: bool = False
    """The caller marked it urgent (key 4 after recording); a forwarded copy keeps it."""
    forwarded_from: str | None = Field(default=None, examples=["alice@example.com"])
    """A copy forwarded by phone (main menu key 8): the mailbox it came from; null: a message
    a caller left."""
    audio_url: str
    peaks_url: str = Field(description="its waveform peaks (GET, JSON), for drawing")
    rtsp_path: str
    expires_at: datetime | None = Field(
        default=None,
        description="delete after e-mail: the server deletes the message then (the e-mail "
        "carried it); null: kept until you delete it",
    )
    transcript: TranscriptOut | None = Field(
        default=None,
        description="null until the transcriber stored one (or when transcription is off)",
    )


class PeaksOut(BaseModel):
    """A message's waveform: ``peaks`` (up to 400) cut the recording into equal spans, each the
    span's largest absolute sample over full scale, 0…1."""

    sample_rate: int
    samples: int
    duration_s: float
    peaks: list[float]


class MessagePage(BaseModel):
    items: list[MessageOut]
    folder: FolderName
    total: int
    unheard: int
    limit: int
    offset: int


class MessagePatch(BaseModel):
    heard: bool | None = None
    folder: FolderName | None = None


#: FastAPI's ``responses=`` table: status code → OpenAPI response (``{"model": ErrorOut}``).
Responses = dict[int | str, dict[str, Any]]


class ErrorOut(BaseModel):
    detail: str
