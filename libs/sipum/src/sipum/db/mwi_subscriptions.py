"""Message-waiting subscriptions (table ``mwi_subscriptions``, migration 0017): the dialog state
the registrar-agent needs to NOTIFY a phone after a restart or a shard takeover.

The registrar-agent writes a row on the ``200`` to a new SUBSCRIBE (:func:`save`), updates it
on a refresh (:func:`refresh`) and after each NOTIFY (:func:`advance_local_seq`, only ever
upwards: a NOTIFY must carry a CSeq above the last one of the dialog, RFC 3261 §12.2.1.1,
whichever agent sent it), and deletes it when the subscription ends (:func:`delete`). At start
and on a shard takeover it reads the unexpired ones (:func:`list_active`) and NOTIFYs each.
Times are wall-clock (``timestamptz``): the agent converts them to its loop clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from sipum.db.pool import Executor


@dataclass(frozen=True, slots=True)
class DialogKey:
    """RFC 3261 §12: Call-ID and the two tags (local: ours, the notifier's)."""

    call_id: str
    local_tag: str
    remote_tag: str


@dataclass(frozen=True, slots=True)
class StoredSubscription:
    key: DialogKey
    user_id: int
    event_id: str | None
    local_uri: str
    remote_uri: str
    remote_target: str
    route_set: Sequence[str]
    local_seq: int | None
    remote_seq: int | None
    peer_transport: str
    peer_host: str
    peer_port: int
    expires_at: datetime
    agent_id: str = ""
    username: str = field(default="", compare=False)
    """The mailbox (read from ``users``/``domains``; not written)."""
    domain: str = field(default="", compare=False)

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> StoredSubscription:
        return cls(
            key=DialogKey(row["call_id"], row["local_tag"], row["remote_tag"]),
            user_id=row["user_id"],
            event_id=row["event_id"],
            local_uri=row["local_uri"],
            remote_uri=row["remote_uri"],
            remote_target=row["remote_target"],
            route_set=tuple(row["route_set"]),
            local_seq=row["local_seq"],
            remote_seq=row["remote_seq"],
            peer_transport=row["peer_transport"],
            peer_host=row["peer_host"],
            peer_port=row["peer_port"],
            expires_at=row["expires_at"],
            agent_id=row["agent_id"],
            username=row["username"],
            domain=row["domain"],
        )


_SELECT = """SELECT s.*, u.username, d.name AS domain FROM mwi_subscriptions s
             JOIN users u ON u.id = s.user_id JOIN domains d ON d.id = u.domain_id"""


async def save(db: Executor, sub: StoredSubscription) -> None:
    """Insert (or replace: the same dialog subscribed again) one subscription."""
    await db.execute(
        """INSERT INTO mwi_subscriptions
               (call_id, local_tag, remote_tag, user_id, event_id, local_uri, remote_uri,
                remote_target, route_set, local_seq, remote_seq, peer_transport, peer_host,
                peer_port, expires_at, agent_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
           ON CONFLICT (call_id, local_tag, remote_tag) DO UPDATE SET
               user_id = EXCLUDED.user_id, event_id = EXCLUDED.event_id,
               local_uri = EXCLUDED.local_uri, remote_uri = EXCLUDED.remote_uri,
               remote_target = EXCLUDED.remote_target, route_set = EXCLUDED.route_set,
               local_seq = EXCLUDED.local_seq, remote_seq = EXCLUDED.remote_seq,
               peer_transport = EXCLUDED.peer_transport, peer_host = EXCLUDED.peer_host,
               peer_port = EXCLUDED.peer_port, expires_at = EXCLUDED.expires_at,
               agent_id = EXCLUDED.agent_id, updated_at = now()""",
        sub.key.call_id,
        sub.key.local_tag,
        sub.key.remote_tag,
        sub.user_id,
        sub.event_id,
        sub.local_uri,
        sub.remote_uri,
        sub.remote_target,
        list(sub.route_set),
        sub.local_seq,
        sub.remote_seq,
        sub.peer_transport,
        sub.peer_host,
        sub.peer_port,
        sub.expires_at,
        sub.agent_id,
    )


async def refresh(
    db: Executor,
    key: DialogKey,
    *,
    expires_at: datetime,
    remote_seq: int | None,
    remote_target: str,
    agent_id: str,
) -> bool:
    """A refreshing SUBSCRIBE (RFC 6665 §4.2.1.2): new expiry, the phone's CSeq and target."""
    status = await db.execute(
        """UPDATE mwi_subscriptions
           SET expires_at = $4, remote_seq = GREATEST(coalesce(remote_seq, 0), $5),
               remote_target = $6, agent_id = $7, updated_at = now()
           WHERE call_id = $1 AND local_tag = $2 AND remote_tag = $3""",
        key.call_id,
        key.local_tag,
        key.remote_tag,
        expires_at,
        remote_seq,
        remote_target,
        agent_id,
    )
    return bool(status == "UPDATE 1")


async def advance_local_seq(db: Executor, key: DialogKey, local_seq: int, agent_id: str) -> bool:
    """After a NOTIFY with CSeq ``local_seq``: the stored number only grows."""
    status = await db.execute(
        """UPDATE mwi_subscriptions
           SET local_seq = GREATEST(coalesce(local_seq, 0), $4), agent_id = $5,
               updated_at = now()
           WHERE call_id = $1 AND local_tag = $2 AND remote_tag = $3""",
        key.call_id,
        key.local_tag,
        key.remote_tag,
        local_seq,
        agent_id,
    )
    return bool(status == "UPDATE 1")


async def delete(db: Executor, key: DialogKey) -> bool:
    status = await db.execute(
        "DELETE FROM mwi_subscriptions WHERE call_id = $1 AND local_tag = $2 AND remote_tag = $3",
        key.call_id,
        key.local_tag,
        key.remote_tag,
    )
    return bool(status == "DELETE 1")


async def get(db: Executor, key: DialogKey) -> StoredSubscription | None:
    row = await db.fetchrow(
        _SELECT + " WHERE s.call_id = $1 AND s.local_tag = $2 AND s.remote_tag = $3",
        key.call_id,
        key.local_tag,
        key.remote_tag,
    )
    return None if row is None else StoredSubscription.from_row(row)


async def list_active(db: Executor, now: datetime) -> list[StoredSubscription]:
    """Every subscription that has not run out at ``now`` (oldest first); the agent keeps
    those of its shards."""
    rows = await db.fetch(
        _SELECT + " WHERE s.expires_at > $1 ORDER BY s.created_at, s.call_id", now
    )
    return [StoredSubscription.from_row(row) for row in rows]


async def delete_expired(db: Executor, now: datetime) -> int:
    """Rows of subscriptions that ran out while no agent held them."""
    status = await db.execute("DELETE FROM mwi_subscriptions WHERE expires_at <= $1", now)
    return int(status.split()[-1])
