"""SDP session descriptions (RFC 4566) and the offer/answer model (RFC 3264).

``SessionDescription.parse`` reads an SDP body into dataclasses; ``bytes(sdp)`` writes it back
in the field order RFC 4566 §5 requires (lines the model does not interpret — ``i=``, ``u=``,
``e=``, ``p=``, ``b=``, ``r=``, ``z=``, ``k=`` — are kept and written back in their place).

Offer/answer as a voicemail UAS needs it:

* ``negotiate(offer, supported, ...)`` answers an offer (RFC 3264 §6): the first audio stream
  over ``RTP/AVP`` with a codec in common is accepted with **one** codec — the offerer's
  first choice among those we support (§6.1: the answerer should follow the offerer's order),
  and, when several payload types of the offer carry that codec, our preference among the
  variants decides — plus ``telephone-event`` (RFC 4733) if both sides have it. Payload type
  numbers are those of the offer (§6.1), every other stream is rejected with port 0 (§6),
  direction is mirrored (§6.1: sendonly → recvonly, recvonly → sendonly, inactive →
  inactive), and ``a=ptime`` says how we want to receive. Nothing in common raises
  :class:`NoCommonCodec` (the UA answers ``488 Not Acceptable Here``).
* ``make_offer(supported, ...)`` builds our offer for an INVITE that came without SDP (RFC 3261
  §13.2.1: we offer in the 200, the answer arrives in the ACK).
* ``stream_choices(local, remote)`` tells the media side, after either exchange, which codec and
  payload types to use, where to send, with which packet time and in which direction.

Why one codec in the answer: RFC 3264 allows listing every common codec, but then the peer may
switch codec at any packet; the media endpoints here run one codec per call.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "CODECS",
    "Codec",
    "Connection",
    "MediaDescription",
    "NoCommonCodec",
    "Origin",
    "SdpParseError",
    "SessionDescription",
    "StreamChoice",
    "make_offer",
    "negotiate",
    "stream_choices",
]


class SdpParseError(ValueError):
    """SDP text that cannot be read (the UA answers 400, or 488 for an unusable offer)."""


class NoCommonCodec(ValueError):
    """No offered stream can be accepted with a codec we support → 488 Not Acceptable Here."""


# --- codecs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    """An RTP payload format: encoding name, RTP clock rate, channels, payload type, fmtp.

    ``payload_type`` is the static number (RFC 3551 §6) or the dynamic one we use by default in
    our offers; after negotiation it is the number agreed on.
    """

    name: str
    clock_rate: int
    channels: int = 1
    payload_type: int | None = None
    fmtp: str | None = None

    @property
    def is_static(self) -> bool:
        return self.payload_type is not None and self.payload_type < 96

    @property
    def rtpmap(self) -> str:
        """``name/rate[/channels]`` as in ``a=rtpmap``."""
        base = f"{self.name}/{self.clock_rate}"
        return f"{base}/{self.channels}" if self.channels != 1 else base

    def matches(self, name: str, clock_rate: int, channels: int) -> bool:
        if name.lower() != self.name.lower():
            return False
        if self.name.lower() == "telephone-event":
            return True  # RFC 4733 events at any clock rate (8000 for G.711/G.722, 48000 opus)
        return clock_rate == self.clock_rate and channels == self.channels


# What the media side can encode/decode. G.722's RTP clock is 8000 although it samples at
# 16 kHz (RFC 3551 §4.5.2); opus is always advertised as 48000/2 (RFC 7587 §7).
CODECS: dict[str, Codec] = {
    "PCMU": Codec("PCMU", 8000, 1, 0),
    "PCMA": Codec("PCMA", 8000, 1, 8),
    "G722": Codec("G722", 8000, 1, 9),
    "opus": Codec("opus", 48000, 2, 111, "useinbandfec=1"),
    "telephone-event": Codec("telephone-event", 8000, 1, 101, "0-16"),
}
_CODECS_LOWER = {name.lower(): codec for name, codec in CODECS.items()}
# RFC 3551 §6 static payload types usable without a=rtpmap.
_STATIC_PT = {0: ("PCMU", 8000, 1), 8: ("PCMA", 8000, 1), 9: ("G722", 8000, 1)}

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_MIRROR = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}


def _codec(item: str | Codec) -> Codec:
    if isinstance(item, Codec):
        return item
    codec = _CODECS_LOWER.get(item.lower())
    if codec is None:
        raise ValueError(f"unknown codec {item!r}; known: {', '.join(CODECS)}")
    return codec


# --- the model -----------------------------------------------------------------------------


@dataclass
class Origin:
    """``o=`` (RFC 4566 §5.2)."""

    username: str = "-"
    session_id: str = "0"
    session_version: str = "0"
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass
class Connection:
    """``c=`` (RFC 4566 §5.7). ``address`` may carry ``/ttl[/count]`` for multicast."""

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    @classmethod
    def for_address(cls, address: str) -> Connection:
        return cls(address, "IP6" if ":" in address else "IP4")

    @property
    def host(self) -> str:
        return self.address.split("/", 1)[0]

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


# Field order inside a session / media section (RFC 4566 §5), for the uninterpreted lines.
_SESSION_ORDER = {k: i for i, k in enumerate("vosiuepcbtrzkam")}
_MEDIA_ORDER = {k: i for i, k in enumerate("micbka")}


@dataclass
class MediaDescription:
    """One ``m=`` section (RFC 4566 §5.14) with its ``c=``, ``a=`` and other lines."""

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    connection: Connection | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)
    """Uninterpreted lines (``i=``, ``b=``, ``k=``) as (type, value)."""

    # attribute helpers ---------------------------------------------------------------------
    def attribute(self, name: str) -> str | None:
        for n, v in self.attributes:
            if n == name:
                return v if v is not None else ""
        return None

    def attributes_named(self, name: str) -> list[str]:
        return [v if v is not None else "" for n, v in self.attributes if n == name]

    def set_attribute(self, name: str, value: str | None) -> None:
        self.attributes = [(n, v) for n, v in self.attributes if n != name]
        self.attributes.append((name, value))

    @property
    def payload_types(self) -> list[int]:
        """The formats as RTP payload type numbers (RTP profiles only)."""
        return [int(f) for f in self.formats if f.isdigit()]

    @property
    def rtpmap(self) -> dict[int, tuple[str, int, int]]:
        """pt → (encoding name, clock rate, channels); static types filled in (RFC 3551)."""
        out: dict[int, tuple[str, int, int]] = {}
        for value in self.attributes_named("rtpmap"):
            pt_text, _, desc = value.partition(" ")
            parts = desc.strip().split("/")
            if not pt_text.isdigit() or len(parts) < 2 or not parts[1].isdigit():
                continue
            channels = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 1
            out[int(pt_text)] = (parts[0], int(parts[1]), channels)
        for pt in self.payload_types:
            if pt not in out and pt in _STATIC_PT:
                out[pt] = _STATIC_PT[pt]
        return out

    @property
    def fmtp(self) -> dict[int, str]:
        out: dict[int, str] = {}
        for value in self.attributes_named("fmtp"):
            pt_text, _, params = value.partition(" ")
            if pt_text.isdigit():
                out[int(pt_text)] = params.strip()
        return out

    @property
    def ptime(self) -> int | None:
        return _int_attr(self.attribute("ptime"))

    @property
    def maxptime(self) -> int | None:
        return _int_attr(self.attribute("maxptime"))

    @property
    def direction_attribute(self) -> str | None:
        for n, _ in self.attributes:
            if n in DIRECTIONS:
                return n
        return None

    @property
    def rejected(self) -> bool:
        return self.port == 0

    def codecs(self) -> list[Codec]:
        """Every format as a Codec (unknown dynamic types without rtpmap are skipped)."""
        rtpmap = self.rtpmap
        fmtp = self.fmtp
        out = []
        for pt in self.payload_types:
            if pt in rtpmap:
                name, rate, channels = rtpmap[pt]
                out.append(Codec(name, rate, channels, pt, fmtp.get(pt)))
        return out

    def __str__(self) -> str:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        lines = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}"]
        other = sorted(self.other, key=lambda kv: _MEDIA_ORDER.get(kv[0], 4))
        lines.extend(f"{k}={v}" for k, v in other if k == "i")
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines.extend(f"{k}={v}" for k, v in other if k != "i")
        lines.extend(f"a={n}:{v}" if v is not None else f"a={n}" for n, v in self.attributes)
        return "\r\n".join(lines)


def _int_attr(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:  # RFC 4566 allows a decimal ptime such as 20.0
        return round(float(value))
    except (ValueError, OverflowError):  # "nan", "inf"
        return None


@dataclass
class SessionDescription:
    """A whole SDP body (RFC 4566 §5)."""

    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    connection: Connection | None = None
    timing: list[tuple[int, int]] = field(default_factory=lambda: [(0, 0)])
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)
    """Uninterpreted session-level lines (``i u e p b r z k``) as (type, value)."""
    version: int = 0

    @classmethod
    def parse(cls, data: str | bytes) -> SessionDescription:
        return parse_sdp(data)

    def attribute(self, name: str) -> str | None:
        for n, v in self.attributes:
            if n == name:
                return v if v is not None else ""
        return None

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """Media-level ``c=`` overrides session level (RFC 4566 §5.7)."""
        return media.connection or self.connection

    def direction(self, media: MediaDescription) -> str:
        """Media-level attribute, else session-level, else sendrecv (RFC 3264 §5.1)."""
        d = media.direction_attribute
        if d is None:
            for n, _ in self.attributes:
                if n in DIRECTIONS:
                    return n
            return "sendrecv"
        return d

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8", "surrogateescape")

    def __str__(self) -> str:
        other = sorted(self.other, key=lambda kv: _SESSION_ORDER.get(kv[0], 13))
        before_c = [f"{k}={v}" for k, v in other if k in "iuep"]
        before_t = [f"{k}={v}" for k, v in other if k == "b"]
        after_t = [f"{k}={v}" for k, v in other if k in "rzk"]
        lines = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name or '-'}"]
        lines += before_c
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines += before_t
        timing = self.timing or [(0, 0)]
        # r= lines belong after their t=; we keep them after the last one
        lines.extend(f"t={start} {stop}" for start, stop in timing)
        lines += after_t
        lines.extend(f"a={n}:{v}" if v is not None else f"a={n}" for n, v in self.attributes)
        lines.extend(str(m) for m in self.media)
        return "\r\n".join(lines) + "\r\n"


def parse_sdp(data: str | bytes) -> SessionDescription:
    """Parse an SDP body; raises SdpParseError."""
    if isinstance(data, bytes):
        text = data.decode("utf-8", "surrogateescape")
    else:
        text = data
    sdp = SessionDescription(timing=[])
    current: MediaDescription | None = None
    seen_v = False
    for raw in text.split("\n"):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SdpParseError(f"Bad SDP line {line[:40]!r}")
        kind, value = line[0], line[2:]
        if not seen_v:
            if kind != "v":
                raise SdpParseError("SDP must start with v=")
            if value.strip() != "0":
                raise SdpParseError("Unsupported SDP version")
            seen_v = True
            continue
        if kind == "m":
            current = _parse_media_line(value)
            sdp.media.append(current)
        elif kind == "a":
            name, sep, attr_value = value.partition(":")
            item = (name.strip(), attr_value if sep else None)
            if current is None:
                sdp.attributes.append(item)
            else:
                current.attributes.append(item)
        elif kind == "c":
            conn = _parse_connection(value)
            if current is None:
                sdp.connection = conn
            else:
                current.connection = conn
        elif current is not None:
            current.other.append((kind, value))
        elif kind == "o":
            parts = value.split()
            if len(parts) != 6:
                raise SdpParseError("Bad o= line")
            sdp.origin = Origin(*parts)
        elif kind == "s":
            sdp.session_name = value
        elif kind == "t":
            parts = value.split()
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                raise SdpParseError("Bad t= line")
            sdp.timing.append((int(parts[0]), int(parts[1])))
        elif kind == "v":
            raise SdpParseError("Second v= line")
        else:
            sdp.other.append((kind, value))
    if not seen_v:
        raise SdpParseError("Empty SDP")
    if not sdp.timing:
        sdp.timing = [(0, 0)]
    return sdp


def _parse_media_line(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpParseError("Bad m= line")
    media, port_text, proto = parts[0], parts[1], parts[2]
    port_s, slash, count_s = port_text.partition("/")
    if not port_s.isdigit() or int(port_s) > 65535 or (slash and not count_s.isdigit()):
        raise SdpParseError("Bad m= port")
    return MediaDescription(
        media=media,
        port=int(port_s),
        proto=proto,
        formats=parts[3:],
        port_count=int(count_s) if slash else None,
    )


def _parse_connection(value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise SdpParseError("Bad c= line")
    nettype, addrtype, address = parts
    if addrtype.upper() not in ("IP4", "IP6"):
        raise SdpParseError("Bad c= address type")
    return Connection(address, addrtype.upper(), nettype)


# --- offer / answer ------------------------------------------------------------------------


def _new_origin(address: str, username: str, session_id: str | None) -> Origin:
    sid = session_id or str(secrets.randbits(62))
    return Origin(username, sid, sid, "IN", "IP6" if ":" in address else "IP4", address)


def _find(offered: list[Codec], codec: Codec) -> list[Codec]:
    return [c for c in offered if codec.matches(c.name, c.clock_rate, c.channels)]


def negotiate(
    offer: SessionDescription,
    supported: Iterable[str | Codec],
    *,
    address: str = "0.0.0.0",
    port: int = 9,
    ptime: int | None = 20,
    direction: str = "sendrecv",
    username: str = "sipum",
    session_id: str | None = None,
    session_version: int | None = None,
    prefer: str = "offerer",
) -> SessionDescription:
    """Answer an offer (RFC 3264 §6). ``supported`` is in our order of preference.

    ``address``/``port`` are where we receive RTP (set ``answer.media[i].port`` later if the
    port is allocated after negotiation). ``direction`` is what we are able to do; the answer
    is the intersection with the mirrored offer direction. ``prefer="ours"`` picks our most
    preferred common codec instead of the offerer's first. Raises NoCommonCodec.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"bad direction {direction!r}")
    ours = [_codec(c) for c in supported]
    our_audio = [c for c in ours if c.name.lower() != "telephone-event"]
    our_events = [c for c in ours if c.name.lower() == "telephone-event"]
    answer = SessionDescription(
        origin=_new_origin(address, username, session_id),
        session_name="-",
        connection=Connection.for_address(address),
        timing=[offer.timing[0] if offer.timing else (0, 0)],
    )
    if session_version is not None:
        answer.origin.session_version = str(session_version)
    accepted = False
    for m in offer.media:
        chosen: Codec | None = None
        if not accepted and m.media == "audio" and m.proto.upper() == "RTP/AVP" and m.port != 0:
            offered = m.codecs()
            chosen = _choose(offered, our_audio, prefer)
        if chosen is None:
            # §6: a rejected stream keeps its m= line with port 0 and the offered formats
            answer.media.append(MediaDescription(m.media, 0, m.proto, list(m.formats) or ["0"]))
            continue
        accepted = True
        assert chosen.payload_type is not None
        formats = [str(chosen.payload_type)]
        codecs = [chosen]
        if our_events:
            events = _find(m.codecs(), our_events[0])
            same_rate = [e for e in events if e.clock_rate == chosen.clock_rate]
            if same_rate or events:
                event = (same_rate or events)[0]
                assert event.payload_type is not None
                formats.append(str(event.payload_type))
                codecs.append(event)
        media = MediaDescription("audio", port, m.proto, formats)
        for c in codecs:
            media.attributes.append(("rtpmap", f"{c.payload_type} {c.rtpmap}"))
            if c.fmtp:
                media.attributes.append(("fmtp", f"{c.payload_type} {c.fmtp}"))
        if ptime is not None:
            media.attributes.append(("ptime", str(ptime)))
        offered_dir = offer.direction(m)
        conn = offer.connection_for(m)
        if conn is not None and conn.host in ("0.0.0.0", "::"):
            # RFC 2543 hold (RFC 3264 §8.4): the offerer does not want to receive
            offered_dir = "sendonly" if offered_dir in ("sendrecv", "sendonly") else "inactive"
        media.attributes.append((_intersect(_MIRROR[offered_dir], direction), None))
        answer.media.append(media)
    if not accepted:
        raise NoCommonCodec("no audio stream with a common codec")
    return answer


def _choose(offered: list[Codec], ours: list[Codec], prefer: str) -> Codec | None:
    """Pick one offered codec (with the offer's payload type and fmtp)."""
    common = [c for c in offered if any(o.matches(c.name, c.clock_rate, c.channels) for o in ours)]
    if not common:
        return None
    if prefer == "ours":
        for o in ours:
            hits = _find(common, o)
            if hits:
                return hits[0]
        return None
    first = common[0]
    # Tie-break: the same codec offered under several payload types → the first one; several
    # codecs can't tie, since the offer's format order is a strict preference (RFC 3264 §5.1).
    return first


def _intersect(wanted: str, able: str) -> str:
    send = wanted in ("sendrecv", "sendonly") and able in ("sendrecv", "sendonly")
    recv = wanted in ("sendrecv", "recvonly") and able in ("sendrecv", "recvonly")
    if send and recv:
        return "sendrecv"
    if send:
        return "sendonly"
    if recv:
        return "recvonly"
    return "inactive"


def make_offer(
    supported: Iterable[str | Codec],
    *,
    address: str,
    port: int,
    ptime: int | None = 20,
    direction: str = "sendrecv",
    username: str = "sipum",
    session_id: str | None = None,
    session_version: int | None = None,
) -> SessionDescription:
    """Our offer: one audio stream listing ``supported`` in our order of preference.

    Static payload types keep their numbers; dynamic ones get their default number from
    :data:`CODECS`, moved to a free number in 96–127 if two would collide.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"bad direction {direction!r}")
    codecs: list[Codec] = []
    used: set[int] = set()
    for item in supported:
        c = _codec(item)
        pt = c.payload_type
        if pt is None or pt in used:
            pt = next(n for n in range(96, 128) if n not in used)
        used.add(pt)
        codecs.append(dataclasses.replace(c, payload_type=pt))
    if not codecs:
        raise ValueError("no codecs to offer")
    media = MediaDescription("audio", port, "RTP/AVP", [str(c.payload_type) for c in codecs])
    for c in codecs:
        media.attributes.append(("rtpmap", f"{c.payload_type} {c.rtpmap}"))
        if c.fmtp:
            media.attributes.append(("fmtp", f"{c.payload_type} {c.fmtp}"))
    if ptime is not None:
        media.attributes.append(("ptime", str(ptime)))
    media.attributes.append((direction, None))
    sdp = SessionDescription(
        origin=_new_origin(address, username, session_id),
        session_name="-",
        connection=Connection.for_address(address),
        media=[media],
    )
    if session_version is not None:
        sdp.origin.session_version = str(session_version)
    return sdp


@dataclass
class StreamChoice:
    """What the media side needs for one accepted stream after offer/answer."""

    index: int
    """Position of the m= line."""
    codec: Codec
    """The audio codec, with the agreed payload type and the peer's fmtp."""
    telephone_event: int | None
    """Payload type for RFC 4733 events, if agreed."""
    remote_address: str
    remote_port: int
    direction: str
    """Our direction: sendrecv, sendonly (we only send), recvonly or inactive."""
    ptime: int
    """Packet time to send with: the peer's a=ptime (capped by its maxptime), else 20 ms."""
    remote_rtcp_port: int | None = None


def stream_choices(local: SessionDescription, remote: SessionDescription) -> list[StreamChoice]:
    """Agreed streams once offer and answer are both known (either side may be the offerer).

    The codec is the first format in ``remote`` that ``local`` also lists (RFC 3264 §6.1 / §7:
    send with the first common format of the peer's list). Streams that are rejected or have
    nothing in common are left out.
    """
    out: list[StreamChoice] = []
    for i, (lm, rm) in enumerate(zip(local.media, remote.media, strict=False)):
        if lm.port == 0 or rm.port == 0 or lm.media != rm.media:
            continue
        local_codecs = lm.codecs()
        audio: Codec | None = None
        event: int | None = None
        for rc in rm.codecs():
            if not any(
                lc.name.lower() == rc.name.lower()
                and lc.clock_rate == rc.clock_rate
                and lc.channels == rc.channels
                for lc in local_codecs
            ):
                continue
            if rc.name.lower() == "telephone-event":
                if event is None:
                    event = rc.payload_type
            elif audio is None:
                audio = rc
        if audio is None:
            continue
        conn = remote.connection_for(rm)
        if conn is None:
            continue
        ptime = rm.ptime or 20
        if rm.maxptime:
            ptime = min(ptime, rm.maxptime)
        ptime = min(max(ptime, 10), 120)  # keep a hostile or odd value within what RTP senders do
        rtcp = _int_attr((rm.attribute("rtcp") or "").split(" ")[0] or None)
        out.append(
            StreamChoice(
                index=i,
                codec=audio,
                telephone_event=event,
                remote_address=conn.host,
                remote_port=rm.port,
                direction=_intersect(local.direction(lm), _MIRROR[remote.direction(rm)]),
                ptime=ptime,
                remote_rtcp_port=rtcp,
            )
        )
    return out
