"""The settings model: every attribute a domain sets by default and a user may override.

One table (``SETTINGS``) says, for each attribute, its type, bounds, built-in value, whether a
user row has a column for it (an administrator may then set a per-user value) and whether the
user may change it themselves (``PATCH /api/v1/settings``). ``resolve`` is the one function
that turns a user's and their domain's stored values into effective values with their source:

    effective = user's value ?? domain's value ?? built-in

``sipum.db.users.effective_settings`` (what every service calls at the moment it needs a value,
so a change counts from the next call) and ``sipum.db.users.settings_report`` (what the
settings API shows) both go through it. docs/administration.md has the table in prose; a test
checks the two agree.

Some built-ins are a service's setting rather than a constant (``builtin=None`` with
``builtin_from``): the media-recorder's ``min_voice_seconds`` for ``min_message_seconds``, say.
The effective value is then None and the service applies its own setting.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Literal

Value = int | float | bool | str | None
Source = Literal["user", "domain", "default"]


class InvalidSetting(ValueError):
    """Not a setting, or a value outside its bounds (the message says which and why)."""


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    kind: type[int] | type[float] | type[bool] | type[str]
    builtin: Value
    """The value when neither user nor domain has one (None: see ``builtin_from``)."""
    description: str
    used_by: str
    """The service that applies it (docs)."""
    per_user: bool = True
    """Users have a column for it: an administrator may set a per-user value."""
    user_may_set: bool = False
    """The user may set or clear it themselves (``/api/v1/settings``)."""
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    max_length: int | None = None
    builtin_from: str | None = None
    """When ``builtin`` is None: what applies instead (a service's setting)."""
    legacy_domain_not_null: bool = False
    """The domain column always holds a value (NOT NULL with the built-in as its DEFAULT): the
    source is "domain" or "user", never "default", and a domain's value cannot be unset."""

    def check(self, value: object) -> Value:
        """``value`` as stored, or ``InvalidSetting``. None means "no value of its own"."""
        if value is None:
            return None
        if self.kind is bool:
            if not isinstance(value, bool):
                raise InvalidSetting(f"{self.name}: true or false")
            return value
        if self.kind is int or self.kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidSetting(f"{self.name}: a number")
            if self.kind is int:
                if isinstance(value, float):
                    if not value.is_integer():
                        raise InvalidSetting(f"{self.name}: a whole number")
                    value = int(value)
            else:
                value = float(value)
            if (self.low is not None and value < self.low) or (
                self.high is not None and value > self.high
            ):
                raise InvalidSetting(f"{self.name}: {_num(self.low)} to {_num(self.high)}")
            return value
        if not isinstance(value, str):
            raise InvalidSetting(f"{self.name}: a string")
        text = value.strip()
        if self.choices:
            if text not in self.choices:
                raise InvalidSetting(f"{self.name}: one of {', '.join(self.choices)}")
            return text
        if self.max_length is not None and len(text) > self.max_length:
            raise InvalidSetting(f"{self.name}: at most {self.max_length} characters")
        check = _TEXT_CHECKS.get(self.name)
        if check is not None:
            check(self.name, text)
        return text

    def parse(self, text: str) -> Value:
        """A value typed on a command line (``20``, ``true``, ``Europe/Berlin``)."""
        text = text.strip()
        if self.kind is bool:
            if text.lower() not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
                raise InvalidSetting(f"{self.name}: true or false")
            return self.check(text.lower() in ("true", "yes", "1", "on"))
        if self.kind is int or self.kind is float:
            try:
                number: int | float = int(text) if self.kind is int else float(text)
            except ValueError:
                kind = "a whole number" if self.kind is int else "a number"
                raise InvalidSetting(f"{self.name}: {kind}") from None
            return self.check(number)
        return self.check(text)

    @property
    def bounds(self) -> str:
        """The bounds in words (docs and the settings API)."""
        if self.kind is bool:
            return "true or false"
        if self.choices:
            return ", ".join(f"`{c}`" for c in self.choices)
        if self.low is not None or self.high is not None:
            return f"{_num(self.low)}–{_num(self.high)}"
        return _TEXT_BOUNDS.get(self.name, f"text, at most {self.max_length} characters")


def _num(x: float | None) -> str:
    if x is None:
        return "…"
    return f"{int(x):,}" if float(x).is_integer() else str(x)


_LANGUAGE = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
_SIP_URI = re.compile(r"^(sip|sips|tel):[^\s<>\"]+$", re.IGNORECASE)


def _check_language(name: str, text: str) -> None:
    if not _LANGUAGE.match(text) or len(text) > 35:
        raise InvalidSetting(f"{name}: a language tag such as en-US")


def _check_time_zone(name: str, text: str) -> None:
    try:
        if not text or text.startswith("/") or ".." in text:
            raise ValueError(text)
        zoneinfo.ZoneInfo(text)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise InvalidSetting(f"{name}: an IANA time zone such as Europe/Berlin") from None


def _check_uri(name: str, text: str) -> None:
    if not _SIP_URI.match(text) or len(text) < 5:
        raise InvalidSetting(f"{name}: a sip:, sips: or tel: URI")


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


def parse_registrar(text: str) -> tuple[str, int]:
    """``host[:port]`` or a SIP URI (``sip:host[:port][;transport=udp]``) → (host, port).

    The registrar a domain's users are registered with (setting ``registrar``). Only UDP: a
    ``sips:`` URI or another transport is refused. ``ValueError`` names the problem.
    """
    rest = text.strip()
    scheme, colon, after = rest.partition(":")
    if colon and scheme.lower() in ("sip", "sips") and not after.isdigit():
        if scheme.lower() == "sips":
            raise ValueError("sips: needs TLS; the registrar-agent speaks UDP")
        rest, _, params = after.partition(";")
        for param in filter(None, params.split(";")):
            key, _, value = param.partition("=")
            if key.lower() == "transport" and value.lower() != "udp":
                raise ValueError("only transport=udp")
        if "@" in rest or "?" in rest:
            raise ValueError("a registrar URI names a host, no user part or headers")
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket:
            raise ValueError("unclosed [")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("not an IPv6 address in [ ]") from None
        port_text = tail.removeprefix(":") if tail.startswith(":") else None
        if tail and port_text is None:
            raise ValueError("junk after ]")
    else:
        host, sep, port_text_or_empty = rest.partition(":")
        port_text = port_text_or_empty if sep else None
        if not _HOSTNAME.match(host):
            raise ValueError("not a host name or address")
    port = 5060
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError("port 1 to 65535")
        port = int(port_text)
    return host, port


def _check_registrar(name: str, text: str) -> None:
    try:
        parse_registrar(text)
    except ValueError as exc:
        raise InvalidSetting(f"{name}: host[:port] or sip:host[:port] ({exc})") from None


def _check_mail_from(name: str, text: str) -> None:
    display, address = parseaddr(text)
    if (
        any(c in text for c in "\r\n")
        or address.count("@") != 1
        or address.startswith("@")
        or address.endswith("@")
        or len(text) < 3
    ):
        raise InvalidSetting(f"{name}: an address such as 'Voicemail <vm@example.com>'")


_TEXT_CHECKS = {
    "transcription_language": _check_language,
    "prompt_language": _check_language,
    "time_zone": _check_time_zone,
    "operator_uri": _check_uri,
    "mail_from": _check_mail_from,
    "registrar": _check_registrar,
}
_TEXT_BOUNDS = {
    "transcription_language": "a language tag (2–35 characters)",
    "prompt_language": "a language tag (2–35 characters)",
    "time_zone": "an IANA time zone",
    "operator_uri": "a sip:, sips: or tel: URI (≤ 256 characters)",
    "mail_from": "an e-mail address, with a display name or not (≤ 320 characters)",
    "registrar": "host[:port] or sip:host[:port] (UDP; ≤ 262 characters)",
}


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting(
            "ring_timeout_seconds", int, 10, "how long the user's phones ring before voicemail",
            "registrar-agent", user_may_set=True, low=0, high=300, legacy_domain_not_null=True,
        ),
        Setting(
            "max_message_seconds", int, 180, "longest message a caller may leave",
            "registrar-agent, media-recorder", low=1, high=3600, legacy_domain_not_null=True,
        ),
        Setting(
            "max_messages", int, 100, "messages the mailbox holds (quota)",
            "media-recorder", low=0, high=100_000, legacy_domain_not_null=True,
        ),
        Setting(
            "quota_bytes", int, 52_428_800, "bytes of audio the mailbox holds (quota)",
            "media-recorder", low=0, high=10**12, legacy_domain_not_null=True,
        ),
        Setting(
            "min_message_seconds", float, None,
            "shorter voice than this is no message (discarded)", "media-recorder",
            low=0, high=60, builtin_from="media-recorder min_voice_seconds (1 s)",
        ),
        Setting(
            "max_silence_seconds", float, None, "silence that ends a recording",
            "media-recorder", low=1, high=120,
            builtin_from="media-recorder max_silence_seconds (5 s)",
        ),
        Setting(
            "email_attaches_audio", bool, True, "notification e-mails carry the recording",
            "notifier", user_may_set=True, legacy_domain_not_null=True,
        ),
        Setting(
            "email_audio_format", str, "wav", "format of that attachment", "notifier",
            user_may_set=True, choices=("wav", "mp3"), legacy_domain_not_null=True,
        ),
        Setting(
            "delete_after_email", bool, False,
            "delete a message once its e-mail (with the audio) went out",
            "notifier (the retention sweeper of the delete-after-e-mail change)",
            user_may_set=True, legacy_domain_not_null=True,
        ),
        Setting(
            "greeting_mode", str, "auto",
            "auto: the user's uploaded greetings; system: always the built-in prompt",
            "media-recorder", user_may_set=True, choices=("auto", "system"),
        ),
        Setting(
            "prompt_language", str, None, "language (voice) of the system prompts",
            "media-recorder (the caller's greeting and review, the owner's menu)", user_may_set=True,
            max_length=35, builtin_from="the default prompt set (en)",
        ),
        Setting(
            "time_zone", str, "UTC",
            "time zone of the times in notifications and in the phone menu's envelopes",
            "notifier, media-recorder",
            user_may_set=True, max_length=64,
        ),
        Setting(
            "pin_min_length", int, 4, "fewest digits of a phone PIN", "web-api, sipum-admin",
            per_user=False, low=4, high=12,
        ),
        Setting(
            "pin_lockout_failures", int, None,
            "wrong phone PINs (across calls) that lock the mailbox's phone access",
            "media-recorder", per_user=False, low=2, high=100,
            builtin_from="media-recorder pin_lockout_failures (5)",
        ),
        Setting(
            "operator_uri", str, None, "where 0 during the greeting transfers the caller",
            "— (stored; no service transfers yet)", max_length=256,
            builtin_from="none: 0 does nothing",
        ),
        Setting(
            "urgent_allowed", bool, True,
            "a caller may mark a message urgent (key 4 in the review after recording)",
            "media-recorder", user_may_set=True,
        ),
        Setting(
            "message_order", str, "newest", "order of a folder's messages when listed",
            "web-api", user_may_set=True, choices=("newest", "oldest"),
        ),
        Setting(
            "email_notifications", bool, True, "a new message sends an e-mail (channel email)",
            "notifier", user_may_set=True,
        ),
        Setting(
            "command_notifications", bool, True,
            "a new message runs the site's notify command (channel command)", "notifier",
            user_may_set=True,
        ),
        Setting(
            "transcription_enabled", bool, True, "messages are transcribed", "transcriber",
            user_may_set=True, legacy_domain_not_null=True,
        ),
        Setting(
            "transcription_language", str, None, "language of the messages (transcription)",
            "transcriber", user_may_set=True, max_length=35,
            builtin_from="the transcriber's transcription_language (en-US)",
        ),
        Setting(
            "mail_from", str, None, "From: of the domain's notification e-mails", "notifier",
            per_user=False, max_length=320, builtin_from="the notifier's mail_from",
        ),
        Setting(
            "registrar", str, None,
            "SIP registrar the domain's voicemail contacts are registered with",
            "registrar-agent", per_user=False, max_length=262,
            builtin_from="the registrar-agent's registrar",
        ),
    )
}  # fmt: skip

#: Columns of ``domains`` (every setting).
DOMAIN_COLUMNS: tuple[str, ...] = tuple(SETTINGS)
#: Columns of ``users`` (the per-user ones).
USER_COLUMNS: tuple[str, ...] = tuple(s.name for s in SETTINGS.values() if s.per_user)
#: What a user may change themselves.
USER_SETTABLE: tuple[str, ...] = tuple(s.name for s in SETTINGS.values() if s.user_may_set)


@dataclass(frozen=True, slots=True)
class Resolved:
    """One setting as it applies to one user."""

    setting: Setting
    value: Value
    source: Source
    default: Value
    """What applies without the user's value: the domain's, else the built-in."""

    @property
    def name(self) -> str:
        return self.setting.name


def spec(name: str) -> Setting:
    found = SETTINGS.get(name)
    if found is None:
        raise InvalidSetting(f"not a setting: {name}")
    return found


def check_values(values: Mapping[str, object], *, allowed: tuple[str, ...]) -> dict[str, Value]:
    """Every value checked against its bounds; names outside ``allowed`` are refused."""
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise InvalidSetting(f"not a setting here: {', '.join(unknown)}")
    return {name: spec(name).check(value) for name, value in values.items()}


def resolve(
    user_values: Mapping[str, Value], domain_values: Mapping[str, Value]
) -> dict[str, Resolved]:
    """Effective values with their source: user ?? domain ?? built-in, for every setting."""
    out: dict[str, Resolved] = {}
    for name, s in SETTINGS.items():
        domain_value = domain_values.get(name)
        default = s.builtin if domain_value is None else domain_value
        default_source: Source = "default" if domain_value is None else "domain"
        user_value = user_values.get(name) if s.per_user else None
        if user_value is not None:
            out[name] = Resolved(s, user_value, "user", default)
        else:
            out[name] = Resolved(s, default, default_source, default)
    return out


__all__ = [
    "DOMAIN_COLUMNS", "InvalidSetting", "Resolved", "SETTINGS", "Setting", "Source",
    "USER_COLUMNS", "USER_SETTABLE", "Value", "check_values", "parse_registrar", "resolve",
    "spec",
]  # fmt: skip
