"""How a composed e-mail leaves the notifier: SMTP (default) or a local sendmail (``-m``).

The old sipum piped its mails to ``sendmail``; deployments with a local MTA (Postfix, Exim,
msmtp, nullmailer) still want that. Both transports take the same ``EmailMessage``; a failure of
either is ``MailTransportError``, which the service turns into a retry with back-off.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from sipum_notifier.process import ProgramTimeout, run_program
from sipum_notifier.settings import NotifierSettings


class MailTransportError(Exception):
    """The mail was not accepted; the message says why (no secrets, at most 300 characters)."""


class MailTransport(Protocol):
    name: str

    async def send(self, mail: EmailMessage) -> None: ...


class SmtpTransport:
    name = "smtp"

    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings

    async def send(self, mail: EmailMessage) -> None:
        s = self.settings
        try:
            await aiosmtplib.send(
                mail,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                start_tls=s.smtp_starttls,
                timeout=s.smtp_timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailTransportError(str(exc)[:300]) from exc


class SendmailTransport:
    """``sendmail -t -i``: recipients from the To header (``-t``), a line with a lone dot is
    mail text, not its end (``-i``) — the interface every MTA's sendmail offers."""

    name = "sendmail"

    def __init__(self, settings: NotifierSettings) -> None:
        self.path = settings.sendmail_path
        self.timeout = settings.smtp_timeout

    async def send(self, mail: EmailMessage) -> None:
        try:
            finished = await run_program(
                [self.path, "-t", "-i"],
                stdin=mail.as_bytes(),
                env=None,
                time_limit=self.timeout,
                output_limit=4096,
            )
        except (OSError, ProgramTimeout) as exc:
            raise MailTransportError(f"{self.path}: {exc}"[:300]) from exc
        if finished.returncode != 0:
            said = finished.stderr.decode("utf-8", "replace").strip().splitlines()
            raise MailTransportError(
                f"{self.path} exited with {finished.returncode}: {said[-1] if said else ''}"[:300]
            )


def mail_transport(settings: NotifierSettings) -> MailTransport:
    if settings.mail_transport == "sendmail":
        return SendmailTransport(settings)
    return SmtpTransport(settings)
