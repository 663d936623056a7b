"""Message URLs: ``rtsp://host:port/<user>/<folder>/<id>.<wav|au>[/trackID=0][?token=…]``.

``<user>`` is the mailbox owner's user name (the default domain) or ``user@domain``
(percent-encoded ``@`` accepted). The token, when present, is a signed playback token
(:mod:`sipum.security.tokens`) from the notification e-mail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from sipum_protocol.rtsp.describe import TRACK_CONTROL

FOLDERS = ("inbox", "saved", "trash")
EXTENSIONS = ("wav", "au")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._+-]{0,63}$")
_DOMAIN = re.compile(r"^[a-z0-9.-]{1,253}$")


class BadMessageUrl(ValueError):
    """Not a message URL (→ 404)."""


@dataclass(frozen=True)
class MessageUrl:
    username: str
    domain: str | None
    folder: str
    message_id: int
    extension: str
    track: bool
    token: str | None

    @property
    def aggregate_path(self) -> str:
        """Path of the presentation, without track, for comparisons and Content-Base."""
        owner = self.username if self.domain is None else f"{self.username}@{self.domain}"
        return f"/{owner}/{self.folder}/{self.message_id}.{self.extension}"


def parse_message_url(url: str) -> MessageUrl:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise BadMessageUrl("malformed URL") from None
    if parts.scheme.lower() not in ("rtsp", "rtspu", "") or len(url) > 2048:
        raise BadMessageUrl("not an rtsp URL")
    segments = parts.path.split("/")[1:]
    track = bool(segments) and segments[-1] == TRACK_CONTROL
    if track:
        segments = segments[:-1]
    if segments and segments[-1] == "":
        segments = segments[:-1]  # Content-Base style trailing slash
    if len(segments) != 3:
        raise BadMessageUrl("expected /<user>/<folder>/<id>.<ext>")
    owner, folder, leaf = (unquote(s) for s in segments)
    username, _, domain = owner.lower().partition("@")
    if not _NAME.match(username) or (domain and not _DOMAIN.match(domain)):
        raise BadMessageUrl("malformed user")
    if folder not in FOLDERS:
        raise BadMessageUrl("unknown folder")
    stem, dot, extension = leaf.rpartition(".")
    if not dot or extension.lower() not in EXTENSIONS or not stem.isdigit() or len(stem) > 18:
        raise BadMessageUrl("expected <id>.wav or <id>.au")
    tokens = parse_qs(parts.query).get("token")
    return MessageUrl(
        username=username,
        domain=domain or None,
        folder=folder,
        message_id=int(stem),
        extension=extension.lower(),
        track=track,
        token=tokens[0] if tokens else None,
    )


def content_base(url: str) -> str:
    """The presentation URL with a trailing slash and without query (``Content-Base``)."""
    parts = urlsplit(url)
    path = parts.path
    if path.endswith("/" + TRACK_CONTROL):
        path = path[: -len(TRACK_CONTROL) - 1]
    if not path.endswith("/"):
        path += "/"
    return f"{parts.scheme}://{parts.netloc}{path}"
