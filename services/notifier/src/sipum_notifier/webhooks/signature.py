"""The ``Sipum-Signature`` header: ``t=<unix seconds>,v1=<hex HMAC-SHA256>``.

The MAC is computed with the endpoint's secret over ``"<t>." + body`` — the scheme Stripe and
GitHub use — so a receiver can check both who sent the body and that it is fresh (reject a ``t``
older than a few minutes to stop replays). docs/notifier.md shows how to verify it.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Sipum-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, now: float, tolerance: float = 300) -> bool:
    """True when ``header`` is a valid signature of ``body`` made within ``tolerance`` s."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))
