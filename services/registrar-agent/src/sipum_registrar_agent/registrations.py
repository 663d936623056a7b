"""Every user's voicemail contact at the domain's registrar: which users this agent owns, their
bindings and digest credentials.

The REGISTER state machines, the in-flight window and the rate limit are the shared library's
(``sipum_protocol.sip.registration``); this module only maps users to bindings. The REGISTERs
go out through the agent's user agent, which writes their Via (sent-by: the socket's advertised
address, numeric under ``-n``) like for any request it sends.
"""

from __future__ import annotations

import logging
import zlib

from sipum.db.users import User
from sipum_protocol.sip.registration import (
    DigestCredentials,
    RegistrationBinding,
    RegistrationClient,
)

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
    """The users this agent registers (its shard) and their bindings in the client's pool."""

    def __init__(
        self,
        client: RegistrationClient,
        *,
        contact_host: str,
        contact_port: int,
        expires: int,
        shard_index: int = 0,
        shard_count: int = 1,
    ) -> None:
        self.client = client
        self.contact_host = contact_host
        self.contact_port = contact_port
        self.expires = expires
        self.shard_index = shard_index
        self.shard_count = shard_count

    def owns(self, username: str, domain: str) -> bool:
        return shard_of(username, domain, self.shard_count) == self.shard_index

    def binding_for(self, user: User) -> RegistrationBinding:
        return RegistrationBinding(
            user=user.username,
            domain=user.domain,
            contact_host=self.contact_host,
            contact_port=self.contact_port,
            credentials=credentials_for(user),
            expires=self.expires,
            user_agent=AGENT_USER_AGENT,
        )

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
            self.client.add(self.binding_for(user))
        except ValueError:
            # Still de-registering after a delete; the next user.created/updated brings it back.
            log.warning("%s is being de-registered; not added again yet", user.address)
            return False
        return True

    def remove(self, username: str, domain: str) -> bool:
        """De-register (``Expires: 0``) a deleted user."""
        if not self.is_registering(username, domain):
            return False
        self.client.remove(self.aor(username, domain))
        return True

    def update(self, user: User) -> bool:
        """Credentials may have changed (password): re-register with the new HA1."""
        if not self.is_registering(user.username, user.domain):
            return self.add(user)
        return self.client.update_credentials(
            self.aor(user.username, user.domain), credentials_for(user)
        )
