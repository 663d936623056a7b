"""HTTP Digest authentication for SIP (RFC 3261 §22.4, RFC 2617, RFC 7616, RFC 8760).

The client side never needs the plaintext password: the registrar agent stores
``HA1 = H(username ":" realm ":" password)`` per user and algorithm (``compute_ha1`` makes it
once, when the password is set), and every ``Authorization`` / ``Proxy-Authorization`` is
computed from it:

* ``-sess`` algorithms:  ``HA1' = H(HA1 ":" nonce ":" cnonce)`` (RFC 7616 §3.4.2)
* ``HA2 = H(method ":" digest-uri)``, or ``H(method ":" uri ":" H(body))`` for ``auth-int``
* ``qop=auth``:  ``response = H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)``
* no qop (RFC 2069 compatibility): ``response = H(HA1 ":" nonce ":" HA2)``

``nc`` is the count of requests sent with this nonce, written as 8 hex digits; the caller keeps
it per nonce and starts again at 1 when a new nonce (``stale=true``) arrives.

Supported algorithms: MD5, MD5-sess, SHA-256, SHA-256-sess, SHA-512-256(-sess) (RFC 7616).
Not implemented: ``userhash`` (RFC 7616 §3.4.4), ``auth-int`` on the server side only
verifies what the client hashed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from sipum_protocol.sip.headers import SipParseError

__all__ = [
    "ALGORITHMS",
    "Challenge",
    "Credentials",
    "DigestError",
    "SignedNonces",
    "authorization_from_ha1",
    "compute_ha1",
    "compute_response",
    "make_challenge",
    "new_cnonce",
    "new_nonce",
    "parse_authorization",
    "parse_challenge",
    "select_challenge",
    "verify",
    "verify_authorization",
]


class DigestError(SipParseError):
    """A challenge or credentials header that cannot be understood or used."""


def _sha512_256(data: bytes) -> str:
    return hashlib.new("sha512_256", data).hexdigest()


_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda b: hashlib.md5(b, usedforsecurity=False).hexdigest(),
    "SHA-256": lambda b: hashlib.sha256(b).hexdigest(),
    "SHA-512-256": _sha512_256,
}

# Canonical algorithm names, strongest first (the order a client prefers when offered several).
ALGORITHMS = (
    "SHA-512-256",
    "SHA-512-256-sess",
    "SHA-256",
    "SHA-256-sess",
    "MD5",
    "MD5-sess",
)
_CANONICAL_ALGORITHM = {a.upper(): a for a in ALGORITHMS}


def _algorithm(name: str | None) -> str:
    """Canonical algorithm name; absent means MD5 (RFC 2617 §3.2.1)."""
    if name is None:
        return "MD5"
    canon = _CANONICAL_ALGORITHM.get(name.strip().upper())
    if canon is None:
        raise DigestError(f"Unsupported digest algorithm {name}")
    return canon


def _hash_for(algorithm: str) -> Callable[[bytes], str]:
    base = algorithm[:-5] if algorithm.endswith("-sess") else algorithm
    return _HASHES[base]


def _h(algorithm: str, text: str) -> str:
    return _hash_for(algorithm)(text.encode("utf-8"))


def compute_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """``H(username:realm:password)`` in lower-case hex — what is stored instead of a password.

    For ``-sess`` algorithms this is the same value as for the base algorithm; the session key
    is derived per nonce at request time.
    """
    return _h(_algorithm(algorithm), f"{username}:{realm}:{password}")


def new_cnonce() -> str:
    return secrets.token_hex(8)


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


class SignedNonces:
    """Stateless server nonces: ``<issue time>.<random>.<HMAC(secret, purpose, both)>``.

    RFC 7616 §3.3 leaves a nonce's content to the server; signing the issue time means no
    challenge costs memory, every replica that shares the secret accepts another's nonces,
    and a nonce's age tells a stale one (answer again with ``stale=true``) from a forged one.
    *purpose* keeps nonces of one service from being accepted by another with the same key.
    """

    def __init__(self, secret: bytes, purpose: str) -> None:
        self._key = hmac.new(secret, purpose.encode(), hashlib.sha256).digest()

    def _mac(self, head: str) -> str:
        return hmac.new(self._key, head.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, now: float) -> str:
        head = f"{int(now)}.{secrets.token_hex(8)}"
        return f"{head}.{self._mac(head)}"

    def age(self, nonce: str, now: float) -> float | None:
        """Seconds since *nonce* was issued; ``None`` if it is not one of ours."""
        head, _, mac = nonce.rpartition(".")
        issued, _, _ = head.partition(".")
        if not issued.isdigit() or not hmac.compare_digest(mac, self._mac(head)):
            return None
        return now - int(issued)


# --- header parameter syntax (RFC 7235 §2.1 / RFC 3261 §25.1) -----------------------------


def _parse_auth_params(text: str) -> dict[str, str]:
    """``name=token`` / ``name="quoted"`` pairs separated by commas; names lower-cased."""
    params: dict[str, str] = {}
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        eq = text.find("=", i)
        if eq < 0:
            raise DigestError("Bad auth parameter")
        name = text[i:eq].strip().lower()
        if not name or any(c in name for c in ' \t,"'):
            raise DigestError("Bad auth parameter name")
        i = eq + 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            i += 1
            out = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                out.append(text[i])
                i += 1
            if i >= n:
                raise DigestError("Unterminated quoted string in auth parameter")
            i += 1
            value = "".join(out)
        else:
            end = text.find(",", i)
            if end < 0:
                end = n
            value = text[i:end].strip()
            i = end
        params[name] = value
    return params


def _split_scheme(header: str) -> tuple[str, str]:
    text = header.strip()
    scheme, _, rest = text.partition(" ")
    if not scheme:
        raise DigestError("Empty authentication header")
    return scheme, rest


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- client side -------------------------------------------------------------------------


@dataclass
class Challenge:
    """A parsed ``WWW-Authenticate`` or ``Proxy-Authenticate`` (RFC 7616 §3.3)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: list[str] = field(default_factory=list)
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    scheme: str = "Digest"
    params: dict[str, str] = field(default_factory=dict)
    """Every parameter as received (names lower-cased), including unknown ones."""

    def __str__(self) -> str:
        return make_challenge(
            self.realm,
            self.nonce,
            algorithm=self.algorithm,
            qop=self.qop,
            opaque=self.opaque,
            stale=self.stale,
            domain=self.domain,
        )


def parse_challenge(header_value: str) -> Challenge:
    """Parse a Digest challenge; raises DigestError (a SipParseError) for anything else."""
    scheme, rest = _split_scheme(header_value)
    if scheme.lower() != "digest":
        raise DigestError(f"Unsupported authentication scheme {scheme}")
    params = _parse_auth_params(rest)
    if "realm" not in params or "nonce" not in params:
        raise DigestError("Digest challenge without realm or nonce")
    qop = [q.strip().lower() for q in params.get("qop", "").split(",") if q.strip()]
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=_algorithm(params.get("algorithm")),
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
        domain=params.get("domain"),
        scheme="Digest",
        params=params,
    )


def select_challenge(header_values: Iterable[str], algorithms: Iterable[str]) -> Challenge | None:
    """Pick the challenge to answer among several (RFC 8760 §2.4: one per algorithm).

    ``algorithms`` are those we hold an HA1 for. The strongest usable algorithm wins;
    unparseable or unsupported challenges are skipped. ``None`` if nothing is usable.
    """
    have = set()
    for a in algorithms:
        try:
            have.add(_algorithm(a))
        except DigestError:
            continue
    best: Challenge | None = None
    for value in header_values:
        try:
            ch = parse_challenge(value)
        except DigestError:
            continue
        if _base(ch.algorithm) not in {_base(a) for a in have}:
            continue
        if best is None or ALGORITHMS.index(ch.algorithm) < ALGORITHMS.index(best.algorithm):
            best = ch
    return best


def _base(algorithm: str) -> str:
    return algorithm[:-5] if algorithm.endswith("-sess") else algorithm


def compute_response(
    *,
    algorithm: str,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value (RFC 7616 §3.4.1–3.4.3) from a stored HA1."""
    algorithm = _algorithm(algorithm)
    if algorithm.endswith("-sess"):
        if cnonce is None:
            raise DigestError("-sess algorithm needs a cnonce")
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = _h(algorithm, f"{method}:{uri}:{_hash_for(algorithm)(body)}")
    else:
        ha2 = _h(algorithm, f"{method}:{uri}")
    if qop:
        if nc is None or cnonce is None:
            raise DigestError("qop needs nc and cnonce")
        return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{ha2}")


def authorization_from_ha1(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    ha1: str | Mapping[str, str],
    cnonce: str | None = None,
    nc: int = 1,
    body: bytes = b"",
) -> str:
    """The value of ``Authorization`` (401) or ``Proxy-Authorization`` (407).

    ``ha1`` is the stored HA1 for the challenge's algorithm family, or a mapping from algorithm
    name ("MD5", "SHA-256", ...) to HA1. ``uri`` is the Request-URI as sent (§22.4: the
    digest-uri is the Request-URI). ``nc`` counts requests with this nonce, from 1. qop=auth is
    used when offered (auth-int only if it is the only one offered).
    """
    algorithm = challenge.algorithm
    if isinstance(ha1, Mapping):
        key = next(
            (v for k, v in ha1.items() if _base(_algorithm(k)) == _base(algorithm)),
            None,
        )
        if key is None:
            raise DigestError(f"No HA1 stored for {algorithm}")
        ha1_value = key
    else:
        ha1_value = ha1
    qop: str | None = None
    if challenge.qop:
        if "auth" in challenge.qop:
            qop = "auth"
        elif "auth-int" in challenge.qop:
            qop = "auth-int"
        else:
            raise DigestError("No supported qop offered")
    needs_cnonce = qop is not None or algorithm.endswith("-sess")
    if needs_cnonce and cnonce is None:
        cnonce = new_cnonce()
    if not 0 < nc < 2**32:
        raise DigestError("nc out of range")
    nc_text = f"{nc:08x}" if qop else None
    response = compute_response(
        algorithm=algorithm,
        ha1=ha1_value,
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce if needs_cnonce else None,
        body=body,
    )
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
        f"algorithm={algorithm}",
    ]
    if needs_cnonce:
        assert cnonce is not None
        parts.append(f"cnonce={_quote(cnonce)}")
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if qop:
        parts.append(f"qop={qop}")
        parts.append(f"nc={nc_text}")
    return "Digest " + ", ".join(parts)


# --- server side (tests, and a future registrar) -------------------------------------------


def make_challenge(
    realm: str,
    nonce: str,
    *,
    algorithm: str = "MD5",
    qop: Iterable[str] = ("auth",),
    opaque: str | None = None,
    stale: bool = False,
    domain: str | None = None,
) -> str:
    """A ``WWW-Authenticate`` / ``Proxy-Authenticate`` value."""
    parts = [f"realm={_quote(realm)}"]
    if domain is not None:
        parts.append(f"domain={_quote(domain)}")
    parts.append(f"nonce={_quote(nonce)}")
    if opaque is not None:
        parts.append(f"opaque={_quote(opaque)}")
    if stale:
        parts.append("stale=true")
    parts.append(f"algorithm={_algorithm(algorithm)}")
    qops = list(qop)
    if qops:
        parts.append(f"qop={_quote(','.join(qops))}")
    return "Digest " + ", ".join(parts)


@dataclass
class Credentials:
    """A parsed ``Authorization`` / ``Proxy-Authorization`` Digest value."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: str | None = None
    params: dict[str, str] = field(default_factory=dict)


def parse_authorization(header_value: str) -> Credentials:
    scheme, rest = _split_scheme(header_value)
    if scheme.lower() != "digest":
        raise DigestError(f"Unsupported authentication scheme {scheme}")
    p = _parse_auth_params(rest)
    try:
        return Credentials(
            username=p["username"],
            realm=p["realm"],
            nonce=p["nonce"],
            uri=p["uri"],
            response=p["response"].lower(),
            algorithm=_algorithm(p.get("algorithm")),
            cnonce=p.get("cnonce"),
            opaque=p.get("opaque"),
            qop=p["qop"].lower() if "qop" in p else None,
            nc=p.get("nc"),
            params=p,
        )
    except KeyError as exc:
        raise DigestError(f"Digest credentials without {exc.args[0]}") from None


def verify_authorization(
    header_value: str,
    method: str,
    ha1: str,
    *,
    realm: str | None = None,
    nonce: str | None = None,
    body: bytes = b"",
) -> bool:
    """Check a client's Digest response against the stored HA1 (constant-time compare).

    ``realm`` / ``nonce``, when given, must match what the client echoed. Malformed headers
    verify as False.
    """
    try:
        cred = parse_authorization(header_value)
    except DigestError:
        return False
    if realm is not None and cred.realm != realm:
        return False
    if nonce is not None and cred.nonce != nonce:
        return False
    if cred.qop is not None and (
        cred.qop not in ("auth", "auth-int") or cred.nc is None or cred.cnonce is None
    ):
        return False
    if cred.nc is not None and (len(cred.nc) != 8 or not _is_hex(cred.nc)):
        return False
    try:
        expected = compute_response(
            algorithm=cred.algorithm,
            ha1=ha1,
            nonce=cred.nonce,
            method=method,
            uri=cred.uri,
            qop=cred.qop,
            nc=cred.nc,
            cnonce=cred.cnonce,
            body=body,
        )
    except DigestError:
        return False
    return hmac.compare_digest(expected, cred.response)


verify = verify_authorization  # name in the agreed API sketch


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)
