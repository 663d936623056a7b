"""Composing the notification e-mail from the template (the old sipum ``email.tmp`` idea).

The template is Jinja2 text whose first line is ``Subject: …``; the rest is the plain-text
body. Autoescaping is off (plain text), and every value put in is ours or sanitised: caller
display names come from SIP headers, so control characters are stripped before they can reach
the Subject header.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from importlib import resources
from pathlib import Path

import jinja2
from sipum.errors import ConfigError

from sipum_notifier.audio import Attachment


def _clean(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable()).strip()


def format_duration(seconds: float) -> str:
    total = max(0, round(seconds))
    return f"{total // 60}:{total % 60:02d}" if total >= 60 else f"{total} s"


def load_template(path: str | None) -> jinja2.Template:
    if path is None:
        text = resources.files("sipum_notifier").joinpath("templates/email.tmp").read_text("utf-8")
    else:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError("email_template", f"cannot read {path}: {exc.strerror}") from None
    env = jinja2.Environment(
        autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
    try:
        template = env.from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError("email_template", f"line {exc.lineno}: {exc.message}") from None
    if not text.startswith("Subject:"):
        raise ConfigError("email_template", "the first line must be 'Subject: …'")
    return template


@dataclass(frozen=True)
class MailContent:
    username: str
    domain: str
    display_name: str
    caller: str
    received: datetime
    duration_s: float
    web_url: str
    rtsp_url: str
    sip_uri: str
    links_expire: datetime
    message_id: int
    transcript: str | None = None
    """The transcript's text (machine-made, the caller's words), or None."""
    interrupted: bool = False
    """The call was cut off by a failure on our side (recovered recording)."""
    urgent: bool = False
    """The caller marked the message urgent (subject "Urgent voicemail …", Importance: high)."""


def _transcript_lines(text: str | None) -> str | None:
    """The transcript as wrapped plain-text lines (no control characters), or None."""
    if text is None:
        return None
    words = " ".join(_clean(part) for part in text.split())
    return textwrap.fill(words, width=72) if words else None


def compose(
    template: jinja2.Template,
    content: MailContent,
    *,
    sender: str,
    recipient: str,
    attachment: Attachment | None = None,
    attachment_too_large: bool = False,
    deleted_at: datetime | None = None,
) -> EmailMessage:
    """The mail for one message; ``attachment_too_large`` says the audio was left out because
    it exceeded the size cap (the template tells the user to use the links); ``deleted_at``
    that the server deletes the message then (delete after e-mail: the attachment is the
    user's copy)."""
    extension = attachment.extension if attachment is not None else "wav"
    attachment_name = f"voicemail-{content.message_id}.{extension}"
    rendered = template.render(
        username=content.username,
        domain=content.domain,
        display_name=_clean(content.display_name),
        caller=_clean(content.caller) or "unknown caller",
        received=content.received.strftime("%Y-%m-%d %H:%M %Z").strip(),
        duration=format_duration(content.duration_s),
        web_url=content.web_url,
        rtsp_url=content.rtsp_url,
        sip_uri=content.sip_uri,
        links_expire=content.links_expire.strftime("%Y-%m-%d %H:%M %Z").strip(),
        attached=attachment is not None,
        attachment_name=attachment_name,
        attachment_too_large=attachment_too_large,
        deleted_after=(
            None if deleted_at is None else deleted_at.strftime("%Y-%m-%d %H:%M %Z").strip()
        ),
        transcript=_transcript_lines(content.transcript),
        interrupted=content.interrupted,
        urgent=content.urgent,
    )
    first, _, body = rendered.partition("\n")
    mail = EmailMessage()
    mail["Subject"] = _clean(first.removeprefix("Subject:"))
    mail["From"] = sender
    mail["To"] = recipient
    mail["Date"] = format_datetime(content.received)
    # A stable Message-ID per voicemail: even a duplicate that slips through is one thread.
    mail["Message-ID"] = f"<sipum.voicemail.{content.message_id}@{content.domain}>"
    mail["X-Sipum-Message-Id"] = str(content.message_id)
    if content.urgent:
        mail["Importance"] = "high"  # RFC 2156; most mail clients flag it
        mail["X-Priority"] = "1"
    mail.set_content(body.lstrip("\n"))
    if attachment is not None:
        mail.add_attachment(
            attachment.data, maintype="audio", subtype=attachment.subtype, filename=attachment_name
        )
    return mail
