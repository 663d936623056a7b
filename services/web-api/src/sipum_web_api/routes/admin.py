"""The administrator's REST API (``/api/v1/admin/…``) over ``sipum.accounts.admin``, the service
layer ``sipum-admin`` uses too. Every route but the login takes an administrator's bearer token:
a user's token gets 403, none 401 (tested over every route of the OpenAPI document)."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sipum.accounts import admin
from sipum.db import admins, domains, users

from sipum_web_api.auth import ADMIN_TTL, issue_admin_token
from sipum_web_api.deps import (
    BlobsDep,
    BusDep,
    CurrentAdmin,
    DeregisterWaitDep,
    LoginThrottleDep,
    PoolDep,
    SecretDep,
)
from sipum_web_api.schemas import ErrorOut, Responses

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
ERRORS: Responses = {
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    404: {"model": ErrorOut},
    409: {"model": ErrorOut},
    422: {"model": ErrorOut},
}
T = TypeVar("T")


async def run(action: Awaitable[T]) -> T:
    """The service layer's errors as HTTP answers."""
    try:
        return await action
    except admin.NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except admin.Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    except admin.Invalid as exc:
        raise HTTPException(422, str(exc)) from None


class Settings(BaseModel):
    """The attributes a domain sets by default and a user may override (docs/administration.md)."""

    model_config = ConfigDict(extra="forbid")

    quota_bytes: int | None = Field(default=None, ge=0, le=10**12)
    max_messages: int | None = Field(default=None, ge=0, le=100_000)
    max_message_seconds: int | None = Field(default=None, ge=1, le=3600)
    ring_timeout_seconds: int | None = Field(default=None, ge=0, le=300)
    email_attaches_audio: bool | None = None
    email_audio_format: Literal["wav", "mp3"] | None = None
    # The rest of the settings model (sipum.db.settings checks the bounds: 422 otherwise).
    transcription_enabled: bool | None = None
    transcription_language: str | None = Field(default=None, max_length=35)
    min_message_seconds: float | None = Field(default=None, ge=0, le=60)
    max_silence_seconds: float | None = Field(default=None, ge=1, le=120)
    delete_after_email: bool | None = None
    greeting_mode: Literal["auto", "system"] | None = None
    prompt_language: str | None = Field(default=None, max_length=35)
    time_zone: str | None = Field(default=None, max_length=64)
    pin_min_length: int | None = Field(default=None, ge=4, le=12, description="domains only")
    pin_lockout_failures: int | None = Field(default=None, ge=2, le=100, description="domains only")
    operator_uri: str | None = Field(default=None, max_length=256)
    urgent_allowed: bool | None = None
    message_order: Literal["newest", "oldest"] | None = None
    email_notifications: bool | None = None
    command_notifications: bool | None = None
    mail_from: str | None = Field(default=None, max_length=320, description="domains only")
    registrar: str | None = Field(
        default=None, max_length=262, description="domains only: host[:port] or sip:host[:port]"
    )

    def given(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class AdminLogin(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=256)


class AdminToken(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class DomainIn(Settings):
    name: str = Field(max_length=253)
    realm: str | None = Field(default=None, max_length=253)


class DomainOut(BaseModel):
    name: str
    realm: str
    quota_bytes: int
    max_messages: int
    max_message_seconds: int
    ring_timeout_seconds: int
    email_attaches_audio: bool
    email_audio_format: str
    created_at: datetime
    transcription_enabled: bool
    transcription_language: str | None
    min_message_seconds: float | None = Field(description="null: the built-in (recorder's)")
    max_silence_seconds: float | None
    delete_after_email: bool
    greeting_mode: str | None
    prompt_language: str | None
    time_zone: str | None
    pin_min_length: int | None
    pin_lockout_failures: int | None
    operator_uri: str | None
    urgent_allowed: bool | None = Field(default=None, description="null: the built-in (true)")
    message_order: str | None
    email_notifications: bool | None
    command_notifications: bool | None
    mail_from: str | None = Field(description="null: the notifier's mail_from")
    registrar: str | None = Field(default=None, description="null: the registrar-agent's registrar")


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(max_length=300, examples=["carol@example.com"])
    password: str = Field(max_length=256)
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    display_name: str = Field(default="", max_length=128)
    pin: str | None = Field(default=None, max_length=16)
    overrides: Settings = Field(default_factory=Settings)


class AdminUserOut(BaseModel):
    id: int
    address: str
    display_name: str
    email: str | None
    has_pin: bool
    overrides: dict[str, Any] = Field(description="the user's own values (others: the domain's)")
    created_at: datetime
    disabled: bool = False


class UserPageOut(BaseModel):
    items: list[AdminUserOut]
    total: int


class PasswordIn(BaseModel):
    password: str = Field(max_length=256)


class PinIn(BaseModel):
    pin: str | None = Field(max_length=16, description="null removes the PIN")


class QuotaOut(BaseModel):
    address: str
    messages: int
    bytes: int
    max_messages: int
    quota_bytes: int
    percent: float


class ConsumerOut(BaseModel):
    name: str
    pending: int
    unacknowledged: int
    waiting_clients: int


class StatusOut(BaseModel):
    domains: int
    users: int
    messages: int
    stream: str
    stream_events: int
    consumers: list[ConsumerOut]


def domain_out(d: domains.Domain) -> DomainOut:
    return DomainOut(**{name: getattr(d, name) for name in DomainOut.model_fields})


def admin_user_out(u: users.User) -> AdminUserOut:
    overrides = {
        name: getattr(u, name) for name in users.OVERRIDABLE if getattr(u, name) is not None
    }
    return AdminUserOut(
        id=u.id, address=u.address, display_name=u.display_name, email=u.email,
        has_pin=u.has_pin, overrides=overrides, created_at=u.created_at, disabled=u.disabled,
    )  # fmt: skip


@router.post(
    "/login",
    response_model=AdminToken,
    responses={401: {"model": ErrorOut}, 429: {"model": ErrorOut}},
)
async def admin_login(
    body: AdminLogin, request: Request, pool: PoolDep, secret: SecretDep, throttle: LoginThrottleDep
) -> AdminToken:
    """An administrator's bearer token (1 h). No cookie: the admin API is for tools and scripts."""
    client = request.client.host if request.client else "-"
    key = f"{client}|admin:{body.username.strip().lower()}"
    if throttle.blocked(key):
        raise HTTPException(429, "too many failed logins; try again later")
    found = await admins.authenticate(pool, body.username, body.password)
    if found is None:
        throttle.failed(key)
        raise HTTPException(401, "wrong administrator name or password")
    throttle.succeeded(key)
    return AdminToken(
        access_token=issue_admin_token(secret, found.id, found.password_hash), expires_in=ADMIN_TTL
    )


@router.get("/domains", response_model=list[DomainOut], responses=ERRORS)
async def list_domains(pool: PoolDep, _: CurrentAdmin) -> list[DomainOut]:
    return [domain_out(d) for d in await domains.list_all(pool)]


@router.post("/domains", status_code=201, response_model=DomainOut, responses=ERRORS)
async def create_domain(body: DomainIn, pool: PoolDep, _: CurrentAdmin) -> DomainOut:
    defaults = {k: v for k, v in body.given().items() if k not in ("name", "realm")}
    if body.realm:
        defaults["realm"] = body.realm
    return domain_out(await run(admin.create_domain(pool, body.name, **defaults)))


@router.patch("/domains/{name}", response_model=DomainOut, responses=ERRORS)
async def update_domain(
    name: str, body: Settings, pool: PoolDep, bus: BusDep, _: CurrentAdmin
) -> DomainOut:
    """Change defaults; users without an override of their own get the new value on their next
    call. Omit a field to keep it; ``null`` returns one of the newer settings to its built-in
    (the older ones — quota, lengths, ring timeout, e-mail audio, transcription — always have a
    domain value: 422)."""
    given = body.given()
    return domain_out(await run(admin.update_domain(pool, name, bus=bus, **given)))


@router.delete("/domains/{name}", status_code=204, response_class=Response, responses=ERRORS)
async def delete_domain(
    name: str,
    pool: PoolDep,
    bus: BusDep,
    blobs: BlobsDep,
    wait: DeregisterWaitDep,
    _: CurrentAdmin,
    with_users: Annotated[bool, Query(description="delete its mailboxes too")] = False,
) -> Response:
    await run(
        admin.delete_domain(pool, bus, blobs, name, with_users=with_users, deregister_wait=wait)
    )
    return Response(status_code=204)


@router.get("/users", response_model=UserPageOut, responses=ERRORS)
async def list_users(
    pool: PoolDep,
    _: CurrentAdmin,
    domain: Annotated[str | None, Query(max_length=253)] = None,
    q: Annotated[
        str | None, Query(max_length=100, description="name, display name, e-mail")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> UserPageOut:
    page = await admin.list_users(pool, domain=domain, search=q, limit=limit, offset=offset)
    return UserPageOut(items=[admin_user_out(u) for u in page.items], total=page.total)


@router.post("/users", status_code=201, response_model=AdminUserOut, responses=ERRORS)
async def create_user(body: UserIn, pool: PoolDep, bus: BusDep, _: CurrentAdmin) -> AdminUserOut:
    user = await run(
        admin.create_user(
            pool,
            bus,
            body.address,
            body.password,
            email=body.email,
            display_name=body.display_name,
            pin=body.pin,
            **body.overrides.given(),
        )  # fmt: skip
    )
    return admin_user_out(user)


@router.patch("/users/{address}", response_model=AdminUserOut, responses=ERRORS)
async def update_user(
    address: str, body: Settings, pool: PoolDep, bus: BusDep, _: CurrentAdmin
) -> AdminUserOut:
    """Set overrides; ``null`` returns a setting to the domain's default."""
    return admin_user_out(await run(admin.update_overrides(pool, bus, address, body.given())))


@router.post(
    "/users/{address}/password", status_code=204, response_class=Response, responses=ERRORS
)
async def reset_password(
    address: str, body: PasswordIn, pool: PoolDep, bus: BusDep, _: CurrentAdmin
) -> Response:
    await run(admin.reset_password(pool, bus, address, body.password))
    return Response(status_code=204)


@router.post("/users/{address}/pin", status_code=204, response_class=Response, responses=ERRORS)
async def reset_pin(
    address: str, body: PinIn, pool: PoolDep, bus: BusDep, _: CurrentAdmin
) -> Response:
    await run(admin.reset_pin(pool, bus, address, body.pin))
    return Response(status_code=204)


@router.post("/users/{address}/disable", response_model=AdminUserOut, responses=ERRORS)
async def disable_user(address: str, pool: PoolDep, bus: BusDep, _: CurrentAdmin) -> AdminUserOut:
    """The user cannot sign in (403), their voicemail contact is de-registered and calls that
    still reach sipum for them get 480; messages and settings stay (docs/administration.md)."""
    return admin_user_out(await run(admin.set_disabled(pool, bus, address, True)))


@router.post("/users/{address}/enable", response_model=AdminUserOut, responses=ERRORS)
async def enable_user(address: str, pool: PoolDep, bus: BusDep, _: CurrentAdmin) -> AdminUserOut:
    """Undo ``disable``: sign-in works again and the agent registers the mailbox again."""
    return admin_user_out(await run(admin.set_disabled(pool, bus, address, False)))


class UnlockOut(BaseModel):
    address: str
    was_locked: bool
    locked_until: datetime | None
    failures: int
    lockouts: int


@router.post("/users/{address}/unlock", response_model=UnlockOut, responses=ERRORS)
async def unlock_user(address: str, pool: PoolDep, _: CurrentAdmin) -> UnlockOut:
    """Lift the mailbox's phone PIN lockout (after too many wrong PINs by phone) and forget
    its wrong PINs; says what it was."""
    done = await run(admin.unlock(pool, address))
    return UnlockOut(
        address=done.address, was_locked=done.was_locked, locked_until=done.locked_until,
        failures=done.failures, lockouts=done.lockouts,
    )  # fmt: skip


@router.delete("/users/{address}", status_code=204, response_class=Response, responses=ERRORS)
async def delete_user(
    address: str, pool: PoolDep, bus: BusDep, blobs: BlobsDep, wait: DeregisterWaitDep,
    _: CurrentAdmin,
) -> Response:  # fmt: skip
    await run(admin.delete_user(pool, bus, blobs, address, deregister_wait=wait))
    return Response(status_code=204)


@router.get("/quotas", response_model=list[QuotaOut], responses=ERRORS)
async def quotas(
    pool: PoolDep, _: CurrentAdmin, domain: Annotated[str | None, Query(max_length=253)] = None
) -> list[QuotaOut]:
    """Every mailbox's use against its effective limits, fullest first."""
    return [
        QuotaOut(
            address=f"{q.username}@{q.domain}",
            messages=q.messages,
            bytes=q.bytes,
            max_messages=q.max_messages,
            quota_bytes=q.quota_bytes,
            percent=q.percent,
        )  # fmt: skip
        for q in await admin.quota_report(pool, domain=domain)
    ]


@router.get("/status", response_model=StatusOut, responses=ERRORS)
async def system_status(pool: PoolDep, bus: BusDep, _: CurrentAdmin) -> StatusOut:
    s = await admin.system_status(pool, bus)
    return StatusOut(
        domains=s.domains, users=s.users, messages=s.messages, stream=s.stream,
        stream_events=s.stream_events,
        consumers=[
            ConsumerOut(
                name=c.name, pending=c.pending, unacknowledged=c.unacknowledged,
                waiting_clients=c.waiting_clients,
            )
            for c in s.consumers
        ],
    )  # fmt: skip
