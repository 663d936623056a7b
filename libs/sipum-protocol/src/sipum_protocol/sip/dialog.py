"""Dialog state (RFC 3261 §12): pure data, no I/O, no clock.

A dialog is the peer-to-peer relationship an INVITE sets up. It is identified by Call-ID plus
the two tags (§12) and carries what every later request inside it needs (§12.2.1.1): the local
sequence number, the remote target (the peer's Contact, refreshed by re-INVITE/UPDATE), the route
set (from Record-Route, in request order for the UAS and reversed for the UAC), the local and
remote URIs and the secure flag.

The user agent (``sipum_protocol.sip.ua``) creates dialogs and drives them; this module only knows how a
dialog is derived from the messages that create it and how it builds and checks the requests that
travel inside it.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

from sipum_protocol.sip.message import Headers, SipRequest, SipResponse
from sipum_protocol.sip.uri import SipUri, parse_name_addr, parse_uri


class DialogState(enum.Enum):
    """§12: a dialog is early after a provisional response with a to-tag and confirmed after
    a 2xx; it ends with BYE (§15) or when the session cannot be set up."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class DialogId:
    """§12: Call-ID, local tag, remote tag — as seen from this side of the dialog."""

    call_id: str
    local_tag: str
    remote_tag: str


def header_tag(value: str) -> str | None:
    """The ``tag`` parameter of a From/To value, read from the text (hot path: no full parse).

    Header parameters follow the closing ``>`` of a name-addr; in the addr-spec form the URI
    cannot carry parameters (§20.10), so every ``;`` there starts a header parameter too.
    """
    close = value.rfind(">")
    params = value[close + 1 :] if close >= 0 else value
    if ";" not in params:
        return None
    for param in params.split(";")[1:]:
        name, _, tag = param.partition("=")
        if name.strip().lower() == "tag":
            return tag.strip() or None
    return None


def without_tag(value: str) -> str:
    """A From/To value without its tag parameter (the dialog's local/remote URI, §12.1)."""
    close = value.rfind(">")
    head, params = (value[: close + 1], value[close + 1 :]) if close >= 0 else ("", value)
    if ";" not in params:
        return value.strip()
    parts = params.split(";")
    kept = [parts[0]] + [p for p in parts[1:] if p.partition("=")[0].strip().lower() != "tag"]
    return (head + ";".join(kept)).strip()


def incoming_request_dialog_id(request: SipRequest) -> DialogId | None:
    """The id of the dialog an incoming request belongs to, or ``None`` outside a dialog.

    §12.2.2: for a request we receive, our tag is in To and the peer's in From. A request
    without a To tag is not in a dialog.
    """
    headers = request.headers
    local = header_tag(headers.get("To") or "")
    if not local:
        return None
    return DialogId(request.call_id, local, header_tag(headers.get("From") or "") or "")


def incoming_response_dialog_id(response: SipResponse) -> DialogId | None:
    """The id of the dialog a response to our request belongs to (our tag is in From)."""
    headers = response.headers
    remote = header_tag(headers.get("To") or "")
    local = header_tag(headers.get("From") or "")
    if not remote or not local:
        return None
    return DialogId(response.call_id, local, remote)


def _contact_uri(message: SipRequest | SipResponse) -> str | None:
    """The URI of the first Contact (§12.1.1: the remote target), without its parameters."""
    values = message.headers.get_all("Contact")
    if not values:
        return None
    value = values[0].strip()
    if value.startswith('"'):
        return str(parse_name_addr(value).uri)  # quoted display name: let the parser do it
    start = value.find("<")
    if start < 0:
        # addr-spec form: everything after ';' is a Contact parameter (§20.10).
        return value.split(";", 1)[0].strip()
    end = value.find(">", start)
    if end < 0:
        return str(parse_name_addr(value).uri)
    return value[start + 1 : end].strip()


def _is_sips(uri: str) -> bool:
    return uri.lower().startswith("sips:")


@dataclass(eq=False)
class Dialog:
    """One dialog, from this UA's point of view (§12.1).

    ``local_seq`` is the CSeq of the last request we sent in it (``None`` until we send one:
    §12.1.1 leaves it empty for the UAS); ``remote_seq`` the CSeq of the last request the peer
    sent (``None`` for a UAC until the peer sends one).
    """

    id: DialogId
    local_uri: str
    remote_uri: str
    remote_target: str
    route_set: list[str]
    secure: bool
    local_contact: str
    local_seq: int | None = None
    remote_seq: int | None = None
    state: DialogState = DialogState.EARLY
    is_uas: bool = True
    invite_cseq: int = 0
    """CSeq number of the INVITE that created the dialog (for the UAC's ACK, §13.2.2.4)."""
    extra: dict[str, object] = field(default_factory=dict)
    """Room for the user agent's own per-dialog data (kept out of the RFC fields above)."""

    # -- creation --------------------------------------------------------------------------

    @classmethod
    def from_incoming_request(
        cls,
        request: SipRequest,
        *,
        local_tag: str,
        local_contact: str,
        secure_transport: bool = False,
    ) -> Dialog:
        """The UAS side (§12.1.1), when it sends a response with a to-tag to ``request``.

        The route set is the Record-Route list in order; the remote target is the Contact
        of the request; the remote sequence number is the request's CSeq; the secure flag is
        set when the request came over TLS with a ``sips`` Request-URI.
        """
        cseq, _method = request.cseq
        from_value = request.headers.get("From") or ""
        remote_target = _contact_uri(request) or str(request.from_.uri)
        return cls(
            id=DialogId(request.call_id, local_tag, header_tag(from_value) or ""),
            local_uri=without_tag(request.headers.get("To") or ""),
            remote_uri=without_tag(from_value),
            remote_target=remote_target,
            route_set=list(request.headers.get_all("Record-Route")),
            secure=secure_transport and _is_sips(request.uri),
            local_contact=local_contact,
            local_seq=None,
            remote_seq=cseq,
            state=DialogState.EARLY,
            is_uas=True,
            invite_cseq=cseq,
        )

    @classmethod
    def from_response(
        cls,
        request: SipRequest,
        response: SipResponse,
        *,
        local_contact: str,
        secure_transport: bool = False,
    ) -> Dialog:
        """The UAC side (§12.1.2), from a 101-299 response with a to-tag to our ``request``.

        The route set is the Record-Route list of the response, reversed; the remote target
        is the response's Contact; the local sequence number is the request's CSeq.
        """
        cseq, _method = request.cseq
        remote_target = _contact_uri(response) or str(response.to.uri)
        state = DialogState.CONFIRMED if 200 <= response.status < 300 else DialogState.EARLY
        to_value = response.headers.get("To") or ""
        from_value = request.headers.get("From") or ""
        return cls(
            id=DialogId(request.call_id, header_tag(from_value) or "", header_tag(to_value) or ""),
            local_uri=without_tag(from_value),
            remote_uri=without_tag(to_value),
            remote_target=remote_target,
            route_set=list(reversed(response.headers.get_all("Record-Route"))),
            secure=secure_transport and _is_sips(request.uri),
            local_contact=local_contact,
            local_seq=cseq,
            remote_seq=None,
            state=state,
            is_uas=False,
            invite_cseq=cseq,
        )

    # -- state -----------------------------------------------------------------------------

    def confirm(self) -> None:
        """A 2xx was sent (UAS) or received (UAC): the dialog is confirmed (§12.1)."""
        if self.state is DialogState.EARLY:
            self.state = DialogState.CONFIRMED

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED

    @property
    def confirmed(self) -> bool:
        return self.state is DialogState.CONFIRMED

    @property
    def terminated(self) -> bool:
        return self.state is DialogState.TERMINATED

    def accept_remote_cseq(self, request: SipRequest) -> bool:
        """§12.2.2: a request whose CSeq is lower than the last one from the peer is out of
        order and gets 500; otherwise the remote sequence number advances.

        ACK (and CANCEL) reuse the CSeq number of the request they belong to and are not
        checked here.
        """
        cseq, method = request.cseq
        if method in ("ACK", "CANCEL"):
            return True
        if self.remote_seq is not None and cseq <= self.remote_seq:
            # Equal numbers with a different branch are just as out of order: a retransmission
            # never reaches the dialog, the transaction layer absorbs it.
            return False
        self.remote_seq = cseq
        return True

    def refresh_target(self, message: SipRequest | SipResponse) -> None:
        """§12.2: a target refresh request (re-INVITE, UPDATE) or its 2xx may carry a new
        Contact, which replaces the remote target. The route set never changes (§12.2)."""
        target = _contact_uri(message)
        if target:
            self.remote_target = target

    def next_local_seq(self) -> int:
        """§12.2.1.1: the CSeq of a new request is one more than the last one we sent; a UAS
        that has not sent any picks a start of its own (kept below 2**31, §8.1.1.5)."""
        if self.local_seq is None:
            self.local_seq = random.randint(1, 2**20)
        else:
            self.local_seq += 1
        return self.local_seq

    # -- requests inside the dialog ---------------------------------------------------------

    def request_target(self) -> tuple[str, list[str]]:
        """Request-URI and Route values for a request in this dialog (§12.2.1.1).

        Empty route set: Request-URI is the remote target, no Route. First route is a loose
        router (``lr``): Request-URI is the remote target, Route is the route set. Otherwise
        (a strict router, RFC 2543): Request-URI is the first route's URI, Route is the rest
        plus the remote target.
        """
        if not self.route_set:
            return self.remote_target, []
        first = parse_name_addr(self.route_set[0])
        if "lr" in {k.lower() for k in first.uri.params}:
            return self.remote_target, list(self.route_set)
        strict_uri = SipUri(
            scheme=first.uri.scheme,
            user=first.uri.user,
            password=first.uri.password,
            host=first.uri.host,
            port=first.uri.port,
            params=dict(first.uri.params),
            headers={},
        )
        return str(strict_uri), [*self.route_set[1:], f"<{self.remote_target}>"]

    def create_request(
        self,
        method: str,
        *,
        via: str,
        cseq: int | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> SipRequest:
        """Build a request inside the dialog (§12.2.1.1): To carries the remote URI and tag,
        From the local URI and tag, the Call-ID of the dialog, a CSeq one above the last
        (``cseq`` overrides it: an ACK reuses its INVITE's number, §13.2.2.4), Contact
        our own. ``via`` is the complete Via value (the caller knows transport and branch)."""
        if cseq is None:
            cseq = self.next_local_seq()
        uri, routes = self.request_target()
        h = Headers()
        h.add("Via", via)
        h.add("Max-Forwards", "70")
        for route in routes:
            h.add("Route", route)
        h.add("From", f"{self.local_uri};tag={self.id.local_tag}")
        remote = (
            f"{self.remote_uri};tag={self.id.remote_tag}" if self.id.remote_tag else self.remote_uri
        )
        h.add("To", remote)
        h.add("Call-ID", self.id.call_id)
        h.add("CSeq", f"{cseq} {method}")
        if method not in ("ACK", "CANCEL", "BYE"):
            h.add("Contact", self.local_contact)
        for name, value in headers or ():
            h.add(name, value)
        if body:
            h.add("Content-Type", content_type or "application/sdp")
        return SipRequest(method, uri, h, body)

    def next_hop(self) -> SipUri:
        """Where a request in this dialog goes first (§8.1.2 with §12.2.1.1): the first route,
        or the remote target when the route set is empty. The caller resolves it (RFC 3263;
        numeric hosts on our networks)."""
        if self.route_set:
            # Loose router: send to it, Request-URI stays the target. Strict router: it is
            # the Request-URI itself (§8.1.2, §12.2.1.1); either way the first route.
            return parse_name_addr(self.route_set[0]).uri
        return parse_uri(self.remote_target)
