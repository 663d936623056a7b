"""Signup, login, logout, the current user."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, Response, status
from sipum.db import domains, users
from sipum.db.errors import DomainNotFoundError, InvalidUsernameError, UserExistsError
from sipum.events import UserCreated
from sipum.security.passwords import WeakSecretError

from sipum_web_api.auth import COOKIE_NAME, SESSION_TTL, issue_session_token
from sipum_web_api.deps import CurrentUser, ctx_of, secret_of
from sipum_web_api.schemas import ErrorOut, LoginRequest, SignupRequest, TokenResponse, UserOut

log = logging.getLogger("sipum.misc.web")
router = APIRouter(prefix="/api/v1", tags=["account"])


def user_out(user: users.User) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        domain=user.domain,
        address=f"{user.username}@{user.domain}",
        display_name=user.display_name,
        email=user.email,
        has_pin=user.has_pin,
    )


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses={409: {"model": ErrorOut}, 422: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)
async def signup(body: SignupRequest, request: Request) -> UserOut:
    """Create a mailbox; the registrar-agent registers it with the SIP proxy on the event."""
    ctx = ctx_of(request)
    domain = (body.domain or request.app.state.domain).lower()
    try:
        user = await users.create(
            ctx.pool,
            body.username,
            domain,
            body.password,
            email=body.email,
            display_name=body.display_name,
            pin=body.pin,
        )
    except UserExistsError:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"{body.username}@{domain} already exists"
        ) from None
    except DomainNotFoundError:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"domain {domain} is not served here"
        ) from None
    except (InvalidUsernameError, WeakSecretError) as exc:
        raise HTTPException(422, str(exc)) from None
    await ctx.bus.publish(
        UserCreated(
            username=user.username,
            domain=user.domain,
            display_name=user.display_name or None,
            email=user.email,
        )
    )
    log.info("user signed up", extra={"user": f"{user.username}@{user.domain}"})
    return user_out(user)


@router.post(
    "/login",
    response_model=TokenResponse,
    responses={401: {"model": ErrorOut}, 429: {"model": ErrorOut}},
)
async def login(body: LoginRequest, request: Request, response: Response) -> TokenResponse:
    """Check the password; set the session cookie and return the same token for API use."""
    ctx = ctx_of(request)
    username, _, domain = body.username.strip().lower().partition("@")
    domain = domain or request.app.state.domain
    client = request.client.host if request.client else "-"
    key = f"{client}|{username}@{domain}"
    throttle = request.app.state.login_throttle
    if throttle.blocked(key):
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, "too many failed logins; try again later"
        )
    user = await users.authenticate(ctx.pool, username, domain, body.password)
    if user is None:
        throttle.failed(key)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    throttle.succeeded(key)
    token = issue_session_token(secret_of(request), user.id)
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=SESSION_TTL,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return TokenResponse(access_token=token, expires_in=SESSION_TTL)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(response: Response) -> Response:
    response.delete_cookie(COOKIE_NAME)
    response.status_code = status.HTTP_204_NO_CONTENT
    return response


@router.get("/me", response_model=UserOut, responses={401: {"model": ErrorOut}})
async def me(user: CurrentUser) -> UserOut:
    return user_out(user)


async def ensure_default_domain(pool: object, name: str) -> None:
    """The configured domain exists from the first start on (signup needs it)."""
    await domains.ensure(pool, name)  # type: ignore[arg-type]
