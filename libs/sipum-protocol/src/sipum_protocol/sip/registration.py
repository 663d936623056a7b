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

The pool publishes :class:`RegistrationChanged` events on transitions between ``registered``,
``failed`` and ``unregistered``; the registrar-agent turns them into
``sipum.evt.registration.changed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import heapq
import logging
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sipum_protocol.sip import digest
from sipum_protocol.sip.message import (
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    new_call_id,
    new_tag,
    parse_name_addr,
    parse_uri,
)
from sipum_protocol.sip.transaction import Peer

log = logging.getLogger("sipum_protocol.sip.registration")

__all__ = [
    "DigestCredentials",
    "RegistrationClient",
    "RegistrationBinding",
    "RegistrationChanged",
    "RegistrationPolicy",
    "RegistrationPool",
    "Registration",
    "RegistrationState",
    "refresh_delay",
    "backoff_delay",
]


class RegistrationState(enum.Enum):
    """Where a binding stands. Only REGISTERED, FAILED and UNREGISTERED are published."""

    UNREGISTERED = "unregistered"
    """Nothing bound: before the first REGISTER, or after de-registration."""
    REGISTERING = "registering"
    """First REGISTER (and its challenge round trip) in progress."""
    REGISTERED = "registered"
    """The registrar granted the binding; a refresh may be in flight."""
    FAILED = "failed"
    """The last attempt failed; the next one is due after a backoff."""
    UNREGISTERING = "unregistering"
    """``Expires: 0`` in progress (shutdown or user removed)."""


PUBLISHED_STATES = frozenset(
    {RegistrationState.REGISTERED, RegistrationState.FAILED, RegistrationState.UNREGISTERED}
)


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """Stored digest secrets of one user: HA1 = H(username:realm:password) per algorithm."""

    username: str
    ha1: Mapping[str, str]
    """Algorithm name (``"MD5"``, ``"SHA-256"``) → lower-case hex HA1."""
    realm: str | None = None
    """The realm the HA1 values were computed for; ``None`` accepts any realm."""

    def ha1_for(self, algorithm: str, realm: str) -> str | None:
        if self.realm is not None and self.realm != realm:
            return None
        base = algorithm.upper().removesuffix("-SESS")
        for name, value in self.ha1.items():
            if name.upper() == base:
                return value
        return None


@dataclass(frozen=True, slots=True)
class RegistrationBinding:
    """What to register: ``sip:<user>@<domain>`` → ``sip:<user>@<contact_host>:<contact_port>``."""

    user: str
    domain: str
    contact_host: str
    contact_port: int
    credentials: DigestCredentials | None = None
    transport: str = "UDP"
    expires: int = 3600
    """The interval we ask for (seconds); the registrar may grant less or demand more."""
    registrar_uri: str | None = None
    """Request-URI of the REGISTER; ``sip:<domain>`` by default (§10.2)."""
    user_agent: str = "sipum"

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    @property
    def contact_uri(self) -> str:
        host = f"[{self.contact_host}]" if ":" in self.contact_host else self.contact_host
        uri = f"sip:{self.user}@{host}:{self.contact_port}"
        if self.transport.upper() != "UDP":
            uri += f";transport={self.transport.lower()}"
        return uri


@dataclass(frozen=True, slots=True)
class RegistrationPolicy:
    """Timing knobs (seconds)."""

    refresh_margin: float = 30.0
    """Refresh at ``max(expires/2, expires - refresh_margin)``."""
    refresh_jitter: float = 0.1
    """… times a random factor in ``[1 - refresh_jitter, 1]``."""
    backoff_base: float = 30.0
    backoff_max: float = 1800.0
    max_challenge_retries: int = 2
    """Consecutive re-challenges accepted (``stale=true`` or pre-emptive credentials refused)."""
    max_interval_retries: int = 2
    """Consecutive ``423 Interval Too Brief`` answers accepted."""


@dataclass(frozen=True, slots=True)
class RegistrationChanged:
    """A binding changed between registered, failed and unregistered."""

    aor: str
    contact: str
    state: RegistrationState
    previous: RegistrationState
    at: float
    """The ``now`` at which it happened."""
    expires: int | None = None
    """Seconds granted (when registered)."""
    status: int | None = None
    """The SIP status that caused it, if a response did."""
    reason: str = ""
    retry_at: float | None = None
    """When the next attempt is due (when failed)."""


def refresh_delay(expires: float, policy: RegistrationPolicy, rng: random.Random) -> float:
    """Seconds after a successful REGISTER at which to refresh (see module docstring)."""
    base = max(expires / 2.0, expires - policy.refresh_margin)
    return base * rng.uniform(1.0 - policy.refresh_jitter, 1.0)


def backoff_delay(failures: int, policy: RegistrationPolicy, rng: random.Random) -> float:
    """RFC 5626 §4.5 style: ``min(max, base·2^(failures-1))`` times a factor in [0.5, 1]."""
    ceiling = min(policy.backoff_max, policy.backoff_base * (2 ** max(0, failures - 1)))
    return float(ceiling * rng.uniform(0.5, 1.0))


def _same_uri(a: SipUri, b: SipUri) -> bool:
    """Contact match for §10.2.4: scheme, user, host and port (§19.1.4, simplified)."""
    return (
        a.scheme.lower() == b.scheme.lower()
        and (a.user or "") == (b.user or "")
        and a.host.lower() == b.host.lower()
        and (a.port or 5060) == (b.port or 5060)
    )


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


class Registration:
    """One binding's REGISTER state machine (see the module docstring)."""

    def __init__(
        self,
        binding: RegistrationBinding,
        *,
        policy: RegistrationPolicy | None = None,
        rng: random.Random | None = None,
        call_id: str | None = None,
        from_tag: str | None = None,
    ) -> None:
        self.binding = binding
        self.policy = policy or RegistrationPolicy()
        self._rng = rng or random.Random()
        self.call_id = call_id or new_call_id(binding.contact_host)
        self.from_tag = from_tag or new_tag()
        self.cseq = 0
        self.state = RegistrationState.UNREGISTERED
        self.due_at: float | None = None
        """When the next REGISTER should go out; ``None``: nothing to send."""
        self.in_flight: SipRequest | None = None
        self.requested_expires = binding.expires
        self.granted_expires: int | None = None
        self.expires_at: float | None = None
        self.failures = 0
        self.last_status: int | None = None
        self.last_reason = ""
        self.stopping = False
        self.finished = False
        """True once stopped and de-registered (or never bound): the pool may forget it."""
        # Digest state: the challenge we answer, its header kind and our nonce count.
        self._challenge: digest.Challenge | None = None
        self._challenge_is_proxy = False
        self._nc = 0
        self._fresh_challenge = False  # the challenge came with the previous response
        self._challenge_retries = 0
        self._interval_retries = 0
        self._sent_credentials = False
        self._sent_fresh_credentials = False
        self._sent_expires = binding.expires
        self._credentials_changed = False

    # ------------------------------------------------------------------ control

    @property
    def aor(self) -> str:
        return self.binding.aor

    def start(self, now: float, delay: float = 0.0) -> None:
        """Begin registering (the first REGISTER is due at ``now + delay``)."""
        if self.finished or self.stopping:
            return
        if self.state is RegistrationState.UNREGISTERED and self.in_flight is None:
            self.due_at = now + delay

    def update_credentials(self, credentials: DigestCredentials | None, now: float) -> None:
        """New stored secrets (the user changed the password): forget the old challenge and
        re-register at once (or right after the REGISTER in flight) with the new HA1."""
        if self.stopping or self.finished:
            return
        self.binding = dataclasses.replace(self.binding, credentials=credentials)
        self._challenge = None
        self._fresh_challenge = False
        self._challenge_retries = 0
        self.failures = 0
        if self.in_flight is None:
            self.due_at = now
        else:
            self._credentials_changed = True  # the REGISTER in flight used the old ones

    def stop(self, now: float) -> list[RegistrationChanged]:
        """De-register (``Expires: 0``) if a binding may exist; the pool then forgets it."""
        if self.stopping or self.finished:
            return []
        self.stopping = True
        if self.in_flight is not None:
            return []  # decided when the response (or failure) arrives
        return self._stop_now(now, None, "stopped")

    def _stop_now(self, now: float, status: int | None, reason: str) -> list[RegistrationChanged]:
        # A binding may exist if we were ever granted one (even if a refresh failed since).
        if self.granted_expires is not None and self.state is not RegistrationState.UNREGISTERING:
            self.due_at = now
            return self._set_state(RegistrationState.UNREGISTERING, now, status, reason)
        self.due_at = None
        self.finished = True
        return self._set_state(RegistrationState.UNREGISTERED, now, status, reason)

    # ------------------------------------------------------------------ requests

    def build_request(self, now: float) -> SipRequest:
        """The REGISTER now due (§10.2); marks it in flight until its outcome is fed back."""
        if self.in_flight is not None:
            raise RuntimeError(f"{self.aor}: a REGISTER is already in flight")
        if self.state is RegistrationState.UNREGISTERED:
            self.state = RegistrationState.REGISTERING
        b = self.binding
        self._credentials_changed = False
        self.cseq += 1
        expires = 0 if self.state is RegistrationState.UNREGISTERING else self.requested_expires
        request_uri = b.registrar_uri or f"sip:{b.domain}"
        headers = Headers()
        # No Via: its sent-by is the address of the socket the REGISTER leaves from (§18.1.1),
        # which the sender knows and we do not (our Contact may be a name, the socket a
        # number, `-n`); the sender adds it with a new branch, one per transaction (§17.1.3).
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<{b.aor}>;tag={self.from_tag}")
        headers.add("To", f"<{b.aor}>")
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.cseq} REGISTER")
        headers.add("Contact", f"<{b.contact_uri}>")
        headers.add("Expires", str(expires))
        headers.add("User-Agent", b.user_agent)
        self._sent_credentials = False
        self._sent_fresh_credentials = False
        authorization = self._authorization(request_uri)
        if authorization is not None:
            name = "Proxy-Authorization" if self._challenge_is_proxy else "Authorization"
            headers.add(name, authorization)
            self._sent_credentials = True
            self._sent_fresh_credentials = self._fresh_challenge
        self._fresh_challenge = False
        self._sent_expires = expires
        request = SipRequest("REGISTER", request_uri, headers)
        self.in_flight = request
        self.due_at = None
        return request

    def _authorization(self, request_uri: str) -> str | None:
        challenge = self._challenge
        credentials = self.binding.credentials
        if challenge is None or credentials is None:
            return None
        ha1 = credentials.ha1_for(challenge.algorithm, challenge.realm)
        if ha1 is None:
            return None
        self._nc += 1
        return digest.authorization_from_ha1(
            challenge,
            method="REGISTER",
            uri=request_uri,
            username=credentials.username,
            ha1=ha1,
            cnonce=self._rng.getrandbits(64).to_bytes(8, "big").hex(),
            nc=self._nc,
        )

    # ------------------------------------------------------------------ outcomes

    def receive_response(self, response: SipResponse, now: float) -> list[RegistrationChanged]:
        """Feed a response to the REGISTER in flight (others are ignored)."""
        request = self.in_flight
        if request is None:
            return []
        try:
            if response.call_id != self.call_id or response.cseq != (self.cseq, "REGISTER"):
                return []
        except SipParseError:
            return []
        if response.status < 200:
            return []  # the transaction keeps going (Timer F still runs)
        self.in_flight = None
        self.last_status = response.status
        self.last_reason = response.reason
        status = response.status
        if 200 <= status < 300:
            events = self._on_success(response, now)
        elif status in (401, 407):
            events = self._on_challenge(response, now)
        elif status == 423:
            events = self._on_interval_too_brief(response, now)
        else:
            retry_after = _int_or_none((response.headers.get("Retry-After") or "").split(";")[0])
            events = self._fail(now, status, f"{status} {response.reason}", retry_after)
        self._retry_with_new_credentials(now)
        return events

    def request_failed(self, now: float, reason: str = "timeout") -> list[RegistrationChanged]:
        """The REGISTER's transaction timed out (Timer F) or its transport failed."""
        if self.in_flight is None:
            return []
        self.in_flight = None
        self.last_status = None
        self.last_reason = reason
        events = self._fail(now, None, reason, None)
        self._retry_with_new_credentials(now)
        return events

    def _retry_with_new_credentials(self, now: float) -> None:
        # Credentials changed while a REGISTER was out: whatever its outcome, try the new ones
        # now rather than at the next refresh or after a backoff.
        if self._credentials_changed and not self.finished and self.due_at is not None:
            self.due_at = now

    def _on_success(self, response: SipResponse, now: float) -> list[RegistrationChanged]:
        self._challenge_retries = 0
        self._interval_retries = 0
        if self._sent_expires == 0:
            self.granted_expires = None
            self.expires_at = None
            self.finished = True  # only a stopping registration sends Expires: 0
            self.due_at = None
            return self._set_state(
                RegistrationState.UNREGISTERED, now, response.status, "de-registered"
            )
        granted = self._granted_expires(response)
        if not granted:
            return self._fail(now, response.status, "registrar did not bind our contact", None)
        self.failures = 0
        self.granted_expires = granted
        self.expires_at = now + granted
        if self.stopping:
            return self._stop_now(now, response.status, "stopped")
        self.due_at = now + refresh_delay(granted, self.policy, self._rng)
        return self._set_state(RegistrationState.REGISTERED, now, response.status, "registered")

    def _granted_expires(self, response: SipResponse) -> int | None:
        """Seconds granted to our contact: its ``expires`` param, else the Expires header, else
        what we asked for (§10.2.4). ``None`` when the 200 does not list our contact: §10.3
        step 8 makes the registrar enumerate every current binding."""
        ours = parse_uri(self.binding.contact_uri)
        for value in response.headers.get_all("Contact"):
            try:
                contact = parse_name_addr(value)
            except SipParseError:
                continue
            if not _same_uri(contact.uri, ours):
                continue
            expires = _int_or_none(contact.params.get("expires"))
            if expires is None:
                expires = _int_or_none(response.headers.get("Expires"))
            return self._sent_expires if expires is None else expires
        return None

    def _on_challenge(self, response: SipResponse, now: float) -> list[RegistrationChanged]:
        proxy = response.status == 407
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        challenge = self._pick_challenge(response.headers.get_lines(name))
        if challenge is None:
            return self._fail(now, response.status, "no challenge we hold credentials for", None)
        if self._sent_credentials:
            # RFC 7616 §3.3 / RFC 2617 §3.2.1: stale means only the nonce was refused.
            if self._sent_fresh_credentials and not challenge.stale:
                self._challenge = None
                return self._fail(now, response.status, "credentials rejected", None)
            self._challenge_retries += 1
            if self._challenge_retries > self.policy.max_challenge_retries:
                self._challenge = None
                return self._fail(now, response.status, "challenged again and again", None)
        self._challenge = challenge
        self._challenge_is_proxy = proxy
        self._nc = 0
        self._fresh_challenge = True
        self.due_at = now  # answer the challenge at once (new transaction, CSeq + 1)
        return []

    def _pick_challenge(self, values: Iterable[str]) -> digest.Challenge | None:
        """The strongest digest challenge we have an HA1 for (RFC 8760 §2.4: SHA-256 first)."""
        credentials = self.binding.credentials
        if credentials is None:
            return None
        best: digest.Challenge | None = None
        best_rank = -1
        for value in values:
            try:
                challenge = digest.parse_challenge(value)
            except ValueError:
                continue
            if credentials.ha1_for(challenge.algorithm, challenge.realm) is None:
                continue
            if challenge.qop and "auth" not in challenge.qop:
                continue  # auth-int only: we do not sign bodies
            rank = 1 if challenge.algorithm.upper().startswith("SHA-256") else 0
            if rank > best_rank:
                best, best_rank = challenge, rank
        return best

    def _on_interval_too_brief(
        self, response: SipResponse, now: float
    ) -> list[RegistrationChanged]:
        minimum = _int_or_none(response.headers.get("Min-Expires"))
        self._interval_retries += 1
        if (
            minimum is None
            or minimum <= self._sent_expires
            or self._interval_retries > self.policy.max_interval_retries
        ):
            return self._fail(now, 423, "423 without a usable Min-Expires", None)
        self.requested_expires = minimum  # §10.2.8: retry with at least Min-Expires
        self.due_at = now
        return []

    def _fail(
        self, now: float, status: int | None, reason: str, retry_after: int | None
    ) -> list[RegistrationChanged]:
        self._challenge_retries = 0
        self._interval_retries = 0
        self.last_reason = reason
        if self.stopping:
            # Shutting down: one de-registration attempt is all we owe the registrar.
            self.granted_expires = None
            self.due_at = None
            self.finished = True
            return self._set_state(RegistrationState.UNREGISTERED, now, status, reason)
        self.failures += 1
        delay = (
            float(retry_after)
            if retry_after is not None
            else backoff_delay(self.failures, self.policy, self._rng)
        )
        self.due_at = now + delay
        return self._set_state(RegistrationState.FAILED, now, status, reason)

    def _set_state(
        self, state: RegistrationState, now: float, status: int | None, reason: str
    ) -> list[RegistrationChanged]:
        previous = self.state
        self.state = state
        if state is previous or state not in PUBLISHED_STATES:
            return []
        if previous is RegistrationState.REGISTERING and state is RegistrationState.UNREGISTERED:
            return []  # never bound: nothing changed for the outside world
        return [
            RegistrationChanged(
                aor=self.aor,
                contact=self.binding.contact_uri,
                state=state,
                previous=_published(previous),
                at=now,
                expires=self.granted_expires if state is RegistrationState.REGISTERED else None,
                status=status,
                reason=reason,
                retry_at=self.due_at if state is RegistrationState.FAILED else None,
            )
        ]

    def __repr__(self) -> str:
        return f"<Registration {self.aor} {self.state.value} cseq={self.cseq} due={self.due_at}>"


def _published(state: RegistrationState) -> RegistrationState:
    """The last published state a transient one stands for."""
    if state is RegistrationState.REGISTERING:
        return RegistrationState.UNREGISTERED
    if state is RegistrationState.UNREGISTERING:
        return RegistrationState.REGISTERED
    return state


@dataclass
class _TokenBucket:
    rate: float
    burst: float
    tokens: float = 0.0
    stamp: float | None = None

    def refill(self, now: float) -> None:
        if self.stamp is None:
            self.tokens = self.burst
        else:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self) -> bool:
        # The epsilon keeps float rounding (0.9999999) from starving the pool.
        if self.tokens < 1.0 - 1e-9:
            return False
        self.tokens = max(0.0, self.tokens - 1.0)
        return True

    def next_token_at(self) -> float:
        assert self.stamp is not None
        return self.stamp + max(0.0, (1.0 - self.tokens) / self.rate)


@dataclass
class PoolStats:
    """Counters for metrics and benchmarks."""

    requests_sent: int = 0
    max_in_flight_seen: int = 0
    responses: int = 0
    failures: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


class RegistrationPool:
    """Many registrations behind one window of REGISTERs in flight (sans-I/O).

    Drive it like a protocol object: :meth:`requests_to_send` (REGISTERs allowed out now),
    :meth:`receive_response` / :meth:`request_failed` with their outcome, and wake up at
    :meth:`get_timer`.
    """

    def __init__(
        self,
        *,
        max_in_flight: int = 50,
        max_rate: float | None = 500.0,
        policy: RegistrationPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self.policy = policy or RegistrationPolicy()
        self._rng = rng or random.Random()
        self._bucket = (
            _TokenBucket(rate=max_rate, burst=max(1.0, min(float(max_in_flight), max_rate)))
            if max_rate
            else None
        )
        self._by_aor: dict[str, Registration] = {}
        self._by_call_id: dict[str, Registration] = {}
        self._in_flight: set[str] = set()  # Call-IDs
        self._heap: list[tuple[float, int, str]] = []  # (due_at, seq, call_id)
        self._seq = 0
        self.stats = PoolStats()

    # ------------------------------------------------------------------ membership

    def __len__(self) -> int:
        return len(self._by_aor)

    def __iter__(self) -> Iterator[Registration]:
        return iter(list(self._by_aor.values()))

    def get(self, aor: str) -> Registration | None:
        return self._by_aor.get(aor)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def count(self, state: RegistrationState) -> int:
        return sum(1 for r in self._by_aor.values() if r.state is state)

    def add(self, binding: RegistrationBinding, now: float, *, delay: float = 0.0) -> Registration:
        """Register a new binding (first REGISTER due at ``now + delay``; the window and rate
        limit decide when it really goes)."""
        if binding.aor in self._by_aor:
            raise ValueError(f"{binding.aor} is already in the pool")
        registration = Registration(binding, policy=self.policy, rng=self._rng)
        self._by_aor[binding.aor] = registration
        self._by_call_id[registration.call_id] = registration
        registration.start(now, delay)
        self._schedule(registration)
        return registration

    def update_credentials(
        self, aor: str, credentials: DigestCredentials | None, now: float
    ) -> bool:
        """Re-register ``aor`` with new credentials; ``False`` if it is not in the pool."""
        registration = self._by_aor.get(aor)
        if registration is None:
            return False
        registration.update_credentials(credentials, now)
        self._after(registration, [])
        return True

    def remove(self, aor: str, now: float) -> list[RegistrationChanged]:
        """De-register one binding (user removed); it leaves the pool once done."""
        registration = self._by_aor.get(aor)
        if registration is None:
            return []
        return self._after(registration, registration.stop(now))

    def stop(self, now: float) -> list[RegistrationChanged]:
        """De-register everything (shutdown). Keep driving the pool until :attr:`idle`."""
        events: list[RegistrationChanged] = []
        for registration in list(self._by_aor.values()):
            events += self._after(registration, registration.stop(now))
        return events

    @property
    def idle(self) -> bool:
        """Nothing left in the pool (after :meth:`stop`: every de-registration done)."""
        return not self._by_aor

    # ------------------------------------------------------------------ I/O side

    def requests_to_send(self, now: float) -> list[tuple[Registration, SipRequest]]:
        """REGISTERs that may go out now, within the window and the rate limit."""
        out: list[tuple[Registration, SipRequest]] = []
        if self._bucket is not None:
            self._bucket.refill(now)
        while self._heap and len(self._in_flight) < self.max_in_flight:
            due, _seq, call_id = self._heap[0]
            registration = self._by_call_id.get(call_id)
            if registration is None or registration.due_at != due or registration.in_flight:
                heapq.heappop(self._heap)  # superseded entry
                continue
            if due > now:
                break
            if self._bucket is not None:
                if not self._bucket.take():
                    break
            heapq.heappop(self._heap)
            request = registration.build_request(now)
            self._in_flight.add(call_id)
            out.append((registration, request))
        self.stats.requests_sent += len(out)
        self.stats.max_in_flight_seen = max(self.stats.max_in_flight_seen, len(self._in_flight))
        return out

    def receive_response(self, response: SipResponse, now: float) -> list[RegistrationChanged]:
        try:
            call_id = response.call_id
        except SipParseError:
            return []
        registration = self._by_call_id.get(call_id)
        if registration is None:
            return []
        if response.status >= 200:
            self.stats.responses += 1
            self.stats.by_status[response.status] = self.stats.by_status.get(response.status, 0) + 1
        return self._after(registration, registration.receive_response(response, now))

    def request_failed(
        self, call_id: str, now: float, reason: str = "timeout"
    ) -> list[RegistrationChanged]:
        registration = self._by_call_id.get(call_id)
        if registration is None:
            return []
        self.stats.failures += 1
        return self._after(registration, registration.request_failed(now, reason))

    def get_timer(self, now: float | None = None) -> float | None:
        """When :meth:`requests_to_send` may next return something (``None``: only after a
        response frees the window, or never)."""
        while self._heap:
            due, _seq, call_id = self._heap[0]
            registration = self._by_call_id.get(call_id)
            if registration is None or registration.due_at != due or registration.in_flight:
                heapq.heappop(self._heap)
                continue
            break
        else:
            return None
        if len(self._in_flight) >= self.max_in_flight:
            return None
        due = self._heap[0][0]
        bucket = self._bucket
        if bucket is not None and bucket.stamp is not None and bucket.tokens < 1.0 - 1e-9:
            due = max(due, bucket.next_token_at())
        return due

    # ------------------------------------------------------------------ internals

    def _after(
        self, registration: Registration, events: list[RegistrationChanged]
    ) -> list[RegistrationChanged]:
        call_id = registration.call_id
        if registration.in_flight is None:
            self._in_flight.discard(call_id)
        if registration.finished:
            self._by_aor.pop(registration.aor, None)
            self._by_call_id.pop(call_id, None)
            self._in_flight.discard(call_id)
        else:
            self._schedule(registration)
        return events

    def _schedule(self, registration: Registration) -> None:
        if registration.due_at is not None and registration.in_flight is None:
            self._seq += 1
            heapq.heappush(self._heap, (registration.due_at, self._seq, registration.call_id))


# ================================================================================ asyncio


class PendingRequest(Protocol):
    """What ``SipEndpoint.send_request`` returns: ``final`` resolves to the final response, or
    raises ``TimeoutError`` (timer F) / ``ConnectionError`` (transport failure)."""

    @property
    def final(self) -> asyncio.Future[SipResponse]: ...


class RequestSender(Protocol):
    """The part of ``sipum_protocol.sip.transport.SipEndpoint`` the client uses."""

    def send_request(self, request: SipRequest, peer: Peer) -> PendingRequest: ...


class RegistrationClient:
    """Thin asyncio driver of a :class:`RegistrationPool` on a SIP endpoint.

    ``endpoint`` is the service's ``SipEndpoint`` (shared with its user agent, so the contact we
    register is where INVITEs arrive): each REGISTER the pool lets out becomes a non-INVITE
    client transaction there (retransmissions, Timer F), and its outcome is fed back to the
    pool. One task sleeps until the pool's next timer or until an outcome frees the window.
    State changes go to ``on_change`` (the registrar-agent publishes them as
    ``sipum.evt.registration.changed``).
    """

    def __init__(
        self,
        pool: RegistrationPool,
        registrar: Peer,
        endpoint: RequestSender,
        *,
        on_change: Callable[[RegistrationChanged], object] | None = None,
    ) -> None:
        self.pool = pool
        self.registrar = registrar
        self.endpoint = endpoint
        self._on_change = on_change
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def now() -> float:
        # The same clock as SipEndpoint's transaction layer.
        return asyncio.get_running_loop().time()

    # ---------------------------------------------------------------- control

    def add(self, binding: RegistrationBinding, *, delay: float = 0.0) -> Registration:
        """Start registering a binding (user created, or at start-up)."""
        registration = self.pool.add(binding, self.now(), delay=delay)
        self._idle.clear()
        self._wake.set()
        return registration

    def update_credentials(self, aor: str, credentials: DigestCredentials | None) -> bool:
        """Re-register with new stored secrets (password changed)."""
        found = self.pool.update_credentials(aor, credentials, self.now())
        self._wake.set()
        return found

    def remove(self, aor: str) -> None:
        """De-register a binding (user removed); it leaves the pool when done."""
        self._publish(self.pool.remove(aor, self.now()))
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="registration")

    async def stop(self, grace: float = 10.0) -> bool:
        """De-register every binding (``Expires: 0``) and wait at most ``grace`` seconds for
        it; ``True`` if every de-registration finished in time."""
        self._publish(self.pool.stop(self.now()))
        self.start()  # the loop sends the de-registrations
        self._wake.set()
        try:
            async with asyncio.timeout(grace):
                await self._idle.wait()
            done = True
        except TimeoutError:
            done = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        return done

    # ---------------------------------------------------------------- loop

    def pump(self) -> float | None:
        """Send what the pool allows now; returns the pool's next timer."""
        now = self.now()
        for registration, request in self.pool.requests_to_send(now):
            call_id = registration.call_id
            try:
                pending = self.endpoint.send_request(request, self.registrar)
            except (OSError, ValueError, RuntimeError) as exc:
                log.warning("REGISTER for %s not sent: %s", registration.aor, exc)
                self._publish(self.pool.request_failed(call_id, now, f"not sent: {exc}"))
                continue
            pending.final.add_done_callback(functools.partial(self._on_final, call_id))
        return self.pool.get_timer(now)

    def _on_final(self, call_id: str, future: asyncio.Future[SipResponse]) -> None:
        now = self.now()
        if future.cancelled():
            events = self.pool.request_failed(call_id, now, "cancelled")
        elif (error := future.exception()) is not None:
            reason = "timeout" if isinstance(error, TimeoutError) else f"transport error: {error}"
            events = self.pool.request_failed(call_id, now, reason)
        else:
            events = self.pool.receive_response(future.result(), now)
        self._publish(events)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            timer = self.pump()
            delay = None if timer is None else max(0.0, timer - self.now())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def _publish(self, events: list[RegistrationChanged]) -> None:
        if self.pool.idle:
            self._idle.set()
        for event in events:
            log.info(
                "registration %s: %s -> %s (%s)",
                event.aor,
                event.previous.value,
                event.state.value,
                event.reason,
            )
            if self._on_change is not None:
                try:
                    self._on_change(event)
                except Exception:  # a failing listener must not stop the registrations
                    log.exception("registration listener failed")
