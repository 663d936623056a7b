"""The asyncio runner of a :class:`~sipum_protocol.sip.registration.pool.RegistrationPool`:
REGISTERs out through a SIP endpoint, outcomes and ``loop.time()`` back in."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Protocol

from sipum_protocol.sip.message import SipRequest, SipResponse
from sipum_protocol.sip.registration.binding import DigestCredentials, RegistrationBinding
from sipum_protocol.sip.registration.pool import RegistrationPool
from sipum_protocol.sip.registration.state_machine import Registration, RegistrationChanged
from sipum_protocol.sip.transaction import Peer

log = logging.getLogger("sipum_protocol.sip.registration")

__all__ = ["PendingRequest", "RegistrationClient", "RequestSender"]


class PendingRequest(Protocol):
    """What an endpoint's ``send_request`` returns (``ClientRequest``): ``final`` resolves to the
    final response, or raises ``TimeoutError`` (timer F) / ``ConnectionError`` (transport
    failure)."""

    @property
    def final(self) -> asyncio.Future[SipResponse]: ...


class RequestSender(Protocol):
    """The part of a SIP endpoint the client uses (``UserAgentEndpoint``, ``TransactionEndpoint``):
    it adds our Via to the REGISTER and runs it in a client transaction."""

    def send_request(self, request: SipRequest, peer: Peer) -> PendingRequest: ...


class RegistrationClient:
    """Thin asyncio driver of a :class:`RegistrationPool` on a SIP endpoint.

    ``endpoint`` is the service's SIP endpoint (its user agent's, so the contact we register is
    where INVITEs arrive): each REGISTER the pool lets out becomes a non-INVITE
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
        on_outcome: Callable[[], object] | None = None,
    ) -> None:
        self.pool = pool
        self.on_outcome = on_outcome
        """Called after each REGISTER outcome and each removal (published or not: a binding
        that was never granted leaves the pool silently), e.g. to re-add a moved binding."""
        self.registrar = registrar
        self.endpoint = endpoint
        self._on_change = on_change
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def now() -> float:
        # The clock of the endpoint's cores (its adapter passes loop.time() to them too).
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
        self._outcome()

    def forget(self, aor: str) -> bool:
        """Stop refreshing a binding without de-registering it (see ``RegistrationPool.forget``)."""
        found = self.pool.forget(aor)
        if self.pool.idle:
            self._idle.set()
        self._wake.set()
        self._outcome()
        return found

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
                peer = registration.binding.registrar or self.registrar
                pending = self.endpoint.send_request(request, peer)
            except (OSError, ValueError, RuntimeError) as exc:
                log.warning("REGISTER for %s not sent: %s", registration.aor, exc)
                self._publish(self.pool.request_failed(call_id, now, f"not sent: {exc}"))
                continue
            pending.final.add_done_callback(functools.partial(self._on_final, call_id))
        return self.pool.get_timer()

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
        self._outcome()

    def _outcome(self) -> None:
        if self.on_outcome is not None:
            try:
                self.on_outcome()
            except Exception:  # a failing listener must not stop the registrations
                log.exception("registration outcome listener failed")

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
