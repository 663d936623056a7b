"""REGISTER client for many users (RFC 3261 §10.2), sans-I/O.

Theory of operation
-------------------
One :class:`Registration` per binding: the address-of-record ``sip:<user>@<domain>`` bound to
the contact ``sip:<user>@<agent host:port>``. It is a small state machine clocked by ``now``:

* it says *when* it wants to send (``due_at``) and builds the REGISTER when asked
  (:meth:`Registration.build_request`); the caller hands it to a non-INVITE client transaction,
  which owns retransmission and Timer F;
* it is fed the final response (:meth:`Registration.receive_response`) or the transaction's
  failure (:meth:`Registration.request_failed`) and answers with state changes.

Every REGISTER of a binding carries the same Call-ID and From tag and an increasing CSeq
(§10.2.4 "refreshing bindings"), so the registrar sees one registration refreshed rather than
new ones. Digest credentials are computed from a stored HA1 (RFC 2617 §3.2.2.2, RFC 7616,
RFC 8760 for SHA-256) — no plaintext password is needed. Once a challenge is known, later
REGISTERs answer it pre-emptively with an incremented nonce count (RFC 7616 §3.4), which halves
the packets of a refresh; if the registrar has forgotten or expired the nonce it challenges again
and the REGISTER is retried at once with the new nonce (``stale=true``, or any challenge
answering pre-emptive credentials; at most ``max_challenge_retries`` times in a row). A
challenge answering credentials computed from the challenge just received, without
``stale=true``, means the HA1 is wrong: that is a failure, not a loop.

``423 Interval Too Brief`` is retried at once with the registrar's ``Min-Expires`` (§10.2.8).
The granted interval is read from our Contact's ``expires`` parameter in the 200, else the
``Expires`` header (§10.2.4), and the binding is refreshed at ``max(expires/2, expires-30)``
scaled by a random factor in [0.9, 1] so that bindings made together drift apart. Failures
(timeouts, transport errors, 3xx-6xx such as 403/404/5xx, rejected credentials, a 200 that does
not list our contact) back off exponentially with
jitter (RFC 5626 §4.5: ``min(max, base·2^(n-1))`` times a random factor in [0.5, 1]),
``Retry-After`` wins when present.

:class:`RegistrationPool` holds thousands of registrations and decides who may send: at most
``max_in_flight`` REGISTER transactions at once (a window like a semaphore) and at most
``max_rate`` new ones per second (a token bucket), so 10,000 users never become a 10,000-packet
burst, neither at start nor when refreshes happen to line up.

The asyncio side is :class:`RegistrationClient`: it runs the pool on the service's SIP endpoint
(a ``UserAgentEndpoint``: the same socket its user agent answers INVITEs on), which writes each
REGISTER's Via.

Modules: ``binding`` (what is bound, credentials, reading the granted interval out of a 200),
``policy`` (refresh and backoff timing), ``state_machine`` (:class:`Registration`), ``pool``
(:class:`RegistrationPool`), ``client`` (:class:`RegistrationClient`, asyncio).

The pool publishes :class:`RegistrationChanged` events on transitions between ``registered``,
``failed`` and ``unregistered``; the registrar-agent turns them into
``sipum.evt.registration.changed``.
"""

from __future__ import annotations

from sipum_protocol.sip.registration.binding import DigestCredentials, RegistrationBinding
from sipum_protocol.sip.registration.client import (
    PendingRequest,
    RegistrationClient,
    RequestSender,
)
from sipum_protocol.sip.registration.policy import (
    RegistrationPolicy,
    backoff_delay,
    refresh_delay,
)
from sipum_protocol.sip.registration.pool import PoolStats, RegistrationPool
from sipum_protocol.sip.registration.state_machine import (
    PUBLISHED_STATES,
    Registration,
    RegistrationChanged,
    RegistrationState,
)

__all__ = [
    "PUBLISHED_STATES",
    "DigestCredentials",
    "PendingRequest",
    "PoolStats",
    "Registration",
    "RegistrationBinding",
    "RegistrationChanged",
    "RegistrationClient",
    "RegistrationPolicy",
    "RegistrationPool",
    "RegistrationState",
    "RequestSender",
    "backoff_delay",
    "refresh_delay",
]
