"""SIP requests and responses: parse and serialise (RFC 3261 §7, §18.3, §20, §25).

Theory of operation
-------------------
``parse_message`` is on the path of every datagram and every framed stream message, so it does
the least work that still lets it decide "accept, answer with 400, or drop":

* the header block is located once (``CRLF CRLF``), decoded once and split into lines once;
  folded lines (LWS continuation, §7.3.1) are joined only when a line starts with SP/HTAB;
* each header line is split at its first ``:`` and its name normalised (case, compact form)
  through one dictionary lookup; values are stored unparsed;
* only the headers needed to route an answer are checked here (Via, From, To, Call-ID, CSeq,
  Content-Length, Max-Forwards); structured values (Via, name-addr, URIs) are parsed lazily by
  the ``vias`` / ``from_`` / ``to`` / ``cseq`` properties when someone asks.

Errors: the parser raises nothing but :class:`SipParseError`. When a *request* is malformed but
its Via, From, To, Call-ID and CSeq are usable, the error carries ``.request`` so the caller can
answer ``400`` with ``error.reason`` as the reason phrase (``make_response(error.request, 400,
error.reason)``); otherwise ``.request`` is ``None`` and the caller drops the input (§18.3:
responses with a bad body length are discarded, as is anything without a routable Via).

Stream transports (TCP/TLS) frame messages by Content-Length (§18.3): :class:`StreamFramer`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sipum_protocol.sip.headers import CANONICAL, Headers, SipParseError, split_list
from sipum_protocol.sip.uri import (
    NameAddr,
    SipUri,
    Via,
    format_host,
    parse_name_addr,
    parse_params,
    parse_uri,
    parse_via,
)

__all__ = [
    "Headers",
    "NameAddr",
    "REASON_PHRASES",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "SipUri",
    "StreamFramer",
    "Via",
    "format_host",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_message",
    "parse_name_addr",
    "parse_params",
    "parse_uri",
    "parse_via",
    "split_list",
    "via_for_request",
]

BRANCH_MAGIC = "z9hG4bK"  # RFC 3261 §8.1.1.7
SIP_VERSION = "SIP/2.0"
DEFAULT_MAX_SIZE = 65535
DEFAULT_MAX_HEADERS = 128

# RFC 3261 §21 plus common extensions.
REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    430: "Flow Failed",
    433: "Anonymity Disallowed",
    436: "Bad Identity-Info",
    437: "Unsupported Certificate",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}


def new_branch() -> str:
    """A fresh RFC 3261 branch (magic cookie + 64 random bits)."""
    return BRANCH_MAGIC + secrets.token_hex(8)


def via_for_request(transport: str, host: str, port: int, branch: str | None = None) -> str:
    """The Via value of a request we originate — the one place it is written.

    §8.1.1.7 / §18.1.1: the sent-by is the address our transport listens on (where a response
    comes back, §18.2.2), not the Contact, which may be a name; ``host`` an IPv6 address gets
    brackets (RFC 5118 §4.5). A fresh ``z9hG4bK`` branch names one transaction (§17.1.3),
    so every new request needs a new one. ``rport`` without a value asks the server to answer
    to the source address it saw (RFC 3581 §3), which is what gets through a NAT.
    """
    return (
        f"SIP/2.0/{transport.upper()} {format_host(host)}:{port}"
        f";branch={branch or new_branch()};rport"
    )


def new_tag() -> str:
    """A fresh From/To tag (§19.3: at least 32 bits of randomness)."""
    return secrets.token_hex(6)


def new_call_id(host: str) -> str:
    """A fresh Call-ID ``random@host`` (§8.1.1.4)."""
    return f"{secrets.token_hex(12)}@{host}"


def _copy_name_addr(na: NameAddr) -> NameAddr:
    u = na.uri
    uri = SipUri(u.scheme, u.user, u.password, u.host, u.port, dict(u.params), dict(u.headers))
    return NameAddr(na.display, uri, dict(na.params))


def _copy_via(v: Via) -> Via:
    return Via(v.transport, v.host, v.port, dict(v.params))


class _MessageMixin:
    """Header shortcuts shared by requests and responses.

    Structured values are parsed on first access and remembered by their raw text (so a
    header changed later is parsed again); every access returns a fresh copy that the caller
    may change freely.
    """

    headers: Headers
    body: bytes
    _parsed: dict[tuple[str, str], Any]

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"Missing {name}")
        return value

    def _name_addr(self, name: str) -> NameAddr:
        raw = self._required(name)
        cached = self._parsed.get((name, raw))
        if cached is None:
            cached = parse_name_addr(raw)
            self._parsed[(name, raw)] = cached
        return _copy_name_addr(cached)

    def _via(self, raw: str) -> Via:
        cached = self._parsed.get(("Via", raw))
        if cached is None:
            cached = parse_via(raw)
            self._parsed[("Via", raw)] = cached
        return _copy_via(cached)

    @property
    def call_id(self) -> str:
        return self._required("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        return _parse_cseq(self._required("CSeq"))

    @property
    def vias(self) -> list[Via]:
        """Every Via value, top first."""
        return [self._via(v) for v in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        first = self.headers.get("Via")
        if first is None:
            raise SipParseError("Missing Via")
        if "," in first:
            values = split_list(first)
            if not values:
                raise SipParseError("Bad Via")
            first = values[0]
        return self._via(first)

    @property
    def from_(self) -> NameAddr:
        return self._name_addr("From")

    @property
    def to(self) -> NameAddr:
        return self._name_addr("To")

    @property
    def content_type(self) -> str | None:
        """The media type of the body, lower-cased, without parameters."""
        value = self.headers.get("Content-Type")
        if value is None:
            return None
        return value.partition(";")[0].strip().lower()

    def _serialise(self, start_line: str) -> bytes:
        body = self.body
        lines = [start_line]
        length_written = False
        for _key, name, value in self.headers._items:
            if _key == "content-length":
                if length_written:
                    continue
                value = str(len(body))
                length_written = True
            lines.append(f"{name}: {value}")
        if not length_written:
            lines.append(f"Content-Length: {len(body)}")
        lines.append("")
        lines.append("")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body


@dataclass(eq=True)
class SipRequest(_MessageMixin):
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    _parsed: dict[tuple[str, str], Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __bytes__(self) -> bytes:
        return self._serialise(f"{self.method} {self.uri} {SIP_VERSION}")

    @property
    def request_uri(self) -> SipUri:
        return parse_uri(self.uri)


@dataclass(eq=True)
class SipResponse(_MessageMixin):
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    _parsed: dict[tuple[str, str], Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __bytes__(self) -> bytes:
        return self._serialise(f"{SIP_VERSION} {self.status} {self.reason}")


def _parse_cseq(value: str) -> tuple[int, str]:
    number, _, method = value.strip().partition(" ")
    method = method.strip()
    if not number.isdigit() or len(number) > 10 or not method or not _TOKEN_RE.fullmatch(method):
        raise SipParseError("Bad CSeq")
    seq = int(number)
    if seq >= 2**31:  # §8.1.1.5: less than 2**31
        raise SipParseError("Bad CSeq")
    return seq, method


_TOKEN_RE = re.compile(r"[A-Za-z0-9.!%*_+`'~\-]+")
_FOLD_RE = re.compile(r"\r\n[ \t]+")
_HEADER_NAME_RE = re.compile(r"[A-Za-z0-9.!%*_+`'~\-]+")
_STATUS_RE = re.compile(r"SIP/2\.0 ([1-6][0-9][0-9])(?: (.*))?")


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Split at the empty line; accept bare-LF line ends (normalised to CRLF)."""
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return data[:end], data[end + 4 :]
    lf = data.find(b"\n\n")
    if lf >= 0:
        head = data[:lf].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        return head, data[lf + 2 :]
    # No empty line: acceptable only if the datagram ends right after the last header.
    if data.endswith(b"\r\n"):
        return data[:-2], b""
    if data.endswith(b"\n"):
        return data[:-1].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), b""
    raise SipParseError("Truncated message: no end of headers")


def parse_message(
    data: bytes,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_headers: int = DEFAULT_MAX_HEADERS,
) -> SipRequest | SipResponse:
    """Parse one SIP message from a datagram or a framed stream message.

    Raises :class:`SipParseError` only; see the module docstring for ``.request``.
    """
    try:
        return _parse(data, max_size, max_headers)
    except SipParseError:
        raise
    except Exception as exc:  # defensive: the parser's contract is SipParseError only
        raise SipParseError(f"Malformed message ({type(exc).__name__})") from exc


def _parse(data: bytes, max_size: int, max_headers: int) -> SipRequest | SipResponse:
    if len(data) > max_size:
        raise SipParseError("Message Too Large")
    # §7.5: implementations should ignore CRLFs before the start line.
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    if not data:
        raise SipParseError("Empty message")
    head_bytes, body = _split_head(data)
    head = head_bytes.decode("utf-8", "surrogateescape")
    if "\r\n " in head or "\r\n\t" in head:
        head = _FOLD_RE.sub(" ", head)  # §7.3.1 folding: the continuation is one SP
    lines = head.split("\r\n")
    start = lines[0]

    request: SipRequest | None = None
    response: SipResponse | None = None
    version_error = False
    problem: str | None = None  # first answerable problem; raised once we know who to answer
    status = 400
    if start.startswith("SIP/"):
        m = _STATUS_RE.fullmatch(start)
        if m is None:
            raise SipParseError("Bad status line")
        response = SipResponse(int(m.group(1)), m.group(2) or "", Headers(), b"")
        headers = response.headers
    else:
        parts = start.split(" ")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            # §7.1: exactly one SP between the elements. Still answerable with a 400 if the
            # three elements can be told apart.
            parts = start.split()
            if len(parts) != 3:
                raise SipParseError("Bad request line")
            problem = "Bad request line: extra whitespace"
        method, uri, version = parts
        if _TOKEN_RE.fullmatch(method) is None:
            raise SipParseError("Bad request line: bad method")
        request = SipRequest(method, uri, Headers(), b"")
        headers = request.headers
        if version != SIP_VERSION:
            if not version.upper().startswith("SIP/"):
                raise SipParseError("Bad request line: bad version")
            version_error = version.upper() != SIP_VERSION
    if not start.isprintable():
        raise SipParseError("Illegal character in start line")

    if len(lines) - 1 > max_headers:
        problem = problem or "Too many header fields"
        del lines[max_headers + 1 :]
    items = headers._items
    keys = _KEYS
    # The values the answerability check needs, collected in the same pass.
    found: dict[str, list[str]] = {}
    # Control characters (other than HTAB) and lone CR/LF are not allowed (§25.1); letting
    # them through would let a value smuggle a header line into responses that copy it.
    # One isprintable() over the block is the cheap test; lines are only checked one by one
    # (isprintable, then the regex) when it fails.
    check_lines = not "".join(lines).isprintable()
    for i in range(1, len(lines)):
        line = lines[i]
        if check_lines and not line.isprintable() and _BAD_LINE_CHARS.search(line) is not None:
            problem = problem or "Illegal character in header"
            continue
        name, sep, value = line.partition(":")
        if not sep:
            problem = problem or "Malformed header line"
            continue
        value = value.strip(" \t")
        entry = keys.get(name) or keys.get(name.rstrip(" \t").lower())
        if entry is None:
            name = name.rstrip(" \t")
            if _HEADER_NAME_RE.fullmatch(name) is None:
                problem = problem or "Malformed header name"
                continue
            items.append((name.lower(), name, value))
            continue
        key = entry[0]
        items.append((key, entry[1], value))
        if key in _ROUTING_KEYS:
            if key in found:
                found[key].append(value)
            else:
                found[key] = [value]

    # Body length (§18.3, §20.14).
    lengths = found.get("content-length")
    if lengths:
        cl_text = lengths[0]
        if not cl_text.isdigit() or len(cl_text) > 9:
            problem = problem or "Bad Content-Length"
        else:
            cl = int(cl_text)
            if len(lengths) > 1 and any(v != cl_text for v in lengths[1:]):
                problem = problem or "Conflicting Content-Length"
            if cl > len(body):
                problem = problem or "Content-Length larger than body"
            elif cl < len(body):
                body = body[:cl]  # §18.3: extra datagram bytes are discarded
    if request is not None:
        request.body = body
    else:
        response.body = body  # type: ignore[union-attr]

    # What a 400 needs; without it nothing can be answered.
    message = request if request is not None else response
    assert message is not None
    unanswerable, header_problem = _check_routing_headers(found, message._parsed)
    if unanswerable is not None:
        raise SipParseError(unanswerable)
    problem = problem or header_problem
    if request is None:
        if problem is not None:
            raise SipParseError(problem)
        assert response is not None
        return response
    if problem is None and _parse_cseq(found["cseq"][0])[1] != request.method:
        problem = "CSeq method does not match request method"
    if problem is None:
        max_fwd = found.get("max-forwards")
        if max_fwd is not None and (not max_fwd[0].isdigit() or len(max_fwd[0]) > 10):
            problem = "Bad Max-Forwards"
    if problem is None:
        try:
            parse_uri(request.uri)
        except SipParseError as exc:
            problem = f"Bad Request-URI: {exc.reason}"
            if exc.reason.startswith("Unsupported URI scheme"):
                problem, status = exc.reason, 416  # §8.2.2.1
    if version_error:
        raise SipParseError("Version Not Supported", request, 505)
    if problem is not None:
        raise SipParseError(problem, request, status)
    return request


# lower-case or exact spelling -> (key, canonical name); exact spellings skip a lower() call
_KEYS: dict[str, tuple[str, str]] = {}
for _low, _canon in CANONICAL.items():
    _KEYS[_low] = (_canon.lower(), _canon)
    _KEYS[_canon] = (_canon.lower(), _canon)
    _KEYS.setdefault(_low.upper(), (_canon.lower(), _canon))
_ROUTING_KEYS = frozenset(
    ("via", "from", "to", "call-id", "cseq", "content-length", "max-forwards")
)
_BAD_LINE_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _check_routing_headers(
    found: dict[str, list[str]], parsed: dict[tuple[str, str], Any]
) -> tuple[str | None, str | None]:
    """Whether Via, From, To, Call-ID and CSeq make the message answerable.

    Returns (what makes it unanswerable, or None; an answerable problem, or None). A From or
    To that does not parse, or a repeated one, can still be copied into a 400 (RFC 4475
    §3.1.2 expects one), so those are answerable problems.
    """
    vias = found.get("via")
    if not vias:
        return "Missing Via", None
    top = vias[0]
    try:
        if "," in top:
            top = split_list(top)[0]
        parsed[("Via", top)] = parse_via(top)
    except (SipParseError, IndexError):
        return "Bad Via", None
    for key, name in (("from", "From"), ("to", "To"), ("call-id", "Call-ID"), ("cseq", "CSeq")):
        values = found.get(key)
        if not values or not values[0]:
            return f"Missing {name}", None
    try:
        _parse_cseq(found["cseq"][0])
    except SipParseError as exc:
        return exc.reason, None
    for key, name in (("from", "From"), ("to", "To"), ("call-id", "Call-ID"), ("cseq", "CSeq")):
        if len(found[key]) > 1:
            return None, f"More than one {name}"
    for key, name in (("from", "From"), ("to", "To")):
        raw = found[key][0]
        try:
            parsed[(name, raw)] = parse_name_addr(raw)
        except SipParseError as exc:
            return None, f"Bad {name}: {exc.reason}"
    return None, None


def make_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> SipResponse:
    """Build a response per RFC 3261 §8.2.6.

    Copies every Via (same order), From, To, Call-ID and CSeq; adds ``to_tag`` to To unless it
    already has a tag; copies Timestamp into a 100 (§8.2.6.1). Record-Route is *not* copied:
    that belongs to dialog-creating responses and is the dialog layer's decision (§12.1.1).
    """
    out = Headers()
    src = request.headers
    for key, name, value in src._items:
        if key == "via":
            out._append_raw(key, name, value)
    for name in ("From", "To", "Call-ID", "CSeq"):
        copied = src.get(name)
        if copied is None:
            continue
        if name == "To" and to_tag is not None and status != 100:
            copied = _with_tag(copied, to_tag)
        out.add(name, copied)
    if status == 100:
        ts = src.get("Timestamp")
        if ts is not None:
            out.add("Timestamp", ts)
    for name, value in headers:
        out.add(name, value)
    phrase = reason if reason is not None else REASON_PHRASES.get(status, _class_reason(status))
    return SipResponse(status, phrase, out, body)


def _class_reason(status: int) -> str:
    return REASON_PHRASES.get((status // 100) * 100, "Unknown")


def _with_tag(to_value: str, tag: str) -> str:
    """Add ;tag= to a To value unless one is there (keeps the rest exactly as received)."""
    try:
        if parse_name_addr(to_value).tag is not None:
            return to_value
    except SipParseError:
        pass
    return f"{to_value};tag={tag}"


_CONTENT_LENGTH_RE = re.compile(
    rb"(?:^|\r\n)(?:content-length|l)[ \t]*:[ \t]*(?:\r\n[ \t]+)?([0-9]*)[ \t]*(?=\r\n|$)", re.I
)


class StreamFramer:
    """Cut a TCP/TLS byte stream into SIP messages by Content-Length (RFC 3261 §18.3).

    ``feed`` returns every complete message buffered so far (a segment may hold several, a
    message may span several segments). A bare ``CRLF CRLF`` between messages is a keep-alive
    ping (RFC 5626 §3.5.1) and is returned as ``b"\\r\\n\\r\\n"`` so the transport can answer
    with a ``CRLF`` pong; a lone ``CRLF`` (a pong, or §7.5 padding) is skipped.

    A message without Content-Length, with a bad one, or larger than ``max_message`` cannot be
    framed: ``feed`` raises :class:`SipParseError` and the connection must be closed (the
    stream position is lost).
    """

    __slots__ = ("_buf", "_max", "_broken", "_scanned")

    PING = b"\r\n\r\n"

    def __init__(self, *, max_message: int = DEFAULT_MAX_SIZE) -> None:
        self._buf = bytearray()
        self._max = max_message
        self._broken = False
        # how far the buffer is known to hold no CRLFCRLF: a header block arriving in many
        # small segments is scanned once, not once per segment
        self._scanned = 0

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        if self._broken:
            raise SipParseError("Stream framing lost")
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while buf:
            if buf[:1] == b"\r" or buf[:1] == b"\n":
                if buf[:4] == b"\r\n\r\n":
                    out.append(self.PING)
                    del buf[:4]
                    continue
                if len(buf) < 4 and b"\r\n\r\n".startswith(bytes(buf)):
                    break  # maybe the start of a ping: wait for more
                if buf[:2] == b"\r\n":
                    del buf[:2]
                else:
                    del buf[:1]
                continue
            end = buf.find(b"\r\n\r\n", self._scanned)
            if end < 0:
                if len(buf) > self._max:
                    self._broken = True
                    raise SipParseError("Message Too Large")
                self._scanned = max(0, len(buf) - 3)
                break
            self._scanned = 0
            m = _CONTENT_LENGTH_RE.search(buf, 0, end)
            if m is None or not m.group(1):
                self._broken = True
                raise SipParseError("Missing Content-Length on stream transport")
            if len(m.group(1)) > 9:
                self._broken = True
                raise SipParseError("Message Too Large")
            total = end + 4 + int(m.group(1))
            if total > self._max:
                self._broken = True
                raise SipParseError("Message Too Large")
            if len(buf) < total:
                break
            out.append(bytes(buf[:total]))
            del buf[:total]
        return out
