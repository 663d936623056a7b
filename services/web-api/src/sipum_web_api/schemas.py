"""Request and response bodies of the REST API (what `/docs` shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

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
    audio_url: str
    rtsp_path: str


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


class ErrorOut(BaseModel):
    detail: str
