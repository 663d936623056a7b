"""FastAPI dependencies: the runtime's connections and the authenticated user."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from sipum.db import users

from sipum_web_api.auth import COOKIE_NAME, session_user_id


def ctx_of(request: Request) -> Any:
    return request.app.state.ctx


def secret_of(request: Request) -> str:
    return str(request.app.state.secret)


async def current_user(request: Request) -> users.User:
    """The user of the bearer token or session cookie; 401 otherwise."""
    header = request.headers.get("authorization", "")
    token = (
        header[7:].strip() if header[:7].lower() == "bearer " else request.cookies.get(COOKIE_NAME)
    )
    uid = session_user_id(secret_of(request), token) if token else None
    user = await users.get(ctx_of(request).pool, uid) if uid is not None else None
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "not authenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


CurrentUser = Annotated[users.User, Depends(current_user)]
