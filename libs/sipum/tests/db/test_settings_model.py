"""The settings model: one table, one resolving function, its bounds, its documentation, and
on a real PostgreSQL the effective values with their sources."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import pytest
from sipum.accounts import admin
from sipum.db import domains, settings, users
from sipum.db.settings import SETTINGS, InvalidSetting, resolve
from sipum.security.passwords import WeakSecretError

ROOT = Path(__file__).resolve().parents[4]


def test_resolve_user_then_domain_then_builtin() -> None:
    got = resolve(
        {"ring_timeout_seconds": 20, "time_zone": None, "pin_min_length": 9},
        {"ring_timeout_seconds": 5, "time_zone": "Europe/Berlin", "greeting_mode": None},
    )
    assert (got["ring_timeout_seconds"].value, got["ring_timeout_seconds"].source) == (20, "user")
    assert got["ring_timeout_seconds"].default == 5
    assert (got["time_zone"].value, got["time_zone"].source) == ("Europe/Berlin", "domain")
    assert (got["greeting_mode"].value, got["greeting_mode"].source) == ("auto", "default")
    # a domain-only setting ignores a user value even if one were passed
    assert (got["pin_min_length"].value, got["pin_min_length"].source) == (4, "default")
    assert set(got) == set(SETTINGS)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("ring_timeout_seconds", 301, "0 to 300"),
        ("ring_timeout_seconds", -1, "0 to 300"),
        ("ring_timeout_seconds", True, "a number"),
        ("ring_timeout_seconds", 2.5, "whole number"),
        ("ring_timeout_seconds", "20", "a number"),
        ("max_silence_seconds", 0.5, "1 to 120"),
        ("email_audio_format", "ogg", "one of wav, mp3"),
        ("email_attaches_audio", 1, "true or false"),
        ("time_zone", "Mars/Olympus", "IANA"),
        ("time_zone", "../../etc/passwd", "IANA"),
        ("operator_uri", "http://x", "sip:"),
        ("mail_from", "vm@example.com\r\nBcc: x@evil", "address"),
        ("mail_from", "nobody", "address"),
        ("prompt_language", "en_US!", "language tag"),
        ("greeting_mode", "loud", "auto, system"),
        ("registrar", "sips:kam.example", "UDP"),
        ("registrar", "sip:kam.example;transport=tcp", "transport=udp"),
        ("registrar", "sip:alice@kam.example", "no user part"),
        ("registrar", "kam.example:0", "port 1 to 65535"),
        ("registrar", "kam.example:99999", "port 1 to 65535"),
        ("registrar", "kam example", "host name"),
        ("registrar", "[::1", "unclosed"),
    ],
)
def test_bounds(name: str, value: object, problem: str) -> None:
    with pytest.raises(InvalidSetting, match=re.escape(problem)):
        SETTINGS[name].check(value)


def test_values_within_bounds_are_normalised() -> None:
    assert SETTINGS["ring_timeout_seconds"].check(20.0) == 20
    assert SETTINGS["min_message_seconds"].check(2) == 2.0
    assert SETTINGS["time_zone"].check(" Europe/Berlin ") == "Europe/Berlin"
    assert SETTINGS["mail_from"].check("Voicemail <vm@voice.example>") == (
        "Voicemail <vm@voice.example>"
    )
    assert SETTINGS["operator_uri"].check("sip:operator@example.com") == "sip:operator@example.com"
    assert SETTINGS["email_notifications"].parse("off") is False
    assert SETTINGS["registrar"].check(" kam.example:5080 ") == "kam.example:5080"
    assert settings.parse_registrar("kam.example") == ("kam.example", 5060)
    assert settings.parse_registrar("10.0.0.7:5080") == ("10.0.0.7", 5080)
    assert settings.parse_registrar("[::1]:5062") == ("::1", 5062)
    assert settings.parse_registrar("sip:kam.example:5070;transport=UDP") == ("kam.example", 5070)
    assert settings.parse_registrar("SIP:kam.example") == ("kam.example", 5060)
    with pytest.raises(InvalidSetting, match="not a setting here: pin_min_length"):
        settings.check_values({"pin_min_length": 6}, allowed=settings.USER_COLUMNS)


def test_one_field_per_setting_in_the_records() -> None:
    from dataclasses import fields

    assert {f.name for f in fields(users.EffectiveSettings)} == {"user_id", *SETTINGS}
    assert set(SETTINGS) <= {f.name for f in fields(domains.Domain)}
    assert set(settings.USER_COLUMNS) <= {f.name for f in fields(users.User)}


def test_the_documented_table_is_the_model() -> None:
    """docs/administration.md lists every setting once, with who may change it and its bounds."""
    text = (ROOT / "docs" / "administration.md").read_text()
    section = text[text.index("## The settings") : text.index("## The admin REST API")]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"^\| `([a-z_]+)` \| ([^|]*) \| ([^|]*) \| ([^|]*) \| ([^|]*) \|", line)
        if m:
            rows[m.group(1)] = m.groups()[1:]
    assert set(rows) == set(SETTINGS)
    for name, (_what, _builtin, who, bounds) in rows.items():
        s = SETTINGS[name]
        assert ("**yes**" in who) == s.user_may_set, name
        assert ("domain only" in who) == (not s.per_user), name
        assert bounds.strip() == s.bounds, name


def test_no_service_reads_the_setting_columns_itself() -> None:
    """Services go through ``users.effective_settings``: no SQL of theirs names a setting
    column of ``users``/``domains``."""
    columns = "|".join(SETTINGS)
    pattern = re.compile(rf"\b(u|d|users|domains)\.({columns})\b")
    offenders = []
    for path in (ROOT / "services").glob("*/src/**/*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


async def test_effective_values_and_sources(pg_pool: asyncpg.Pool) -> None:
    await admin.create_domain(pg_pool, "voice.example", ring_timeout_seconds=5)
    carol = await users.create(pg_pool, "carol", "voice.example", "carol password")
    got = await users.settings_report(pg_pool, carol.id)
    assert got is not None
    assert (got["ring_timeout_seconds"].value, got["ring_timeout_seconds"].source) == (5, "domain")
    assert (got["time_zone"].value, got["time_zone"].source) == ("UTC", "default")
    assert (got["min_message_seconds"].value, got["min_message_seconds"].source) == (
        None,
        "default",
    )

    await users.update(pg_pool, carol.id, ring_timeout_seconds=20, time_zone="Europe/Berlin")
    await domains.update(pg_pool, carol.domain_id, min_message_seconds=2.5, mail_from="v@x.example")
    effective = await users.effective_settings(pg_pool, carol.id)
    assert effective is not None
    assert effective.ring_timeout_seconds == 20
    assert effective.time_zone == "Europe/Berlin"
    assert effective.min_message_seconds == 2.5
    assert effective.mail_from == "v@x.example"
    assert effective.greeting_mode == "auto" and effective.email_notifications is True
    got = await users.settings_report(pg_pool, carol.id)
    assert got is not None
    assert got["ring_timeout_seconds"].source == "user"
    assert got["ring_timeout_seconds"].default == 5
    assert got["min_message_seconds"].source == "domain"

    # back to the domain's, then the domain's back to the built-in
    await users.update(pg_pool, carol.id, ring_timeout_seconds=None)
    await domains.update(pg_pool, carol.domain_id, min_message_seconds=None)
    effective = await users.effective_settings(pg_pool, carol.id)
    assert effective is not None
    assert effective.ring_timeout_seconds == 5 and effective.min_message_seconds is None


async def test_sql_view_agrees_with_the_function(pg_pool: asyncpg.Pool) -> None:
    await domains.ensure(pg_pool, "example.com")
    a = await users.create(pg_pool, "a", "example.com", "a password", quota_bytes=1000)
    b = await users.create(pg_pool, "b", "example.com", "b password")
    for user in (a, b):
        row = await pg_pool.fetchrow(
            "SELECT * FROM user_effective_settings WHERE user_id = $1", user.id
        )
        effective = await users.effective_settings(pg_pool, user.id)
        assert effective is not None
        for column in row.keys():
            if column in SETTINGS:
                assert row[column] == getattr(effective, column), column


async def test_admin_layer_checks_bounds_and_scope(pg_pool: asyncpg.Pool) -> None:
    await domains.ensure(pg_pool, "example.com")
    with pytest.raises(admin.Invalid, match="0 to 300"):
        await admin.update_domain(pg_pool, "example.com", ring_timeout_seconds=301)
    with pytest.raises(admin.Invalid, match="always has a value"):
        await admin.update_domain(pg_pool, "example.com", ring_timeout_seconds=None)
    with pytest.raises(admin.Invalid, match="IANA"):
        await admin.create_domain(pg_pool, "tz.example", time_zone="Nowhere/City")
    assert await domains.get_by_name(pg_pool, "tz.example") is None
    with pytest.raises(admin.Invalid, match="pin_min_length"):
        await admin.create_user(
            pg_pool, _NoBus(), "dave@example.com", "dave password", pin_min_length=6
        )
    assert admin.parse_setting("time_zone=Europe/Paris") == ("time_zone", "Europe/Paris")
    assert admin.parse_setting("min_message_seconds=1.5") == ("min_message_seconds", 1.5)
    with pytest.raises(admin.Invalid, match="1 to 120"):
        admin.parse_setting("max_silence_seconds=0")


async def test_pin_min_length_is_the_domains_policy(pg_pool: asyncpg.Pool) -> None:
    domain = await domains.ensure(pg_pool, "example.com")
    await domains.update(pg_pool, domain.id, pin_min_length=6)
    with pytest.raises(WeakSecretError, match="at least 6"):
        await users.create(pg_pool, "eve", "example.com", "eve password", pin="3817")
    eve = await users.create(pg_pool, "eve", "example.com", "eve password", pin="381729")
    with pytest.raises(WeakSecretError, match="at least 6"):
        await users.set_pin(pg_pool, eve.id, "38172")
    assert await users.set_pin(pg_pool, eve.id, "729381")
    assert await users.verify_pin(pg_pool, eve.id, "729381")


class _NoBus:
    """Never reached: the bounds are checked before anything is stored or published."""

    async def publish(self, event: object) -> None:
        raise AssertionError("published")
