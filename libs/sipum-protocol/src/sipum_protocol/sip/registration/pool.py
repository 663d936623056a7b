"""Many registrations behind one window of REGISTERs in flight and a rate limit, sans-I/O.

:class:`RegistrationPool` decides who may send: at most ``max_in_flight`` REGISTER transactions
at once (a window like a semaphore) and at most ``max_rate`` new ones per second (a token
bucket, burst = window), from one heap of due times — so 10,000 users never become a
10,000-packet burst, neither at start nor when refreshes happen to line up.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from sipum_protocol.sip.message import SipParseError, SipRequest, SipResponse
from sipum_protocol.sip.registration.binding import DigestCredentials, RegistrationBinding
from sipum_protocol.sip.registration.policy import RegistrationPolicy
from sipum_protocol.sip.registration.state_machine import (
    Registration,
    RegistrationChanged,
    RegistrationState,
)

__all__ = ["PoolStats", "RegistrationPool"]


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

    def forget(self, aor: str) -> bool:
        """Drop a binding without de-registering it: no more refreshes, no ``Expires: 0``
        (someone else now refreshes the same contact); a response still in flight is ignored."""
        registration = self._by_aor.pop(aor, None)
        if registration is None:
            return False
        self._by_call_id.pop(registration.call_id, None)
        self._in_flight.discard(registration.call_id)
        return True

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

    def get_timer(self) -> float | None:
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
