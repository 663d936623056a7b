"""Message-waiting subscriptions (RFC 3842 over RFC 6665), sans-I/O: the notifier's state.

``SubscriptionTable`` decides what a SUBSCRIBE gets and keeps the subscriptions; it never
touches a socket, a database or a clock — every method takes ``now`` — so the unit tests
drive it with a fake clock. ``sipum_registrar_agent.mwi`` is the asyncio side (database
counts, digest, NATS events, sending NOTIFYs).

Rules (RFC 6665 unless said otherwise):

* ``Event`` must name ``message-summary`` (§8.2.1, RFC 3842 §3.1); another package gets
  ``489 Bad Event`` with ``Allow-Events`` (§7.2.2). An ``id`` parameter is echoed in every
  NOTIFY (§8.2.1) and is part of the subscription's identity.
* ``Accept``, when present, must allow ``application/simple-message-summary`` (RFC 3842
  §3.5) — else ``406``.
* ``Expires``: absent → ``default_expires``; above ``max_expires`` → lowered (§4.2.1.1);
  ``0 < Expires < min_expires`` → ``423 Interval Too Brief`` with ``Min-Expires``; ``0`` on a
  new subscription is a fetch: 200, one NOTIFY ``terminated``, no state kept (§4.4.3).
* A SUBSCRIBE inside a dialog refreshes (§4.2.1.2) or, with ``Expires: 0``, ends it
  (§4.2.1.4); a dialog we do not know gets ``481``; its CSeq must grow (RFC 3261 §12.2.2).
* Every accepted SUBSCRIBE is followed by a NOTIFY with the current state (§4.2.1.2); the
  state is ``active;expires=<left>`` or ``terminated;reason=timeout`` once it ran out
  (§4.1.3).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

from sipum_protocol.sip.dialog import Dialog, DialogId, incoming_request_dialog_id
from sipum_protocol.sip.headers import SipParseError, split_list
from sipum_protocol.sip.message import SipRequest
from sipum_protocol.sip.mwi import CONTENT_TYPE, EVENT_PACKAGE, MessageSummary, build_summary
from sipum_protocol.sip.transaction import Peer


@dataclass(frozen=True, slots=True)
class MwiLimits:
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_subscriptions: int = 20000
    """All mailboxes together; more gets 503 (memory is bounded)."""
    max_per_mailbox: int = 16
    """A mailbox with this many (phones re-subscribing after a restart leave old dialogs
    until they expire) gets 503 for more."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A final response the table decided on (status, extra headers)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class MailboxKey:
    username: str
    domain: str

    @classmethod
    def of(cls, username: str, domain: str) -> MailboxKey:
        return cls(username.lower(), domain.lower())

    @property
    def account(self) -> str:
        """RFC 3842 §5.2 ``Message-Account``: the mailbox's address of record."""
        return f"sip:{self.username}@{self.domain}"


@dataclass(eq=False)
class Subscription:
    """One message-summary subscription: a dialog (the SUBSCRIBE created it, RFC 6665 §4.1.2)."""

    dialog: Dialog
    mailbox: MailboxKey
    user_id: int
    event_id: str | None
    peer: Peer
    """Where the SUBSCRIBE came from (the proxy); NOTIFYs follow the dialog's route set."""
    expires_at: float
    created_at: float
    terminated: bool = False
    last_sent: MessageSummary | None = None
    """The last summary a NOTIFY carried (skip NOTIFYs that would say the same)."""
    extra: dict[str, object] = field(default_factory=dict)

    def remaining(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))


def event_of(request: SipRequest) -> tuple[str, str | None] | None:
    """(package, id) of the ``Event`` header (``o`` compact form included), or None."""
    value = request.headers.get("Event")
    if not value:
        return None
    package, *params = value.split(";")
    event_id = None
    for param in params:
        name, _, val = param.partition("=")
        if name.strip().lower() == "id":
            event_id = val.strip()
    return package.strip().lower(), event_id


def requested_expires(request: SipRequest) -> int | None:
    """The ``Expires`` header as seconds; None when absent; ValueError when malformed."""
    value = request.headers.get("Expires")
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or len(text) > 10:
        raise ValueError(f"bad Expires {text[:20]!r}")
    return int(text)


def accepts_summary(request: SipRequest) -> bool:
    """RFC 3842 §3.5: no ``Accept`` means ``application/simple-message-summary``."""
    values = request.headers.get_all("Accept")
    if not values:
        return True
    for value in values:
        for item in split_list(value):
            media = item.split(";", 1)[0].strip().lower()
            if media in (CONTENT_TYPE, "application/*", "*/*"):
                return True
    return False


class SubscriptionTable:
    """The subscriptions of this agent, by dialog and by mailbox; expiry order in a heap."""

    def __init__(self, limits: MwiLimits | None = None) -> None:
        self.limits = limits or MwiLimits()
        self._by_dialog: dict[DialogId, Subscription] = {}
        self._by_mailbox: dict[MailboxKey, set[Subscription]] = {}
        self._expiry: list[tuple[float, int, Subscription]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._by_dialog)

    def __iter__(self) -> Iterator[Subscription]:
        return iter(list(self._by_dialog.values()))

    # ------------------------------------------------------------------ checks

    def check_new(self, request: SipRequest) -> Reply | int:
        """The checks a SUBSCRIBE passes before its mailbox is looked up: a ``Reply`` to
        refuse it, else the granted interval (0: a one-time fetch)."""
        event = event_of(request)
        if event is None or event[0] != EVENT_PACKAGE:
            return Reply(489, (("Allow-Events", EVENT_PACKAGE),))
        if not accepts_summary(request):
            return Reply(406, (("Accept", CONTENT_TYPE),))
        return self._grant(request)

    def check_refresh(self, sub: Subscription, request: SipRequest) -> Reply | int:
        event = event_of(request)
        if event is None or event[0] != EVENT_PACKAGE or event[1] != sub.event_id:
            # §4.1.2.2: the Event (package and id) identifies the subscription in the dialog.
            return Reply(489, (("Allow-Events", EVENT_PACKAGE),))
        return self._grant(request)

    def _grant(self, request: SipRequest) -> Reply | int:
        try:
            asked = requested_expires(request)
        except ValueError:
            return Reply(400, reason="Bad Expires")
        if asked is None:
            return self.limits.default_expires
        if asked == 0:
            return 0
        if asked < self.limits.min_expires:
            # §4.2.1.1 / RFC 3261 §21.4.17: 423 names the shortest interval we take.
            return Reply(423, (("Min-Expires", str(self.limits.min_expires)),))
        return min(asked, self.limits.max_expires)

    def check_room(self, mailbox: MailboxKey) -> Reply | None:
        if len(self._by_dialog) >= self.limits.max_subscriptions:
            return Reply(503, (("Retry-After", "60"),), "Too Many Subscriptions")
        if len(self._by_mailbox.get(mailbox, ())) >= self.limits.max_per_mailbox:
            return Reply(503, (("Retry-After", "60"),), "Too Many Subscriptions For Mailbox")
        return None

    # ------------------------------------------------------------------ state

    def find(self, request: SipRequest) -> Subscription | None:
        """The subscription an in-dialog request belongs to (None: unknown dialog, 481)."""
        try:
            dialog_id = incoming_request_dialog_id(request)
        except SipParseError:
            return None
        if dialog_id is None:
            return None
        sub = self._by_dialog.get(dialog_id)
        return None if sub is None or sub.terminated else sub

    def create(
        self,
        request: SipRequest,
        peer: Peer,
        *,
        local_tag: str,
        local_contact: str,
        mailbox: MailboxKey,
        user_id: int,
        expires: int,
        now: float,
    ) -> Subscription:
        """A new subscription (RFC 6665 §4.2.1.1): the 200 with ``local_tag`` creates the
        dialog (§4.1.2.1). With ``expires == 0`` it is not kept (a fetch)."""
        dialog = Dialog.from_incoming_request(
            request, local_tag=local_tag, local_contact=local_contact
        )
        dialog.confirm()
        event = event_of(request)
        sub = Subscription(
            dialog=dialog,
            mailbox=mailbox,
            user_id=user_id,
            event_id=event[1] if event else None,
            peer=peer,
            expires_at=now + expires,
            created_at=now,
        )
        if expires > 0:
            self._by_dialog[dialog.id] = sub
            self._by_mailbox.setdefault(mailbox, set()).add(sub)
            heapq.heappush(self._expiry, (sub.expires_at, next(self._seq), sub))
        else:
            sub.terminated = True
        return sub

    def get(self, dialog_id: DialogId) -> Subscription | None:
        return self._by_dialog.get(dialog_id)

    def adopt(
        self,
        dialog: Dialog,
        *,
        mailbox: MailboxKey,
        user_id: int,
        event_id: str | None,
        peer: Peer,
        expires_at: float,
        now: float,
    ) -> Subscription | None:
        """A subscription created before (by us before a restart, or by an agent whose shard
        we took over), read back from the store; None if its dialog is known already, it ran
        out, or there is no room (the limits hold for restored ones too)."""
        if dialog.id in self._by_dialog or expires_at <= now:
            return None
        if self.check_room(mailbox) is not None:
            return None
        dialog.confirm()
        sub = Subscription(
            dialog=dialog,
            mailbox=mailbox,
            user_id=user_id,
            event_id=event_id,
            peer=peer,
            expires_at=expires_at,
            created_at=now,
        )
        self._by_dialog[dialog.id] = sub
        self._by_mailbox.setdefault(mailbox, set()).add(sub)
        heapq.heappush(self._expiry, (sub.expires_at, next(self._seq), sub))
        return sub

    def refresh(self, sub: Subscription, expires: int, now: float) -> None:
        """§4.2.1.2: a new interval from now; 0 ends the subscription (§4.2.1.4)."""
        sub.expires_at = now + expires
        if expires == 0:
            self.remove(sub)
            return
        heapq.heappush(self._expiry, (sub.expires_at, next(self._seq), sub))

    def remove(self, sub: Subscription) -> None:
        sub.terminated = True
        self._by_dialog.pop(sub.dialog.id, None)
        subs = self._by_mailbox.get(sub.mailbox)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_mailbox[sub.mailbox]
        sub.dialog.terminate()

    def for_mailbox(self, mailbox: MailboxKey) -> list[Subscription]:
        return list(self._by_mailbox.get(mailbox, ()))

    def has_mailbox(self, mailbox: MailboxKey) -> bool:
        return mailbox in self._by_mailbox

    def expired(self, now: float) -> list[Subscription]:
        """Subscriptions whose interval ran out (removed here; §4.1.3: they get a last
        NOTIFY ``terminated;reason=timeout``)."""
        out = []
        heap = self._expiry
        while heap and heap[0][0] <= now:
            when, _, sub = heapq.heappop(heap)
            if sub.terminated or when != sub.expires_at:
                continue  # refreshed since, or gone
            self.remove(sub)
            out.append(sub)
        return out

    def next_expiry(self) -> float | None:
        heap = self._expiry
        while heap and (heap[0][2].terminated or heap[0][0] != heap[0][2].expires_at):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    # ------------------------------------------------------------------ NOTIFY

    def notify_request(
        self,
        sub: Subscription,
        summary: MessageSummary | None,
        now: float,
        *,
        via: str,
        terminated: str | None = None,
    ) -> SipRequest:
        """A NOTIFY in the subscription's dialog (§4.2.2, §8.2.3 ``Subscription-State``).

        ``terminated``: None for an active subscription, else the reason (``""`` for none,
        ``"timeout"``, ``"noresource"`` ...). The body is the summary (RFC 3842 §5), if any.
        """
        if terminated is None:
            state = f"active;expires={sub.remaining(now)}"
        else:
            state = "terminated" + (f";reason={terminated}" if terminated else "")
        event = EVENT_PACKAGE + (f";id={sub.event_id}" if sub.event_id is not None else "")
        headers = [("Event", event), ("Subscription-State", state)]
        body = build_summary(summary) if summary is not None else b""
        return sub.dialog.create_request(
            "NOTIFY", via=via, body=body, content_type=CONTENT_TYPE, headers=headers
        )
