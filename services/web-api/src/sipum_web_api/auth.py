"""Who is calling the API: a session cookie (browser) or a bearer token (API clients).

Both are the same signed, expiring token (:mod:`sipum.security.tokens`, purpose ``session``,
claims: user id and a stamp of the credentials it was issued for); the cookie is HttpOnly and
SameSite=Lax. The stamp is an HMAC of the user's HA1 under the server secret: a password
change changes the HA1, so every session issued before it stops working (a stolen token dies
when its owner changes the password), with no session table to keep. Failed logins are counted per
(client address, user name): after ``MAX_FAILURES`` within ``LOCKOUT_SECONDS`` further
attempts are refused with 429 until the window passes, so passwords cannot be guessed fast.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import deque
from dataclasses import dataclass

from sipum.security.tokens import InvalidToken, sign, verify

SESSION_PURPOSE = "session"
SESSION_TTL = 12 * 3600
COOKIE_NAME = "sipum_session"
MAX_FAILURES = 5
LOCKOUT_SECONDS = 300.0


def credentials_stamp(secret: str, ha1: str) -> str:
    """Short, changes with the password, reveals nothing about it without the secret."""
    mac = hmac.new(secret.encode(), f"session-credentials:{ha1}".encode(), hashlib.sha256)
    return mac.hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SessionClaims:
    user_id: int
    stamp: str

    def valid_for(self, secret: str, ha1: str) -> bool:
        return hmac.compare_digest(self.stamp, credentials_stamp(secret, ha1))


def issue_session_token(secret: str, user_id: int, ha1: str) -> str:
    claims = {"uid": user_id, "pw": credentials_stamp(secret, ha1)}
    return sign(secret, SESSION_PURPOSE, claims, ttl=SESSION_TTL)


def session_claims(secret: str, token: str) -> SessionClaims | None:
    """The claims of a valid session token, else None (forged, expired, malformed)."""
    try:
        claims = verify(secret, SESSION_PURPOSE, token)
    except InvalidToken:
        return None
    uid, stamp = claims.get("uid"), claims.get("pw")
    if not isinstance(uid, int) or not isinstance(stamp, str):
        return None
    return SessionClaims(uid, stamp)


class LoginThrottle:
    """Sliding window of failed logins per key; bounded in keys so it cannot grow forever."""

    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        window: float = LOCKOUT_SECONDS,
        max_keys: int = 100_000,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        entries = self._failures.get(key, deque())
        while entries and now - entries[0] > self.window:
            entries.popleft()
        return entries

    def blocked(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return len(self._recent(key, now)) >= self.max_failures

    def failed(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if key not in self._failures and len(self._failures) >= self.max_keys:
            self._failures.pop(next(iter(self._failures)))
        entries = self._recent(key, now)
        entries.append(now)
        self._failures[key] = entries

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


# -- administrators --------------------------------------------------------------------------
# Their own token purpose: a user's session token never verifies as an administrator's, and an
# administrator's is not a user session. The stamp ties it to the password hash, so a new
# password ends every administrator session issued before it.
ADMIN_PURPOSE = "admin-session"
ADMIN_TTL = 3600


def issue_admin_token(secret: str, admin_id: int, password_hash: str) -> str:
    claims = {"aid": admin_id, "pw": credentials_stamp(secret, password_hash)}
    return sign(secret, ADMIN_PURPOSE, claims, ttl=ADMIN_TTL)


def admin_claims(secret: str, token: str) -> SessionClaims | None:
    try:
        claims = verify(secret, ADMIN_PURPOSE, token)
    except InvalidToken:
        return None
    aid, stamp = claims.get("aid"), claims.get("pw")
    if not isinstance(aid, int) or not isinstance(stamp, str):
        return None
    return SessionClaims(aid, stamp)
