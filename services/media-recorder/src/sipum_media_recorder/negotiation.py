"""The SDP answer of one media session (RFC 3264 offer/answer on ``sipum_protocol.sip.sdp``).

Two steps, so that an offer we cannot serve is refused before a port is taken:
:func:`answer_offer` negotiates (raising ``RemoteError("unsupported")`` → the agent's 488, or
``RemoteError("bad_request")`` for SDP it cannot read), then :meth:`Negotiated.with_port`
writes the port the pool handed out into the answer and says what the RTP endpoint needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from sipum.events import RemoteError
from sipum_protocol.media.codecs import CodecInfo, codec_info
from sipum_protocol.sip.sdp import (
    NoCommonCodec,
    SdpParseError,
    SessionDescription,
    StreamChoice,
    negotiate,
    stream_choices,
)

#: What the recorder can decode and encode, in our order (the offerer's order decides, RFC 3264
#: §6.1); telephone-event (RFC 4733) is accepted next to whichever codec is chosen.
SUPPORTED_CODECS: tuple[str, ...] = ("PCMU", "PCMA", "G722", "opus", "telephone-event")


@dataclass(frozen=True)
class MediaPlan:
    """What the RTP endpoint of a session needs, from the agreed offer/answer."""

    codec: CodecInfo
    payload_type: int
    telephone_event_pt: int | None
    remote: tuple[str, int] | None
    remote_rtcp: tuple[str, int] | None
    ptime: float
    answer_sdp: str


@dataclass
class Negotiated:
    offer: SessionDescription
    answer: SessionDescription

    def with_port(self, port: int) -> MediaPlan:
        """Put our RTP *port* in the answer; the endpoint's parameters."""
        for media in self.answer.media:
            if media.port != 0:
                media.port = port
        choices = stream_choices(self.answer, self.offer)
        if not choices:  # negotiate() accepted a stream, so this cannot happen
            raise RemoteError("unsupported", "no usable audio stream in the offer")
        choice: StreamChoice = choices[0]
        info = codec_info(choice.codec.name)
        remote: tuple[str, int] | None = (choice.remote_address, choice.remote_port)
        rtcp_port = choice.remote_rtcp_port or choice.remote_port + 1
        remote_rtcp: tuple[str, int] | None = (choice.remote_address, rtcp_port)
        if choice.remote_address in ("0.0.0.0", "::"):
            # RFC 3264 §8.4 hold address: wait for the caller's first packet (symmetric RTP)
            remote = remote_rtcp = None
        assert choice.codec.payload_type is not None
        return MediaPlan(
            codec=info,
            payload_type=choice.codec.payload_type,
            telephone_event_pt=choice.telephone_event,
            remote=remote,
            remote_rtcp=remote_rtcp,
            ptime=choice.ptime / 1000,
            answer_sdp=str(self.answer),
        )


def answer_offer(offer_sdp: str, *, address: str) -> Negotiated:
    """Negotiate *offer_sdp*; raises ``RemoteError`` with code ``unsupported`` (no common codec)
    or ``bad_request`` (unreadable SDP)."""
    try:
        offer = SessionDescription.parse(offer_sdp)
    except SdpParseError as exc:
        raise RemoteError("bad_request", f"cannot read the SDP offer: {exc}") from exc
    try:
        answer = negotiate(
            offer,
            SUPPORTED_CODECS,
            address=address,
            port=9,
            ptime=20,
            username="sipum",
        )
    except NoCommonCodec as exc:
        offered = sorted(
            {c.name for m in offer.media for c in m.codecs()}
            | {f for m in offer.media for f in m.formats}
        )
        raise RemoteError(
            "unsupported",
            f"no common codec in the offer (offered {', '.join(offered) or 'nothing'}; "
            f"we take {', '.join(SUPPORTED_CODECS[:-1])})",
        ) from exc
    return Negotiated(offer, answer)
