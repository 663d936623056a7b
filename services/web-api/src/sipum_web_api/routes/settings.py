"""The signed-in user's settings (``/api/v1/settings``): every attribute of the settings model
with its effective value and where it comes from; the user changes the ones the model lets
them change (``sipum.accounts.user_settings``), within bounds, or returns one to the default.

Errors are the uniform ``{"detail": "…"}``, a malformed body's too (the body is read here,
not by FastAPI's validation, so a wrong type is the same 422 as a value out of bounds)."""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from sipum.accounts.user_settings import SettingRefused, change_own
from sipum.db import Pool, settings, users

from sipum_web_api.deps import BusDep, CurrentUser, PoolDep
from sipum_web_api.schemas import ErrorOut, Responses

router = APIRouter(prefix="/api/v1/settings", tags=["settings"])
ERRORS: Responses = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}}

SettingValue = int | float | bool | str | None


class SettingOut(BaseModel):
    key: str
    value: SettingValue = Field(
        description="the effective value; null: the service's own setting applies"
    )
    source: Literal["user", "domain", "default"] = Field(
        description="user: the user's own value; domain: the domain's default; default: built-in"
    )
    default: SettingValue = Field(
        description="what applies without the user's value (the domain's, else the built-in)"
    )
    overridable: bool = Field(description="whether the user may change it")
    type: Literal["integer", "number", "boolean", "string"]
    bounds: str = Field(description="the allowed values in words")
    minimum: float | None = None
    maximum: float | None = None
    choices: list[str] | None = None
    max_length: int | None = None
    description: str
    builtin_note: str | None = Field(
        default=None, description="what the built-in is when it is a service's setting"
    )


class SettingsOut(BaseModel):
    items: list[SettingOut]


class SettingsPatch(BaseModel):
    """The settings a user may change; ``null`` returns one to the default. Any other key, a
    setting the administrator sets, or a value out of bounds: 422, nothing changed."""

    model_config = ConfigDict(extra="forbid")

    ring_timeout_seconds: int | None = Field(default=None, ge=0, le=300)
    email_attaches_audio: bool | None = None
    email_audio_format: Literal["wav", "mp3"] | None = None
    delete_after_email: bool | None = None
    greeting_mode: Literal["auto", "system"] | None = None
    prompt_language: str | None = Field(default=None, max_length=35, examples=["de-DE"])
    time_zone: str | None = Field(default=None, max_length=64, examples=["Europe/Berlin"])
    urgent_allowed: bool | None = None
    message_order: Literal["newest", "oldest"] | None = None
    email_notifications: bool | None = None
    command_notifications: bool | None = None
    transcription_enabled: bool | None = None
    transcription_language: str | None = Field(default=None, max_length=35)


_TYPES: dict[type, Literal["integer", "number", "boolean", "string"]] = {
    int: "integer",
    float: "number",
    bool: "boolean",
    str: "string",
}


def setting_out(r: settings.Resolved) -> SettingOut:
    s = r.setting
    return SettingOut(
        key=s.name, value=r.value, source=r.source, default=r.default,
        overridable=s.user_may_set, type=_TYPES[s.kind], bounds=s.bounds,
        minimum=s.low, maximum=s.high, choices=list(s.choices) or None,
        max_length=s.max_length, description=s.description, builtin_note=s.builtin_from,
    )  # fmt: skip


async def report(pool: Pool, user: users.User) -> dict[str, settings.Resolved]:
    found = await users.settings_report(pool, user.id)
    if found is None:  # deleted by a concurrent request
        raise HTTPException(401, "not authenticated")
    return found


@router.get("", response_model=SettingsOut, responses=ERRORS)
async def get_settings(pool: PoolDep, user: CurrentUser) -> SettingsOut:
    """Every setting, in the order of the settings table (docs/administration.md)."""
    return SettingsOut(items=[setting_out(r) for r in (await report(pool, user)).values()])


@router.patch(
    "",
    response_model=SettingsOut,
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SettingsPatch.model_json_schema()}},
        }
    },
)
async def patch_settings(
    request: Request, pool: PoolDep, bus: BusDep, user: CurrentUser
) -> SettingsOut:
    """Set some of the user's own values (``null``: back to the default). All or nothing; a
    change counts from the next call (``user.updated`` names the changed keys)."""
    try:
        body: Any = json.loads(await request.body() or b"null")
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(422, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(422, "the body must be a JSON object of settings")
    try:
        await change_own(pool, bus, user, body)
    except SettingRefused as exc:
        raise HTTPException(422, str(exc)) from None
    fresh = await users.get(pool, user.id)
    if fresh is None:
        raise HTTPException(401, "not authenticated")
    return SettingsOut(items=[setting_out(r) for r in (await report(pool, fresh)).values()])


@router.delete("/{key}", response_model=SettingOut, responses=ERRORS)
async def delete_setting(key: str, pool: PoolDep, bus: BusDep, user: CurrentUser) -> SettingOut:
    """Remove the user's own value: the domain's default (or the built-in) applies again."""
    if key not in settings.SETTINGS:
        raise HTTPException(404, f"not a setting: {key}")
    try:
        await change_own(pool, bus, user, {key: None})
    except SettingRefused as exc:
        raise HTTPException(422, str(exc)) from None
    fresh = await users.get(pool, user.id)
    if fresh is None:
        raise HTTPException(401, "not authenticated")
    return setting_out((await report(pool, fresh))[key])
