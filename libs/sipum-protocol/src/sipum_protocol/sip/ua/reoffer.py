"""Answering a new offer inside an established session (re-INVITE / UPDATE, RFC 3264 §8).

The media side answered the first offer; later offers mostly change the direction (hold,
RFC 3264 §8.4) or just refresh the session. The default answer keeps our media exactly as
last sent (same address, port and codecs), increments the ``o=`` version (§8: a changed
description gets a higher version) and mirrors the offered direction per media stream:
``sendonly`` -> ``recvonly``, ``recvonly`` -> ``sendonly``, ``inactive`` -> ``inactive``,
``sendrecv`` -> ``sendrecv`` (§6.1). When none of our codecs is in the offer the re-offer is
refused with 488 and the session stays as it was (RFC 3261 §14.2).

Works on SDP text lines only, so it keeps everything else the media side wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_MIRROR = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}
# RFC 3551 static payload types we may meet without an rtpmap line.
_STATIC = {"0": "pcmu", "3": "gsm", "4": "g723", "8": "pcma", "9": "g722", "18": "g729"}


class NotAcceptableOffer(ValueError):
    """The offer has nothing in common with our session (answered with 488)."""


@dataclass
class _Media:
    kind: str
    port: int
    codecs: set[str]
    direction: str
    held_by_address: bool = False
    """``c=IN IP4 0.0.0.0``: the RFC 2543 way of putting a call on hold (RFC 3264 §8.4)."""

    @property
    def effective_direction(self) -> str:
        if self.port == 0:
            return "inactive"
        if self.held_by_address:
            return "sendonly" if self.direction in ("sendrecv", "sendonly") else "inactive"
        return self.direction


def _lines(sdp: bytes) -> list[str]:
    return [
        line for line in sdp.decode("utf-8", "replace").replace("\r\n", "\n").split("\n") if line
    ]


def _media_sections(lines: list[str]) -> tuple[str, list[_Media]]:
    """Session-level direction and, per m= line, its kind, port, codec names and direction."""
    session_direction = "sendrecv"
    session_held = False
    media: list[_Media] = []
    rtpmaps: dict[str, str] = {}
    formats: list[str] = []
    for line in lines:
        if line.startswith("m="):
            if media:
                media[-1].codecs = _codec_names(formats, rtpmaps)
            parts = line[2:].split()
            if len(parts) < 3 or not parts[1].split("/")[0].isdigit():
                raise NotAcceptableOffer("malformed m= line")
            formats = parts[3:]
            rtpmaps = {}
            media.append(
                _Media(
                    parts[0],
                    int(parts[1].split("/")[0]),
                    set(),
                    session_direction,
                    session_held,
                )
            )
        elif line.startswith("c="):
            held = line.split()[-1] in ("0.0.0.0", "::")
            if media:
                media[-1].held_by_address = held
            else:
                session_held = held
        elif line.startswith("a="):
            attr = line[2:].strip()
            if attr in DIRECTIONS:
                if media:
                    media[-1].direction = attr
                else:
                    session_direction = attr
            elif attr.startswith("rtpmap:") and media:
                pt, _, rest = attr[7:].partition(" ")
                rtpmaps[pt] = rest.split("/")[0].strip().lower()
    if media:
        media[-1].codecs = _codec_names(formats, rtpmaps)
    return session_direction, media


def _codec_names(formats: list[str], rtpmaps: dict[str, str]) -> set[str]:
    names = set()
    for pt in formats:
        name = rtpmaps.get(pt) or _STATIC.get(pt)
        if name and name not in ("telephone-event", "cn"):
            names.add(name)
    return names


def offer_direction(offer: bytes) -> str:
    """The direction of the first audio stream of an offer (``sendrecv`` by default; a port 0
    stream counts as ``inactive``)."""
    _session, media = _media_sections(_lines(offer))
    for m in media:
        if m.kind == "audio":
            return m.effective_direction
    return "sendrecv"


def answer_reoffer(local_sdp: bytes, offer: bytes) -> bytes:
    """Our answer to ``offer`` given our last description ``local_sdp`` (see module doc)."""
    local_lines = _lines(local_sdp)
    _ls, ours = _media_sections(local_lines)
    _os, theirs = _media_sections(_lines(offer))
    if not theirs:
        raise NotAcceptableOffer("offer without media")
    if len(theirs) < len(ours):
        # §8: streams can be added, never removed from an offer.
        raise NotAcceptableOffer("offer drops media streams")
    usable = False
    for mine, offered in zip(ours, theirs, strict=False):
        if offered.port == 0:
            continue
        if mine.kind == offered.kind and mine.codecs & offered.codecs:
            usable = True
    if not usable:
        raise NotAcceptableOffer("no common codec")
    out: list[str] = []
    index = -1

    def close_media() -> None:
        # The direction goes last in its media section (a= lines follow c=, RFC 4566 §5).
        if index < 0:
            return
        offered = theirs[index] if index < len(theirs) else None
        direction = "sendrecv" if offered is None else offered.effective_direction
        out.append(f"a={_MIRROR[direction]}")

    for line in local_lines:
        if line.startswith("o="):
            parts = line.split()
            if len(parts) >= 3 and parts[2].isdigit():
                parts[2] = str(int(parts[2]) + 1)
            out.append(" ".join(parts))
            continue
        if line.startswith("a=") and line[2:].strip() in DIRECTIONS:
            continue  # rewritten per media section
        if line.startswith("m="):
            close_media()
            index += 1
        out.append(line)
    close_media()
    # §6: an answer has as many m= lines as the offer; streams we do not know are refused
    # with port 0.
    for extra in theirs[len(ours) :]:
        out.append(f"m={extra.kind} 0 RTP/AVP 0")
    return ("\r\n".join(out) + "\r\n").encode()
