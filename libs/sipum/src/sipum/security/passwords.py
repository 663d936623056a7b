"""Password and PIN hashing with argon2id, and the SIP digest HA1 values we store instead of
the SIP password.

Web passwords and mailbox PINs are stored only as argon2id hashes (RFC 9106).  argon2 is slow on
purpose (~0.1 s per hash here); async callers use the ``*_async`` variants, which run it in a
worker thread so the event loop keeps serving calls.

SIP digest authentication (RFC 2617 section 3.2.2.2, RFC 7616 section 3.4.2) needs
``H(username:realm:password)`` on both sides.  Storing that HA1 lets our registrar-agent answer
Kamailio's challenge and lets Kamailio check users' phones, without the plaintext password.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # argon2id, the library's RFC 9106 "low memory" defaults

MIN_PASSWORD_LENGTH = 8
PIN_LENGTHS = range(4, 13)


class WeakSecretError(ValueError):
    """A password or PIN that we refuse to set."""


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakSecretError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")


def check_pin(pin: str) -> None:
    """A PIN is typed on a phone keypad: digits only (DTMF 0-9), 4 to 12 of them."""
    if not pin.isascii() or not pin.isdigit() or len(pin) not in PIN_LENGTHS:
        raise WeakSecretError(f"PIN must be {PIN_LENGTHS.start} to {PIN_LENGTHS.stop - 1} digits")


def trivial_pin_reason(pin: str, *, username: str | None = None) -> str | None:
    """Why *pin* is too easy to guess, or None: one digit repeated (``1111``), a run up or down
    (``1234``, ``0123``, ``9876``, also wrapping ``7890``), a short pattern repeated (``1212``,
    ``123123``), or the digits of the mailbox's name / extension (``alice10`` → ``10``…,
    ``4711`` for user ``4711``) — the first PINs anyone tries."""
    if len(set(pin)) == 1:
        return "PIN must not be one digit repeated"
    steps = {(int(b) - int(a)) % 10 for a, b in zip(pin, pin[1:], strict=False)}
    if steps in ({1}, {9}):
        return "PIN must not be a run of consecutive digits"
    for size in range(2, len(pin) // 2 + 1):
        if len(pin) % size == 0 and pin[:size] * (len(pin) // size) == pin:
            return "PIN must not be a short pattern repeated"
    if username is not None:
        digits = "".join(ch for ch in username if ch.isascii() and ch.isdigit())
        if len(digits) >= 3 and (digits in pin or pin in digits or digits[::-1] == pin):
            return "PIN must not contain the mailbox number"
    return None


def check_pin_strength(pin: str, *, username: str | None = None) -> None:
    """:func:`check_pin`, and refuse trivial PINs (:func:`trivial_pin_reason`)."""
    check_pin(pin)
    reason = trivial_pin_reason(pin, username=username)
    if reason is not None:
        raise WeakSecretError(reason)


def hash_secret(secret: str) -> str:
    """argon2id hash (PHC string) of a password or PIN."""
    return _hasher.hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    """Whether ``secret`` matches ``stored_hash``; False for a missing or malformed hash."""
    if not stored_hash:
        return False
    try:
        return _hasher.verify(stored_hash, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's (rehash on next login)."""
    return _hasher.check_needs_rehash(stored_hash)


async def hash_secret_async(secret: str) -> str:
    return await asyncio.to_thread(hash_secret, secret)


async def verify_secret_async(stored_hash: str | None, secret: str) -> bool:
    return await asyncio.to_thread(verify_secret, stored_hash, secret)


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """The HA1 values of one SIP account (all lower-case hex)."""

    ha1: str
    """MD5(username:realm:password) — RFC 2617 section 3.2.2.2."""
    ha1b: str
    """MD5(username@domain:realm:password) — for phones that send ``user@domain`` as the
    digest username (Kamailio's ``ha1b`` column)."""
    ha1_sha256: str
    """SHA-256(username:realm:password) — RFC 7616 section 3.4.2, algorithm SHA-256."""


def digest_credentials(username: str, domain: str, realm: str, password: str) -> DigestCredentials:
    def md5(text: str) -> str:
        return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()

    return DigestCredentials(
        ha1=md5(f"{username}:{realm}:{password}"),
        ha1b=md5(f"{username}@{domain}:{realm}:{password}"),
        ha1_sha256=hashlib.sha256(f"{username}:{realm}:{password}".encode()).hexdigest(),
    )


def hash_password(password: str) -> str:
    """argon2id hash of a web password (after the strength check)."""
    check_password_strength(password)
    return hash_secret(password)


def hash_pin(pin: str) -> str:
    """argon2id hash of a mailbox PIN (after the format check)."""
    check_pin(pin)
    return hash_secret(pin)


verify_password = verify_secret
verify_pin = verify_secret
