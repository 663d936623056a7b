"""Which mailbox an INVITE is for, and how the call reached us — pure, no I/O.

Theory of operation
-------------------
An INVITE can name the mailbox in several places; :class:`MailboxResolver` reads them all
into an ordered list of :class:`MailboxCandidate` and picks the first one that names a known
mailbox (the caller passes ``is_mailbox``; the service asks PostgreSQL). In order:

1. **RFC 4458 §3 ``target`` URI parameter** of the Request-URI
   (``sip:voicemail@vm;target=sip:alice%40example.com;cause=486``): an explicit statement to
   a voicemail server; ``cause`` (RFC 4458 §3.1 / RFC 7044 §9 codes: 404, 486, 408, 302, 487,
   480, 503) gives the diversion reason. → ``diverted``.
2. **Retrieval URI** ``sip:<user>-<message id>-retrieve@…`` (the link in the e-mail) →
   mode ``retrieve`` for that one message; **main menu URI** ``sip:<user>-retrieve@…`` →
   mode ``menu`` (the whole mailbox by phone).
3. **Request-URI user** (``sip:alice@<agent>``: Kamailio forked the call to the contact we
   registered, or someone dialled us). If a Diversion or History-Info entry names the same
   user, the user's own phone sent the call here (302 / deflection) → ``diverted``. Else, if
   ``To`` names the same user at a domain we serve and not our own address, the proxy forked
   the AOR to us alongside the user's phones → ``forked`` (we let it ring first). Otherwise
   the caller dialled our contact → ``direct``.
4. **History-Info** (RFC 7044 §4): the entry whose target URI carries ``cause`` (§9: the
   "diverted-to" entry) was retargeted *from* the entry before it, whose user is the mailbox;
   without ``cause``, the last entry with an escaped ``Reason`` header (§4.3.1, the entry that
   was retargeted away from). → ``diverted``.
5. **Diversion** (RFC 5806 §4): entries are added at the top, so the first one is the last
   party that diverted the call — its voicemail answers; ``reason`` (``no-answer``,
   ``user-busy``, …) is the cause. → ``diverted``.
6. **To** (the originally called party when a proxy routed without rewriting the
   Request-URI, e.g. ``INVITE sip:vm.example.com`` with ``To: <sip:alice@example.com>``) →
   ``forked`` when it is a domain we serve.

Nothing known → the service answers ``404 Not Found``.

A candidate from Diversion/History-Info only wins over the Request-URI user when that user is
not itself a mailbox: a call diverted from bob to alice's AOR and then forked to us is alice's
call (forked, with ring delay), not bob's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from sipum_protocol.sip.headers import SipParseError
from sipum_protocol.sip.message import SipRequest
from sipum_protocol.sip.uri import SipUri, parse_name_addr, parse_params, parse_uri

Reason = Literal["direct", "forked", "diverted"]
Mode = Literal["record", "retrieve", "menu", "access"]
Source = Literal[
    "target-param",
    "retrieve-uri",
    "menu-uri",
    "request-uri",
    "history-info",
    "diversion",
    "to",
    "access-uri",
]

_RETRIEVE = re.compile(r"^(?P<user>.+)-(?P<id>[0-9]{1,18})-retrieve$")
_MENU = re.compile(r"^(?P<user>.+)-retrieve$")

# RFC 5806 §4 "reason" values → the RFC 4458 §3.1 cause codes they correspond to, so that
# every diverted call reports one vocabulary.
DIVERSION_REASON_CAUSE = {
    "unknown": "404",
    "unavailable": "404",
    "user-busy": "486",
    "no-answer": "408",
    "unconditional": "302",
    "deflection": "487",
    "time-of-day": "302",
    "do-not-disturb": "480",
    "follow-me": "302",
    "out-of-service": "503",
    "away": "480",
}


@dataclass(frozen=True, slots=True)
class MailboxCandidate:
    username: str
    domain: str
    source: Source
    reason: Reason
    mode: Mode = "record"
    message_id: int | None = None
    diversion_cause: str | None = None

    @property
    def address(self) -> str:
        return f"{self.username}@{self.domain}"


@dataclass(frozen=True, slots=True)
class InviteAddressing:
    """The parts of an INVITE the resolver reads (kept apart so tests need no full message)."""

    request_uri: str
    to: str
    diversion: tuple[str, ...] = ()
    """``Diversion`` entries, top first (one per comma-separated element)."""
    history_info: tuple[str, ...] = ()
    """``History-Info`` entries in header order."""

    @classmethod
    def from_request(cls, request: SipRequest) -> InviteAddressing:
        return cls(
            request_uri=request.uri,
            to=request.headers.get("To") or "",
            diversion=tuple(request.headers.get_all("Diversion")),
            history_info=tuple(request.headers.get_all("History-Info")),
        )


class MailboxResolver:
    """See the module docstring.

    ``domains``: the SIP domains whose mailboxes we serve; ``default_domain``: the one a
    Request-URI at our own address (``sip:alice@10.0.0.5:5070``) means; ``local_hosts``: our
    own addresses (a To at one of them means the caller dialled us directly).
    """

    def __init__(
        self,
        *,
        default_domain: str,
        domains: Collection[str] = (),
        local_hosts: Collection[str] = (),
        access_user: str = "",
    ) -> None:
        self.default_domain = default_domain.lower()
        self.domains = {d.lower() for d in domains} | {self.default_domain}
        self.local_hosts = {h.lower() for h in local_hosts}
        self.access_user = access_user.lower()
        """User part of the voicemail access URI (``voicemail``); empty: none."""

    # ------------------------------------------------------------------ public

    def resolve(
        self, invite: InviteAddressing, is_mailbox: Callable[[str, str], bool]
    ) -> MailboxCandidate | None:
        """The first candidate naming a known mailbox, or ``None`` (→ 404)."""
        for candidate in self.candidates(invite):
            if is_mailbox(candidate.username, candidate.domain):
                return candidate
        return None

    def candidates(self, invite: InviteAddressing) -> list[MailboxCandidate]:
        """Every reading of the INVITE, most authoritative first (see the module docstring)."""
        out: list[MailboxCandidate] = []
        ruri = _uri_or_none(invite.request_uri)
        to_uri = _name_addr_uri(invite.to)
        diverted = self._history_info(invite.history_info) + self._diversion(invite.diversion)
        if ruri is not None:
            target = self._target_param(ruri)
            if target is not None:
                out.append(target)
            user = (ruri.user or "").lower()
            match = _RETRIEVE.match(user)
            if match is not None:
                out.append(
                    MailboxCandidate(
                        username=match["user"],
                        domain=self._domain_of(ruri),
                        source="retrieve-uri",
                        reason="direct",
                        mode="retrieve",
                        message_id=int(match["id"]),
                    )
                )
            elif user:
                menu = _MENU.match(user)
                if menu is not None:
                    # the main menu; a mailbox literally named "bob-retrieve" still gets its
                    # calls when there is no "bob" (the next candidate)
                    out.append(
                        MailboxCandidate(
                            username=menu["user"],
                            domain=self._domain_of(ruri),
                            source="menu-uri",
                            reason="direct",
                            mode="menu",
                        )
                    )
                out.append(self._request_uri_candidate(ruri, user, to_uri, diverted))
        out.extend(diverted)
        if to_uri is not None and to_uri.user and to_uri.host.lower() in self.domains:
            out.append(
                MailboxCandidate(
                    username=to_uri.user.lower(),
                    domain=to_uri.host.lower(),
                    source="to",
                    reason="forked",
                )
            )
        return out

    def access(self, invite: InviteAddressing) -> MailboxCandidate | None:
        """The voicemail access URI ``sip:<access_user>@<domain>`` (mode ``access``: the
        caller says which mailbox) — only for a call that names no mailbox in any other way
        (no RFC 4458 ``target``, History-Info or Diversion: a call diverted to the voicemail
        server for a mailbox that does not exist is not an access call). Asked only when no
        candidate is a mailbox: a user literally named so keeps its calls."""
        ruri = _uri_or_none(invite.request_uri)
        if not self.access_user or ruri is None or (ruri.user or "").lower() != self.access_user:
            return None
        if ruri.params.get("target") or invite.history_info or invite.diversion:
            return None
        return MailboxCandidate(
            username=self.access_user,
            domain=self._domain_of(ruri),
            source="access-uri",
            reason="direct",
            mode="access",
        )

    # ------------------------------------------------------------------ readers

    def _domain_of(self, uri: SipUri) -> str:
        host = uri.host.lower()
        return host if host in self.domains else self.default_domain

    def _request_uri_candidate(
        self,
        ruri: SipUri,
        user: str,
        to_uri: SipUri | None,
        diverted: list[MailboxCandidate],
    ) -> MailboxCandidate:
        domain = self._domain_of(ruri)
        for entry in diverted:
            if entry.username == user:
                return MailboxCandidate(
                    username=user,
                    domain=entry.domain if entry.domain in self.domains else domain,
                    source="request-uri",
                    reason="diverted",
                    diversion_cause=entry.diversion_cause,
                )
        reason: Reason = "direct"
        if (
            to_uri is not None
            and (to_uri.user or "").lower() == user
            and to_uri.host.lower() in self.domains
            and to_uri.host.lower() not in self.local_hosts
            and to_uri.host.lower() != ruri.host.lower()
        ):
            # §16.6 / RFC 3261 §10: the proxy replaced the AOR in the Request-URI by our
            # registered contact and kept the AOR in To: a forked call.
            reason = "forked"
            domain = to_uri.host.lower()
        return MailboxCandidate(username=user, domain=domain, source="request-uri", reason=reason)

    def _target_param(self, ruri: SipUri) -> MailboxCandidate | None:
        """RFC 4458 §3: ``target`` is the escaped URI the call was first meant for."""
        raw = ruri.params.get("target")
        if not raw:
            return None
        target = _uri_or_none(unquote(raw))
        if target is None or not target.user:
            return None
        cause = ruri.params.get("cause")
        return MailboxCandidate(
            username=target.user.lower(),
            domain=self._domain_of(target),
            source="target-param",
            reason="diverted",
            diversion_cause=cause if cause else None,
        )

    def _history_info(self, entries: tuple[str, ...]) -> list[MailboxCandidate]:
        """RFC 7044: the entry retargeted away from (see the module docstring, rule 4)."""
        parsed: list[tuple[SipUri, dict[str, str | None]]] = []
        for entry in entries:
            try:
                na = parse_name_addr(entry)
            except SipParseError:
                continue
            parsed.append((na.uri, na.params))
        # §9: the hi-entry whose URI carries "cause" is the diverted-to target; the mailbox is
        # the entry it was retargeted from — its parent by index, else the entry before it.
        for i in range(len(parsed) - 1, 0, -1):
            uri, params = parsed[i]
            cause = uri.params.get("cause")
            if not cause:
                continue
            parent = self._hi_parent(parsed, i, params.get("index"))
            if parent is not None and parent.user:
                return [self._diverted_from(parent, "history-info", cause)]
        # No cause parameter: the last entry carrying an escaped Reason (§4.3.1) is the one
        # that was retargeted; its Reason's cause (a SIP status) is the diversion cause.
        for uri, _params in reversed(parsed):
            reason = _header_param(uri, "Reason")
            if reason is not None and uri.user:
                cause = reason_cause(reason)
                return [self._diverted_from(uri, "history-info", cause)]
        return []

    @staticmethod
    def _hi_parent(
        parsed: list[tuple[SipUri, dict[str, str | None]]], i: int, index: str | None
    ) -> SipUri | None:
        if index and "." in index:
            parent_index = index.rsplit(".", 1)[0]
            for uri, params in parsed[:i]:
                if params.get("index") == parent_index:
                    return uri
        return parsed[i - 1][0]

    def _diversion(self, entries: tuple[str, ...]) -> list[MailboxCandidate]:
        """RFC 5806 §4: the first (top) entry is the most recent diversion."""
        for entry in entries:
            try:
                na = parse_name_addr(entry)
            except SipParseError:
                continue
            if not na.uri.user:
                continue
            reason = (na.params.get("reason") or "").strip('"').lower()
            cause = DIVERSION_REASON_CAUSE.get(reason, reason or None)
            return [self._diverted_from(na.uri, "diversion", cause)]
        return []

    def _diverted_from(self, uri: SipUri, source: Source, cause: str | None) -> MailboxCandidate:
        return MailboxCandidate(
            username=(uri.user or "").lower(),
            domain=self._domain_of(uri),
            source=source,
            reason="diverted",
            diversion_cause=cause,
        )


# ---------------------------------------------------------------------- helpers


def _uri_or_none(text: str) -> SipUri | None:
    try:
        uri = parse_uri(text)
    except SipParseError:
        return None
    return uri if uri.scheme in ("sip", "sips") else None


def _name_addr_uri(text: str) -> SipUri | None:
    if not text:
        return None
    try:
        uri = parse_name_addr(text).uri
    except SipParseError:
        return None
    return uri if uri.scheme in ("sip", "sips") else None


def _header_param(uri: SipUri, name: str) -> str | None:
    for key, value in uri.headers.items():
        if key.lower() == name.lower():
            return value
    return None


def reason_cause(reason: str) -> str | None:
    """``SIP;cause=302;text="Moved"`` → ``"302"`` (RFC 3326 §2)."""
    protocol, _, rest = reason.partition(";")
    if protocol.strip().upper() != "SIP":
        return None
    try:
        params = parse_params(rest)
    except SipParseError:
        return None
    return params.get("cause") or None
