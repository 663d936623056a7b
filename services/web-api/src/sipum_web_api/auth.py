"""Who is calling the API: a session cookie (browser) or a bearer token (API clients).

Both are the same signed, expiring token (:mod:`sipum.security.tokens`, purpose ``session``,
claims: user id); the cookie is HttpOnly and SameSite=Lax. Failed logins are counted per
(client address, user name): after ``MAX_FAILURES`` within ``LOCKOUT_SECONDS`` further
attempts are refused with 429 until the window passes, so passwords cannot be guessed fast.
"""

from __future__ import annotations

import time
from collections import deque

from sipum.security.tokens import InvalidToken, sign, verify

SESSION_PURPOSE = "session"
SESSION_TTL = 12 * 3600
COOKIE_NAME = "sipum_session"
MAX_FAILURES = 5
LOCKOUT_SECONDS = 300.0


def issue_session_token(secret: str, user_id: int) -> str:
    return sign(secret, SESSION_PURPOSE, {"uid": user_id}, ttl=SESSION_TTL)


def session_user_id(secret: str, token: str) -> int | None:
    try:
        claims = verify(secret, SESSION_PURPOSE, token)
    except InvalidToken:
        return None
    uid = claims.get("uid")
    return uid if isinstance(uid, int) else None


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
