"""One binding's REGISTER state machine (RFC 3261 §10.2), sans-I/O: ``now`` in, a request to
send and state changes out.

:class:`Registration` says *when* it wants to send (``due_at``) and builds the REGISTER when
asked; the caller hands it to a non-INVITE client transaction (which owns retransmission and
timer F, §17.1.2) and feeds back the final response or the transaction's failure. The full
behaviour (challenges, stale nonces, 423, backoff) is described in the package docstring.
"""

from __future__ import annotations

import dataclasses
import enum
import random
from collections.abc import Iterable
from dataclasses import dataclass

from sipum_protocol.sip import digest
from sipum_protocol.sip.message import (
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    new_call_id,
    new_tag,
)
from sipum_protocol.sip.registration.binding import (
    DigestCredentials,
    RegistrationBinding,
    granted_expires,
    header_int,
)
from sipum_protocol.sip.registration.policy import (
    RegistrationPolicy,
    backoff_delay,
    refresh_delay,
)

__all__ = ["PUBLISHED_STATES", "Registration", "RegistrationChanged", "RegistrationState"]


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
            retry_after = header_int((response.headers.get("Retry-After") or "").split(";")[0])
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
        granted = granted_expires(response, self.binding.contact_uri, self._sent_expires)
        if not granted:
            return self._fail(now, response.status, "registrar did not bind our contact", None)
        self.failures = 0
        self.granted_expires = granted
        self.expires_at = now + granted
        if self.stopping:
            return self._stop_now(now, response.status, "stopped")
        self.due_at = now + refresh_delay(granted, self.policy, self._rng)
        return self._set_state(RegistrationState.REGISTERED, now, response.status, "registered")

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
        minimum = header_int(response.headers.get("Min-Expires"))
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
