"""Who may play a message: the signed token from the e-mail, or Digest with the owner's
credentials (RFC 2617 as RTSP uses it, RFC 2326 §D).

Only the mailbox owner ever gets audio. Until a request is authenticated the answer is 401
whatever the URL names — a stranger cannot tell which mailboxes or messages exist. An
authenticated owner asking for a message that is not in that folder gets 404; someone
authenticated as another user gets 403.

Digest nonces are stateless (``sipum_protocol.sip.digest.SignedNonces``), valid for five minutes, so
any gateway replica accepts a nonce another one issued.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sipum.db import messages, users
from sipum.security.tokens import InvalidToken, play_link_claims
from sipum_protocol.rtsp.message import RtspRequest
from sipum_protocol.rtsp.server import Denial
from sipum_protocol.rtsp.urls import MessageUrl
from sipum_protocol.sip import digest

NONCE_LIFETIME = 300.0


@dataclass(frozen=True)
class Granted:
    user: users.User
    message: messages.Message


class MessageAccess:
    def __init__(self, pool: object, *, secret_key: str, default_domain: str) -> None:
        self.pool = pool
        self.secret = secret_key.encode()
        self.default_domain = default_domain
        self._nonces = digest.SignedNonces(self.secret, "rtsp-nonce")

    # -- nonces ----------------------------------------------------------------------------

    def new_nonce(self, now: float | None = None) -> str:
        return self._nonces.issue(time.time() if now is None else now)

    def nonce_valid(self, nonce: str, now: float | None = None) -> bool:
        age = self._nonces.age(nonce, time.time() if now is None else now)
        return age is not None and 0 <= age <= NONCE_LIFETIME

    def challenge(self, realm: str) -> Denial:
        return Denial(401, digest.make_challenge(realm, self.new_nonce(), algorithm="MD5", qop=()))

    # -- decisions ---------------------------------------------------------------------------

    async def check(
        self, target: MessageUrl, request: RtspRequest, *, granted: bool
    ) -> Granted | Denial:
        domain = target.domain or self.default_domain
        user = await users.get_by_address(self.pool, target.username, domain)
        realm = user.realm if user is not None else domain
        if not granted:
            verdict = self._authenticate(target, request, user, realm)
            if verdict is not None:
                return verdict
        assert user is not None  # authentication implies the user exists
        if user.disabled:  # an administrator disabled the mailbox (its links too)
            return Denial(403)
        message = await messages.get_for_user(self.pool, user.id, target.message_id)
        if message is None or message.folder != target.folder:
            return Denial(404)
        return Granted(user, message)

    def _authenticate(
        self, target: MessageUrl, request: RtspRequest, user: users.User | None, realm: str
    ) -> Denial | None:
        """None when the owner is authenticated; otherwise the denial to answer with."""
        if target.token is not None:
            try:
                uid, mid = play_link_claims(self.secret, target.token)
            except InvalidToken:
                return self.challenge(realm)
            if user is not None and uid == user.id and mid == target.message_id:
                return None
            return Denial(403)
        header = request.headers.get("Authorization")
        if header is None or user is None:
            return self.challenge(realm)
        try:
            credentials = digest.parse_authorization(header)
        except digest.DigestError:
            return Denial(400)
        if not self.nonce_valid(credentials.nonce) or credentials.realm != user.realm:
            return self.challenge(realm)
        # HA1 is keyed by the user name the client sent: "alice" (ha1) or "alice@domain" (ha1b).
        name = credentials.username.lower()
        if name == user.username:
            ha1 = user.ha1
        elif name == f"{user.username}@{user.domain}":
            ha1 = user.ha1b
        else:
            return Denial(403)
        if not digest.verify_authorization(header, request.method, ha1, realm=user.realm):
            return self.challenge(realm)
        return None
