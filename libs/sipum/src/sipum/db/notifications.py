"""Notifications already delivered (table ``notifications``): the notifier's idempotency."""

from __future__ import annotations

from typing import Any

Executor = Any  # asyncpg Pool or Connection


async def already_sent(db: Executor, message_id: int, channel: str) -> bool:
    return bool(
        await db.fetchval(
            "SELECT 1 FROM notifications WHERE message_id = $1 AND channel = $2",
            message_id,
            channel,
        )
    )


async def record_sent(db: Executor, message_id: int, channel: str, recipient: str) -> bool:
    """Remember a delivery; False when it was already recorded (a concurrent duplicate)."""
    row = await db.fetchval(
        """INSERT INTO notifications (message_id, channel, recipient) VALUES ($1, $2, $3)
           ON CONFLICT (message_id, channel) DO NOTHING RETURNING 1""",
        message_id,
        channel,
        recipient,
    )
    return row is not None
