"""What one registration binds (RFC 3261 §10.2) and how a registrar's 200 says what it bound.

``RegistrationBinding`` is the address-of-record ``sip:<user>@<domain>`` and our contact for it;
``DigestCredentials`` the stored HA1 values that answer the registrar's challenges (RFC 2617
§3.2.2.2, RFC 8760 for SHA-256: no plaintext password). :func:`granted_expires` reads the
interval the registrar granted our contact out of its 200 (§10.2.4, §10.3 step 8).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sipum_protocol.sip.message import (
    SipParseError,
    SipResponse,
    SipUri,
    parse_name_addr,
    parse_uri,
)
from sipum_protocol.sip.transaction import Peer

__all__ = ["DigestCredentials", "RegistrationBinding", "granted_expires", "header_int"]


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
    registrar: Peer | None = None
    """Where the REGISTERs go; None: the client's registrar (one registrar for every
    binding). Each domain may have its own (the registrar-agent's ``registrar`` setting)."""

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


def granted_expires(response: SipResponse, contact_uri: str, asked: int) -> int | None:
    """Seconds the registrar granted ``contact_uri``: its Contact's ``expires`` parameter, else
    the Expires header, else ``asked`` (§10.2.4). ``None`` when the 200 does not list our
    contact: §10.3 step 8 makes the registrar enumerate every current binding, so a missing
    one was not bound."""
    ours = parse_uri(contact_uri)
    for value in response.headers.get_all("Contact"):
        try:
            contact = parse_name_addr(value)
        except SipParseError:
            continue
        if not _same_contact(contact.uri, ours):
            continue
        expires = header_int(contact.params.get("expires"))
        if expires is None:
            expires = header_int(response.headers.get("Expires"))
        return asked if expires is None else expires
    return None


def _same_contact(a: SipUri, b: SipUri) -> bool:
    """Contact match for §10.2.4: scheme, user, host and port (§19.1.4, simplified)."""
    return (
        a.scheme.lower() == b.scheme.lower()
        and (a.user or "") == (b.user or "")
        and a.host.lower() == b.host.lower()
        and (a.port or 5060) == (b.port or 5060)
    )


def header_int(value: str | None) -> int | None:
    """A delta-seconds header or parameter value (``Expires``, ``Min-Expires``,
    ``Retry-After``, §25.1); ``None`` when absent or not a number."""
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None
