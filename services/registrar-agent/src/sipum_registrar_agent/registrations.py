"""Every user's voicemail contact at the domain's registrar: which users this agent owns, their
bindings and digest credentials.

Each domain may have its own registrar (setting ``registrar``, docs/administration.md):
``registrar_of(domain)`` says where a domain's REGISTERs go (None: the agent's ``registrar``).
When it changes, :meth:`UserRegistrations.move` de-registers the binding at the old registrar
and, once that is done (``unregistered``), registers it at the new one.

The REGISTER state machines, the in-flight window and the rate limit are the shared library's
(``sipum_protocol.sip.registration``); this module only maps users to bindings. The REGISTERs
go out through the agent's user agent, which writes their Via (sent-by: the socket's advertised
address, numeric under ``-n``) like for any request it sends.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable

from sipum.db.users import User
from sipum_protocol.sip.registration import (
    DigestCredentials,
    RegistrationBinding,
    RegistrationClient,
    RegistrationState,
)
from sipum_protocol.sip.transaction import Peer

log = logging.getLogger("sipum.misc.registrations")

AGENT_USER_AGENT = "sipum-registrar-agent"
"""``User-Agent`` of our REGISTERs: Kamailio keeps it with the binding and sends a user's
``message-summary`` SUBSCRIBEs to the contact registered with it (deploy/kamailio)."""


def shard_of(username: str, domain: str, shard_count: int) -> int:
    """Which agent owns ``username@domain`` when ``shard_count`` agents split the users.

    CRC-32 is stable across processes and Python versions (``hash()`` is salted per process),
    so every agent computes the same owner without talking to the others.
    """
    return zlib.crc32(f"{username.lower()}@{domain.lower()}".encode()) % shard_count


def credentials_for(user: User) -> DigestCredentials:
    """The stored HA1 values (RFC 2617 §3.2.2.2; SHA-256 per RFC 8760): no password needed."""
    ha1 = {
        name: value for name, value in (("MD5", user.ha1), ("SHA-256", user.ha1_sha256)) if value
    }
    return DigestCredentials(username=user.username, ha1=ha1, realm=user.realm)


class UserRegistrations:
    """The users this agent registers (its shard, and the shards it took over from silent
    agents: ``shards``) and their bindings in the client's pool."""

    def __init__(
        self,
        client: RegistrationClient,
        *,
        contact_host: str,
        contact_port: int,
        expires: int,
        shard_index: int = 0,
        shard_count: int = 1,
        registrar_of: Callable[[str], Peer | None] = lambda domain: None,
    ) -> None:
        self.client = client
        self.registrar_of = registrar_of
        """The domain's registrar (None: the client's); raises ``LookupError`` while the
        domain's registrar is not known (a name that does not resolve)."""
        self._after_deregistration: dict[str, User] = {}
        """Bindings to register again once their de-registration is done (a move to another
        registrar, or a user back while its old binding was still being removed)."""
        self.stopping = False
        self.contact_host = contact_host
        self.contact_port = contact_port
        self.expires = expires
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.shards: set[int] = {shard_index}
        """Our shard and those taken over (``take`` / ``release``)."""

    def owns(self, username: str, domain: str) -> bool:
        return shard_of(username, domain, self.shard_count) in self.shards

    def take(self, shard: int, everyone: list[User]) -> int:
        """Register the (enabled) users of another agent's ``shard`` too; how many added
        (none while we stop: every binding is being de-registered)."""
        if self.stopping:
            return 0
        self.shards.add(shard)
        return sum(
            self.add(user)
            for user in everyone
            if not user.disabled and shard_of(user.username, user.domain, self.shard_count) == shard
        )

    def release(self, shard: int, *, deregister: bool) -> int:
        """Give ``shard`` back: ``Expires: 0`` for our contact of each of its users, or (the
        returning agent registered the very same contact) just stop refreshing."""
        if shard == self.shard_index:
            raise ValueError("our own shard is not released")
        self.shards.discard(shard)
        released = 0
        for registration in self.client.pool:
            binding = registration.binding
            if shard_of(binding.user, binding.domain, self.shard_count) != shard:
                continue
            self._after_deregistration.pop(registration.aor, None)
            if not deregister:
                self.client.forget(registration.aor)
            elif not registration.stopping:
                self.client.remove(registration.aor)
            released += 1
        return released

    def settled(self) -> bool:
        """Every binding of our own shard has had an answer (registered, or failed and
        waiting to retry): our contact is at the registrar as far as it will be."""
        done = (RegistrationState.REGISTERED, RegistrationState.FAILED)
        return all(
            r.state in done or r.stopping
            for r in self.client.pool
            if shard_of(r.binding.user, r.binding.domain, self.shard_count) == self.shard_index
        )

    def binding_for(self, user: User) -> RegistrationBinding:
        """``LookupError`` if the domain's registrar is not known."""
        return RegistrationBinding(
            user=user.username,
            domain=user.domain,
            contact_host=self.contact_host,
            contact_port=self.contact_port,
            credentials=credentials_for(user),
            expires=self.expires,
            user_agent=AGENT_USER_AGENT,
            registrar=self.registrar_of(user.domain),
        )

    def registrar_in_use(self, username: str, domain: str) -> Peer | None:
        """Where the user's binding is registered now (None: not in the pool)."""
        registration = self.client.pool.get(self.aor(username, domain))
        if registration is None:
            return None
        return registration.binding.registrar or self.client.registrar

    @staticmethod
    def aor(username: str, domain: str) -> str:
        return f"sip:{username}@{domain}"

    def is_registering(self, username: str, domain: str) -> bool:
        registration = self.client.pool.get(self.aor(username, domain))
        return registration is not None and not registration.stopping

    def add(self, user: User) -> bool:
        """Start registering ``user`` if it is ours and not registered yet (idempotent: events
        are delivered at least once)."""
        if not self.owns(user.username, user.domain):
            return False
        if self.is_registering(user.username, user.domain):
            return False
        try:
            binding = self.binding_for(user)
        except LookupError as exc:
            log.error("%s not registered: %s", user.address, exc)
            return False
        if self.client.pool.get(binding.aor) is not None:
            # Its old binding is still being de-registered: register once that is done.
            self._after_deregistration[binding.aor] = user
            return True
        self._after_deregistration.pop(binding.aor, None)
        self.client.add(binding)
        return True

    def remove(self, username: str, domain: str) -> bool:
        """De-register (``Expires: 0``) a deleted user."""
        self._after_deregistration.pop(self.aor(username, domain), None)
        if not self.is_registering(username, domain):
            return False
        self.client.remove(self.aor(username, domain))
        return True

    def move(self, user: User) -> bool:
        """The domain's registrar changed: de-register at the old one, then register at the
        new one. ``False`` if nothing to do (not ours, or already registered there)."""
        if not self.owns(user.username, user.domain):
            return False
        try:
            wanted = self.registrar_of(user.domain) or self.client.registrar
        except LookupError as exc:
            # Unknown new registrar: stay where we are (the old binding keeps working) rather
            # than leave the user without a voicemail contact.
            log.error("%s stays at its registrar: %s", user.address, exc)
            return False
        aor = self.aor(user.username, user.domain)
        if not self.is_registering(user.username, user.domain):
            return self.add(user)
        if self.registrar_in_use(user.username, user.domain) == wanted:
            return False
        self._after_deregistration[aor] = user
        self.client.remove(aor)
        return True

    def sweep(self) -> None:
        """Register again the moved bindings whose de-registration is done (the client calls
        this after every REGISTER outcome and removal)."""
        if self.stopping:
            self._after_deregistration.clear()
            return
        for aor, user in list(self._after_deregistration.items()):
            if self.client.pool.get(aor) is not None:
                continue  # still de-registering
            del self._after_deregistration[aor]
            try:
                self.client.add(self.binding_for(user))
            except (LookupError, ValueError) as exc:
                log.error("%s not registered again: %s", user.address, exc)

    def update(self, user: User) -> bool:
        """Credentials may have changed (password): re-register with the new HA1."""
        if not self.is_registering(user.username, user.domain):
            return self.add(user)
        return self.client.update_credentials(
            self.aor(user.username, user.domain), credentials_for(user)
        )
