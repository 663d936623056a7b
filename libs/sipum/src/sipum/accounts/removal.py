"""Deleting a mailbox for good, in the order the other services need.

1. ``user.deleted`` is published first. The registrar-agent answers it with a de-REGISTER
   (``Expires: 0``), and Kamailio authenticates that request against the user's row
   (docs/registrar-agent.md), so the row must still be there when it arrives.
2. We wait — at most ``deregister_wait`` seconds — for the agent's ``registration.changed``
   of this user with state ``unregistered``: only then is the binding gone and the row no
   longer needed. (The agent makes one de-registration attempt for a removed user and reports
   ``unregistered`` whatever its outcome; a ``failed`` report can only be an earlier refresh's.) No agent, or a user it never registered, means
   no such event: the wait runs out and the deletion goes on (the binding, if any, expires
   by itself after at most the agent's ``register_expires``).
3. The rows go in one statement, so one transaction: the user, and through ``ON DELETE
   CASCADE`` their messages and greetings. Either all of it is gone or none of it.
4. Only then the blobs: the keys the rows named plus whatever else lies under the user's
   message and greeting prefixes (a recording stored while the rows were being deleted, or
   blobs left by an earlier crash). A blob that cannot be deleted is logged and left behind.

A crash (or failure) between the steps:

* after 1–2, before 3: the account is intact and still works, only de-registered until the
  agent next loads its users; the client repeats the DELETE, which finishes the job.
* after 3, before 4 (or a blob store failure in 4): the account is gone; its audio stays as
  unreferenced blobs. Nothing serves them (every read goes through a row, message ids are never
  reused, a greeting of a new user of the same name overwrites its key), so they cost only
  storage; an operator can remove them by prefix (``messages/<domain>/<user>/``,
  ``greetings/<domain>/<user>/``), and deleting a later account of the same name sweeps them.

The other order — blobs first — would leave rows pointing at missing audio after a crash: a
half-deleted account. Rows first never does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sipum.accounts import metrics
from sipum.blobstore import BlobStore
from sipum.blobstore.keys import greeting_key, mailbox_prefix
from sipum.db import Pool, users
from sipum.events import EventBus, RegistrationChanged, UserDeleted, stable_event_id

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

log = logging.getLogger("sipum.misc.web")


@dataclass(frozen=True, slots=True)
class Removal:
    """What deleting one mailbox did."""

    deregistered: bool
    """The registrar-agent confirmed the de-registration within the wait."""
    blobs_deleted: int
    blobs_left: tuple[str, ...]
    """Keys that could not be deleted (logged; see the module docstring)."""


def _user_prefixes(user: users.User) -> list[str]:
    """Blob prefixes that hold only this user's audio (none if the name cannot be a key)."""
    try:
        greetings_dir = greeting_key(user.domain, user.username, "name").rpartition("/")[0]
        return [mailbox_prefix(user.domain, user.username), greetings_dir + "/"]
    except ValueError:
        return []


async def _watch_deregistration(
    bus: EventBus, user: users.User
) -> tuple[Subscription, asyncio.Event]:
    """Subscribe (core NATS, before publishing) to this user's registration changes."""
    done = asyncio.Event()

    async def on_msg(msg: Msg) -> None:
        try:
            event = RegistrationChanged.model_validate_json(msg.data)
        except ValueError:
            return
        if (event.username, event.domain, event.state) == (
            user.username,
            user.domain,
            "unregistered",
        ):
            done.set()

    subscription = await bus.nc.subscribe(bus.subjects.event(RegistrationChanged.kind), cb=on_msg)
    return subscription, done


async def remove_mailbox(
    user: users.User,
    *,
    pool: Pool,
    bus: EventBus,
    blobs: BlobStore,
    deregister_wait: float,
) -> Removal:
    """Delete ``user`` with their messages and greetings (see the module docstring).

    Raises if ``user.deleted`` cannot be published or the rows cannot be deleted — in both
    cases nothing was deleted yet."""
    subscription, deregistered = await _watch_deregistration(bus, user)
    try:
        await bus.publish(
            UserDeleted(
                id=stable_event_id("user.deleted", user.id),
                username=user.username,
                domain=user.domain,
            )
        )
        if deregister_wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(deregistered.wait(), deregister_wait)
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()

    async with pool.acquire() as conn, conn.transaction():
        keys = await users.delete(conn, user.id)
    if keys is None:  # deleted meanwhile by a concurrent request: its blobs are its job
        keys = []

    deleted, left = 0, []
    for prefix in _user_prefixes(user):
        try:
            keys.extend(await blobs.list_keys(prefix))
        except Exception as exc:  # the listing only sweeps leftovers; the named keys follow
            log.warning("could not list blobs", extra={"prefix": prefix, "error": str(exc)})
    for key in dict.fromkeys(keys):
        try:
            await blobs.delete(key)
            deleted += 1
        except Exception as exc:
            left.append(key)
            log.warning("could not delete blob", extra={"key": key, "error": str(exc)})
    metrics.ACCOUNTS_DELETED.labels("confirmed" if deregistered.is_set() else "not_confirmed").inc()
    metrics.ACCOUNT_BLOBS_LEFT.inc(len(left))
    log.info(
        "account deleted",
        extra={
            "user": user.address,
            "deregistered": deregistered.is_set(),
            "blobs_deleted": deleted,
            "blobs_left": len(left),
        },
    )
    return Removal(
        deregistered=deregistered.is_set(), blobs_deleted=deleted, blobs_left=tuple(left)
    )
