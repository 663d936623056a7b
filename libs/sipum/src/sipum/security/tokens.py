"""Signed, expiring tokens for links (RTSP/HTTP playback from an e-mail, web sessions).

Format: ``base64url(json payload) "." base64url(HMAC-SHA256(key, purpose "." payload))``.
The purpose is part of what is signed, so a token made for one use (``play``) is never
accepted for another (``session``). Payloads are small dicts; ``exp`` (Unix seconds) is always
set and checked. Comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


class InvalidToken(ValueError):
    """Malformed, forged, for another purpose, or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, purpose: str, body: str) -> str:
    return _b64(hmac.new(key, f"{purpose}.{body}".encode(), hashlib.sha256).digest())


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(
    secret: str | bytes,
    purpose: str,
    claims: dict[str, Any],
    *,
    ttl: float,
    now: float | None = None,
) -> str:
    """A token carrying ``claims`` valid for ``ttl`` seconds."""
    payload = dict(claims, exp=int((time.time() if now is None else now) + ttl))
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_signature(_key(secret), purpose, body)}"


def verify(
    secret: str | bytes, purpose: str, token: str, *, now: float | None = None
) -> dict[str, Any]:
    """The claims of a valid token; raises :class:`InvalidToken` otherwise."""
    if not isinstance(token, str) or len(token) > 4096 or token.count(".") != 1:
        raise InvalidToken("malformed token")
    body, signature = token.split(".")
    expected = _signature(_key(secret), purpose, body)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise InvalidToken("bad signature")
    try:
        claims = json.loads(_unb64(body))
    except ValueError:
        raise InvalidToken("malformed token") from None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int):
        raise InvalidToken("malformed token")
    if claims["exp"] < (time.time() if now is None else now):
        raise InvalidToken("token expired")
    return claims


# -- playback links (issued by the notifier, accepted by the web-api and the RTSP gateway) --------

PLAY_PURPOSE = "play"


def sign_play_link(secret: str | bytes, user_id: int, message_id: int, *, ttl: float) -> str:
    """A token that plays one message of one user without a password, for ``ttl`` seconds."""
    return sign(secret, PLAY_PURPOSE, {"uid": user_id, "mid": message_id}, ttl=ttl)


def play_link_claims(secret: str | bytes, token: str) -> tuple[int, int]:
    """(user id, message id) of a valid playback token; raises :class:`InvalidToken`."""
    claims = verify(secret, PLAY_PURPOSE, token)
    uid, mid = claims.get("uid"), claims.get("mid")
    if not isinstance(uid, int) or not isinstance(mid, int):
        raise InvalidToken("malformed token")
    return uid, mid
