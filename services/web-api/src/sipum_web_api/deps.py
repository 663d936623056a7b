"""FastAPI dependencies as ``Annotated`` aliases, so a route names what it uses in its
signature and mypy checks how it uses it:

* ``PoolDep`` — the asyncpg pool; ``BlobsDep`` — the blob store; ``BusDep`` — the event bus;
* ``SecretDep`` — the key that signs session tokens and playback links;
* ``DomainDep`` — the domain of a user name given without one;
* ``LoginThrottleDep`` — counts wrong passwords per client and user;
* ``DeregisterWaitDep`` — how long deleting an account waits for the registrar-agent;
* ``CurrentUser`` — the user of the bearer token or session cookie (401 otherwise).

All of them read the one :class:`WebApiState` that ``create_app()`` keeps on ``app.state``;
none of them adds a parameter to the OpenAPI description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sipum.blobstore import BlobStore
from sipum.db import Pool, admins, users
from sipum.events import EventBus
from sipum.runtime import ServiceContext
from sipum.security.destinations import IpNetwork, parse_networks

from sipum_web_api.auth import COOKIE_NAME, LoginThrottle, admin_claims, session_claims
from sipum_web_api.live import LiveEvents

DEFAULT_DEREGISTER_WAIT = 3.0


@dataclass
class WebApiState:
    """What the routes use, with its types: taken once from the runtime's context (whose
    connections are untyped because every service asks for different ones)."""

    pool: Pool
    blobs: BlobStore
    bus: EventBus
    secret: str
    domain: str
    login_throttle: LoginThrottle
    deregister_wait: float
    """Mutable: tests without a registrar-agent shorten it."""
    webhook_networks: list[IpNetwork] = field(default_factory=list)
    """Non-public networks webhook URLs may point into (``webhook_allowed_networks``)."""
    max_webhooks: int = 10
    live: LiveEvents = field(init=False)
    """The live-events hub (``GET /api/v1/events``)."""

    def __post_init__(self) -> None:
        self.live = LiveEvents(self.bus)

    @classmethod
    def from_context(cls, ctx: ServiceContext) -> WebApiState:
        if ctx.pool is None or ctx.blobs is None or ctx.bus is None:
            raise RuntimeError("the web-api needs PostgreSQL, the blob store and NATS")
        settings = ctx.settings
        return cls(
            pool=ctx.pool,
            blobs=ctx.blobs,
            bus=ctx.bus,
            secret=settings.secret_key.get_secret_value(),
            domain=settings.domain,
            login_throttle=LoginThrottle(),
            # Plain ServiceSettings (as in tests) do not have it.
            deregister_wait=float(
                getattr(settings, "deregister_wait_seconds", DEFAULT_DEREGISTER_WAIT)
            ),
            webhook_networks=parse_networks(getattr(settings, "webhook_allowed_networks", [])),
            max_webhooks=int(getattr(settings, "max_webhooks_per_user", 10)),
        )


def web_state(request: Request) -> WebApiState:
    state = request.app.state.web
    if not isinstance(state, WebApiState):
        raise TypeError("app.state.web is not set: build the app with create_app()")
    return state


StateDep = Annotated[WebApiState, Depends(web_state)]


def pool_of(state: StateDep) -> Pool:
    return state.pool


def blobs_of(state: StateDep) -> BlobStore:
    return state.blobs


def bus_of(state: StateDep) -> EventBus:
    return state.bus


def secret_of(state: StateDep) -> str:
    return state.secret


def domain_of(state: StateDep) -> str:
    return state.domain


def login_throttle_of(state: StateDep) -> LoginThrottle:
    return state.login_throttle


def deregister_wait_of(state: StateDep) -> float:
    return state.deregister_wait


PoolDep = Annotated[Pool, Depends(pool_of)]
BlobsDep = Annotated[BlobStore, Depends(blobs_of)]
BusDep = Annotated[EventBus, Depends(bus_of)]
SecretDep = Annotated[str, Depends(secret_of)]
DomainDep = Annotated[str, Depends(domain_of)]
LoginThrottleDep = Annotated[LoginThrottle, Depends(login_throttle_of)]
DeregisterWaitDep = Annotated[float, Depends(deregister_wait_of)]


async def current_user(request: Request, pool: PoolDep, secret: SecretDep) -> users.User:
    """The user of the bearer token or session cookie; 401 otherwise (also for a session
    issued before the user's last password change)."""
    header = request.headers.get("authorization", "")
    token = (
        header[7:].strip() if header[:7].lower() == "bearer " else request.cookies.get(COOKIE_NAME)
    )
    claims = session_claims(secret, token) if token else None
    user = await users.get(pool, claims.user_id) if claims else None
    # A session issued before the last password change no longer counts.
    if user is None or claims is None or not claims.valid_for(secret, user.ha1):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "not authenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if user.disabled:  # sessions issued before the administrator disabled the account
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this account is disabled")
    return user


CurrentUser = Annotated[users.User, Depends(current_user)]


def _bearer_or_cookie(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return (
        header[7:].strip() if header[:7].lower() == "bearer " else request.cookies.get(COOKIE_NAME)
    )


async def current_admin(request: Request, pool: PoolDep, secret: SecretDep) -> admins.Admin:
    """The administrator of the bearer token; 403 for a user's token (signed in, but not an
    administrator), 401 without a valid token."""
    token = _bearer_or_cookie(request)
    claims = admin_claims(secret, token) if token else None
    admin = await admins.get(pool, claims.user_id) if claims else None
    if admin is not None and claims is not None and claims.valid_for(secret, admin.password_hash):
        return admin
    if token and session_claims(secret, token) is not None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "administrators only")
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED, "not authenticated", headers={"WWW-Authenticate": "Bearer"}
    )


CurrentAdmin = Annotated[admins.Admin, Depends(current_admin)]
