"""Signup, login, logout, the current user; changing and deleting one's account.

Changing the password or deleting the account asks for the current password again (a stolen
session alone must not lock the owner out or erase the mailbox); a wrong one answers 403 and
counts as a failed login of that user from that client (:class:`LoginThrottle`), so it cannot
be used to guess passwords either.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, Response, status
from sipum.accounts.removal import remove_mailbox
from sipum.db import Pool, domains, pin_lockouts, users
from sipum.db.errors import DomainNotFoundError, InvalidUsernameError, UserExistsError
from sipum.events import UserCreated, UserUpdated
from sipum.security.passwords import WeakSecretError, check_password_strength, check_pin_strength

from sipum_web_api.auth import COOKIE_NAME, SESSION_TTL, LoginThrottle, issue_session_token
from sipum_web_api.deps import (
    BlobsDep,
    BusDep,
    CurrentUser,
    DeregisterWaitDep,
    DomainDep,
    LoginThrottleDep,
    PoolDep,
    SecretDep,
)
from sipum_web_api.schemas import (
    AccountDelete,
    AccountOut,
    AccountPatch,
    ErrorOut,
    LoginRequest,
    SignupRequest,
    TokenResponse,
    UserOut,
)

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
async def signup(
    body: SignupRequest, pool: PoolDep, bus: BusDep, default_domain: DomainDep
) -> UserOut:
    """Create a mailbox; the registrar-agent registers it with the SIP proxy on the event."""
    domain = (body.domain or default_domain).lower()
    try:
        user = await users.create(
            pool,
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
    await bus.publish(
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
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 429: {"model": ErrorOut}},
)
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    pool: PoolDep,
    secret: SecretDep,
    throttle: LoginThrottleDep,
    default_domain: DomainDep,
) -> TokenResponse:
    """Check the password; set the session cookie and return the same token for API use."""
    username, _, domain = body.username.strip().lower().partition("@")
    domain = domain or default_domain
    key = password_throttle_key(request, throttle, username, domain, "too many failed logins")
    user = await users.authenticate(pool, username, domain, body.password)
    if user is None:
        throttle.failed(key)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    throttle.succeeded(key)
    if user.disabled:  # said only to whoever knows the password
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this account is disabled")
    if await pin_lockouts.clear(pool, user.id):  # the owner is here: lift a phone PIN lockout
        log.info("phone PIN lockout lifted by a web login", extra={"user": user.address})
    token = set_session(request, response, secret, user)
    return TokenResponse(access_token=token, expires_in=SESSION_TTL)


def password_throttle_key(
    request: Request, throttle: LoginThrottle, username: str, domain: str, refusal: str
) -> str:
    """The key under which ``throttle`` counts wrong passwords for this client and user
    (logins and re-authentication alike); 429 with *refusal* while it blocks."""
    client = request.client.host if request.client else "-"
    key = f"{client}|{username}@{domain}"
    if throttle.blocked(key):
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, f"{refusal}; try again later")
    return key


def set_session(request: Request, response: Response, secret: str, user: users.User) -> str:
    """A new session token for ``user`` (its current credentials), also as the cookie."""
    token = issue_session_token(secret, user.id, user.ha1)
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=SESSION_TTL,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return token


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(response: Response) -> Response:
    response.delete_cookie(COOKIE_NAME)
    response.status_code = status.HTTP_204_NO_CONTENT
    return response


@router.get("/me", response_model=UserOut, responses={401: {"model": ErrorOut}})
async def me(user: CurrentUser) -> UserOut:
    return user_out(user)


async def account_out(pool: Pool, user: users.User) -> AccountOut:
    effective = await users.effective_settings(pool, user.id)
    return AccountOut(
        **user_out(user).model_dump(),
        email_attaches_audio=bool(effective and effective.email_attaches_audio),
        email_audio_format="mp3" if effective and effective.email_audio_format == "mp3" else "wav",
    )


async def reauthenticate(
    request: Request,
    pool: Pool,
    throttle: LoginThrottle,
    user: users.User,
    password: str,
) -> None:
    """403 unless ``password`` is the user's; failures count like failed logins (429 after
    too many from this client)."""
    key = password_throttle_key(
        request, throttle, user.username, user.domain, "too many wrong passwords"
    )
    if not await users.verify_password(pool, user.id, password):
        throttle.failed(key)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the current password is wrong")
    throttle.succeeded(key)


@router.get("/account", response_model=AccountOut, responses={401: {"model": ErrorOut}})
async def get_account(pool: PoolDep, user: CurrentUser) -> AccountOut:
    """The signed-in user with their notification settings."""
    return await account_out(pool, user)


@router.patch(
    "/account",
    response_model=AccountOut,
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        413: {"model": ErrorOut},
        422: {"model": ErrorOut},
        429: {"model": ErrorOut},
    },
)
async def update_account(
    body: AccountPatch,
    request: Request,
    response: Response,
    pool: PoolDep,
    bus: BusDep,
    secret: SecretDep,
    throttle: LoginThrottleDep,
    user: CurrentUser,
) -> AccountOut:
    """Change display name, notification e-mail and attachment choice, phone PIN, password.

    A new password needs ``current_password``; it replaces the web login and the SIP
    credentials (the HA1 values phones and the registrar-agent authenticate with), and ends
    every session issued before: the response sets a new session cookie, API clients log in
    again. Everything is checked before anything changes, and the changes are one
    transaction; then ``user.updated`` names the changed fields."""
    given = body.model_fields_set
    if "new_password" in given:
        if body.new_password is None:
            raise HTTPException(422, "new_password cannot be null")
        if body.current_password is None:
            raise HTTPException(422, "changing the password needs current_password")
        try:
            check_password_strength(body.new_password)
        except WeakSecretError as exc:
            raise HTTPException(422, str(exc)) from None
    elif body.current_password is not None:
        raise HTTPException(422, "current_password is only needed with new_password")
    if "pin" in given:
        if body.pin is None:
            raise HTTPException(422, "pin cannot be removed, only changed")
        try:
            check_pin_strength(body.pin, username=user.username)
        except WeakSecretError as exc:
            raise HTTPException(422, str(exc)) from None
    if "display_name" in given and body.display_name is None:
        raise HTTPException(422, "display_name cannot be null (use an empty string)")
    if body.new_password is not None:
        assert body.current_password is not None
        await reauthenticate(request, pool, throttle, user, body.current_password)

    profile = {
        name: getattr(body, name)
        for name in ("display_name", "email", "email_attaches_audio", "email_audio_format")
        if name in given
    }
    changed: list[str] = [n for n, value in profile.items() if value != getattr(user, n)]
    try:
        async with pool.acquire() as conn, conn.transaction():
            if profile:
                await users.update(conn, user.id, **profile)
            if body.pin is not None:
                # the domain's pin_min_length: refused here rolls back the whole change
                await users.set_pin(conn, user.id, body.pin)
                changed.append("pin")
            if body.new_password is not None:
                await users.set_password(conn, user.id, body.new_password)
                changed.append("password")
            updated = await users.get(conn, user.id)
    except WeakSecretError as exc:
        raise HTTPException(422, str(exc)) from None
    if updated is None:  # deleted by a concurrent request
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not authenticated")
    if changed:
        event = UserUpdated(
            username=updated.username,
            domain=updated.domain,
            display_name=updated.display_name or None,
            email=updated.email,
            changed=changed,
        )
        try:
            await bus.publish(event)
        except Exception as exc:
            # Committed already: answering an error would make the client retry with a
            # current password that is no longer current. Kamailio reads the new HA1 from
            # the database anyway; the agent picks it up when it next loads its users.
            log.error(
                "could not publish user.updated",
                extra={"user": updated.address, "changed": changed, "error": str(exc)},
            )
        log.info("account changed", extra={"user": updated.address, "changed": changed})
    if "password" in changed:
        set_session(request, response, secret, updated)
    return await account_out(pool, updated)


@router.delete(
    "/account",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        413: {"model": ErrorOut},
        429: {"model": ErrorOut},
        503: {"model": ErrorOut},
    },
)
async def delete_account(
    body: AccountDelete,
    request: Request,
    pool: PoolDep,
    blobs: BlobsDep,
    bus: BusDep,
    throttle: LoginThrottleDep,
    deregister_wait: DeregisterWaitDep,
    user: CurrentUser,
) -> Response:
    """Delete the mailbox for good: messages, greetings, credentials. Needs the password.

    ``user.deleted`` goes out first (the registrar-agent de-registers the user while the
    credentials still exist), then the rows in one transaction, then the audio; the session
    and bearer tokens stop working. See docs/web-api.md for what a failure in between
    leaves."""
    await reauthenticate(request, pool, throttle, user, body.password)
    try:
        await remove_mailbox(user, pool=pool, bus=bus, blobs=blobs, deregister_wait=deregister_wait)
    except Exception as exc:
        log.error("account deletion failed", extra={"user": user.address, "error": str(exc)})
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the account could not be deleted now; nothing was removed, try again",
        ) from None
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(COOKIE_NAME)
    return response


async def ensure_default_domain(pool: Pool, name: str) -> None:
    """The configured domain exists from the first start on (signup needs it)."""
    await domains.ensure(pool, name)
