"""Notifications per message and channel (table ``notifications``): the notifier's idempotency.

Protocol: :func:`claim` before sending (only one deliverer wins), :func:`mark_sent` after the
server accepted it, :func:`release` when sending failed (so a retry may claim again). A claim
older than ``stale_after`` seconds (its holder crashed mid-send) can be taken over.
"""

from __future__ import annotations

import enum
from typing import Any

Executor = Any  # asyncpg Pool or Connection


class Claim(enum.Enum):
    GRANTED = "granted"
    """Ours: send, then mark_sent or release."""
    SENT = "sent"
    """Already delivered: nothing to do."""
    BUSY = "busy"
    """Another deliverer is sending it right now."""


async def claim(
    db: Executor, message_id: int, channel: str, recipient: str, *, stale_after: float
) -> Claim:
    row = await db.fetchval(
        """INSERT INTO notifications (message_id, channel, recipient, state, claimed_at)
           VALUES ($1, $2, $3, 'sending', now())
           ON CONFLICT (message_id, channel) DO UPDATE
              SET recipient = EXCLUDED.recipient, claimed_at = now()
              WHERE notifications.state = 'sending'
                AND notifications.claimed_at < now() - make_interval(secs => $4)
           RETURNING 1""",
        message_id,
        channel,
        recipient,
        float(stale_after),
    )
    if row is not None:
        return Claim.GRANTED
    state = await db.fetchval(
        "SELECT state FROM notifications WHERE message_id = $1 AND channel = $2",
        message_id,
        channel,
    )
    return Claim.SENT if state == "sent" else Claim.BUSY


async def mark_sent(db: Executor, message_id: int, channel: str) -> None:
    await db.execute(
        """UPDATE notifications SET state = 'sent', sent_at = now()
           WHERE message_id = $1 AND channel = $2""",
        message_id,
        channel,
    )


async def release(db: Executor, message_id: int, channel: str) -> None:
    await db.execute(
        "DELETE FROM notifications WHERE message_id = $1 AND channel = $2 AND state = 'sending'",
        message_id,
        channel,
    )


async def already_sent(db: Executor, message_id: int, channel: str) -> bool:
    state = await db.fetchval(
        "SELECT state FROM notifications WHERE message_id = $1 AND channel = $2",
        message_id,
        channel,
    )
    return bool(state == "sent")
