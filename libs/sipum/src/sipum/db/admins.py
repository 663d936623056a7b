"""Administrator accounts (table ``admins``): argon2 password hashes, nothing else."""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from sipum.db.pool import Executor
from sipum.security.passwords import (
    check_password_strength,
    hash_secret,
    hash_secret_async,
    verify_secret_async,
)


class AdminExistsError(ValueError):
    """There is already an administrator of that name."""


@dataclass(frozen=True, slots=True)
class Admin:
    id: int
    username: str
    password_hash: str = field(repr=False)
    created_at: datetime
    updated_at: datetime


_COLUMNS = "id, username, password_hash, created_at, updated_at"


@functools.cache
def _dummy_hash() -> str:
    return hash_secret(secrets.token_urlsafe(16))


def normalize(username: str) -> str:
    name = username.strip().lower()
    if not name or any(c.isspace() for c in name):
        raise ValueError("an administrator's name is one word")
    return name


async def create(db: Executor, username: str, password: str) -> Admin:
    check_password_strength(password)
    try:
        row = await db.fetchrow(
            f"INSERT INTO admins (username, password_hash) VALUES ($1, $2) RETURNING {_COLUMNS}",
            normalize(username),
            await hash_secret_async(password),
        )
    except asyncpg.UniqueViolationError:
        raise AdminExistsError(f"administrator {username!r} exists") from None
    return Admin(**dict(row))


async def get(db: Executor, admin_id: int) -> Admin | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM admins WHERE id = $1", admin_id)
    return None if row is None else Admin(**dict(row))


async def count(db: Executor) -> int:
    return int(await db.fetchval("SELECT count(*) FROM admins"))


async def authenticate(db: Executor, username: str, password: str) -> Admin | None:
    """The administrator, if the password is theirs; an unknown name costs a hash too (no
    enumeration by timing)."""
    try:
        name = normalize(username)
    except ValueError:
        name = ""
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM admins WHERE username = $1", name)
    stored = _dummy_hash() if row is None else row["password_hash"]
    ok = await verify_secret_async(stored, password)
    return Admin(**dict(row)) if ok and row is not None else None
