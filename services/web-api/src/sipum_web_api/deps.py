"""FastAPI dependencies: the runtime's connections and the authenticated user."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from sipum.db import users

from sipum_web_api.auth import COOKIE_NAME, session_claims


def ctx_of(request: Request) -> Any:
    return request.app.state.ctx


def secret_of(request: Request) -> str:
    return str(request.app.state.secret)


async def current_user(request: Request) -> users.User:
    """The user of the bearer token or session cookie; 401 otherwise (also for a session
    issued before the user's last password change)."""
    header = request.headers.get("authorization", "")
    token = (
        header[7:].strip() if header[:7].lower() == "bearer " else request.cookies.get(COOKIE_NAME)
    )
    secret = secret_of(request)
    claims = session_claims(secret, token) if token else None
    user = await users.get(ctx_of(request).pool, claims.user_id) if claims else None
    # A session issued before the last password change no longer counts.
    if user is None or claims is None or not claims.valid_for(secret, user.ha1):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "not authenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


CurrentUser = Annotated[users.User, Depends(current_user)]
