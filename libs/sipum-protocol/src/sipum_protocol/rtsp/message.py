"""RTSP/1.0 messages (RFC 2326 §4, §6, §7) and interleaved binary frames (§10.12).

An RTSP connection carries text requests and, once a client chose TCP-interleaved transport,
``$``-prefixed binary frames (RTP/RTCP) between them. :class:`RtspFramer` is fed the bytes of a
connection and yields :class:`RtspRequest` and :class:`InterleavedFrame` objects in order.

Everything is bounded: a request line and headers of at most ``max_head`` bytes, at most
``max_headers`` header lines, a body of at most ``max_body`` bytes. Input that violates the
grammar raises :class:`RtspParseError` carrying the status the server should answer with (400,
413, 505) and the CSeq if it could be read; the connection is closed afterwards because the
stream position is no longer trustworthy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RTSP_VERSION = "RTSP/1.0"

REASONS: dict[int, str] = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    413: "Request Entity Too Large",
    414: "Request-URI Too Large",
    453: "Not Enough Bandwidth",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    457: "Invalid Range",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "RTSP Version Not Supported",
}

# RFC 2326 §10: methods this server implements; anything else gets 501.
METHODS = ("OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER")


class RtspParseError(ValueError):
    """Malformed input: answer with ``status`` (CSeq echoed when known), then close."""

    def __init__(self, status: int, reason: str, cseq: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.cseq = cseq


class Headers:
    """Ordered, case-insensitive RTSP headers (names keep the spelling they were given)."""

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = list(items or [])

    def get(self, name: str, default: str | None = None) -> str | None:
        lowered = name.lower()
        for key, value in self._items:
            if key.lower() == lowered:
                return value
        return default

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self._items.append((name, value))

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))

    def remove(self, name: str) -> None:
        lowered = name.lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != lowered]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


@dataclass
class RtspRequest:
    method: str
    url: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = RTSP_VERSION

    @property
    def cseq(self) -> str | None:
        return self.headers.get("CSeq")

    @property
    def session_id(self) -> str | None:
        """The ``Session`` header without its ``;timeout=`` parameter (§12.37)."""
        value = self.headers.get("Session")
        return value.split(";", 1)[0].strip() if value else None

    def __bytes__(self) -> bytes:
        head = [f"{self.method} {self.url} {self.version}"]
        headers = Headers(self.headers.items())
        if self.body:
            headers.set("Content-Length", str(len(self.body)))
        head.extend(f"{k}: {v}" for k, v in headers.items())
        return ("\r\n".join(head) + "\r\n\r\n").encode() + self.body


@dataclass
class RtspResponse:
    status: int
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    reason: str | None = None

    def __bytes__(self) -> bytes:
        reason = self.reason or REASONS.get(self.status, "Unknown")
        head = [f"{RTSP_VERSION} {self.status} {reason}"]
        headers = Headers(self.headers.items())
        if self.body or self.status == 200:
            headers.set("Content-Length", str(len(self.body)))
        head.extend(f"{k}: {v}" for k, v in headers.items())
        return ("\r\n".join(head) + "\r\n\r\n").encode() + self.body


@dataclass(frozen=True)
class InterleavedFrame:
    """An RTP or RTCP packet carried on the RTSP connection (§10.12): ``$ channel len data``."""

    channel: int
    data: bytes

    def __bytes__(self) -> bytes:
        return b"$" + bytes((self.channel,)) + len(self.data).to_bytes(2, "big") + self.data


def _parse_head(head: bytes, max_headers: int) -> RtspRequest:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise RtspParseError(400, "request is not UTF-8") from None
    lines = text.split("\r\n")
    request_line = lines[0]
    headers = Headers()
    cseq: str | None = None
    if len(lines) - 1 > max_headers:
        raise RtspParseError(400, "too many header lines")
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and headers._items:
            # Line folding (RFC 2326 §4.2 via RFC 2068): continue the previous value.
            name, value = headers._items[-1]
            headers._items[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or name != name.strip():
            raise RtspParseError(400, f"malformed header line {line[:40]!r}", cseq)
        headers.add(name, value.strip())
        if name.lower() == "cseq":
            cseq = value.strip()
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise RtspParseError(400, "malformed request line", cseq)
    method, url, version = parts
    if not version.startswith("RTSP/"):
        raise RtspParseError(400, "not an RTSP request", cseq)
    if version != RTSP_VERSION:
        raise RtspParseError(505, f"{version} is not supported; use {RTSP_VERSION}", cseq)
    if cseq is None or not cseq.isdigit():
        raise RtspParseError(400, "missing or malformed CSeq")
    if not method.isascii() or not method.replace("_", "").isalpha():
        raise RtspParseError(400, "malformed method", cseq)
    return RtspRequest(method=method, url=url, headers=headers, version=version)


class RtspFramer:
    """Splits a connection's bytes into requests and interleaved frames, in order."""

    def __init__(
        self, *, max_head: int = 8192, max_headers: int = 64, max_body: int = 65536
    ) -> None:
        self.max_head = max_head
        self.max_headers = max_headers
        self.max_body = max_body
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[RtspRequest | InterleavedFrame]:
        """Add ``data``; return every complete item. Raises :class:`RtspParseError`."""
        self._buffer += data
        items: list[RtspRequest | InterleavedFrame] = []
        buf = self._buffer
        while buf:
            if buf[0] == 0x24:  # '$' — interleaved binary frame
                if len(buf) < 4:
                    break
                length = int.from_bytes(buf[2:4], "big")
                if len(buf) < 4 + length:
                    break
                items.append(InterleavedFrame(buf[1], bytes(buf[4 : 4 + length])))
                del buf[: 4 + length]
                continue
            if buf[:2] == b"\r\n":  # stray CRLF between messages (keep-alive habits)
                del buf[:2]
                continue
            end = buf.find(b"\r\n\r\n", 0, self.max_head + 4)
            if end < 0:
                if len(buf) > self.max_head:
                    raise RtspParseError(413, "request head too large")
                break
            request = _parse_head(bytes(buf[:end]), self.max_headers)
            length_text = request.headers.get("Content-Length", "0") or "0"
            if not length_text.isdigit():
                raise RtspParseError(400, "malformed Content-Length", request.cseq)
            length = int(length_text)
            if length > self.max_body:
                raise RtspParseError(413, "request body too large", request.cseq)
            if len(buf) < end + 4 + length:
                break
            request.body = bytes(buf[end + 4 : end + 4 + length])
            del buf[: end + 4 + length]
            items.append(request)
        return items
