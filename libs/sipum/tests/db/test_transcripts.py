"""Transcripts on a real PostgreSQL: one per message, gone with it, searchable by stem, and the
transcription settings of domains and users."""

from __future__ import annotations

import asyncpg
from sipum.accounts import admin
from sipum.db import domains, messages, transcripts, users
from sipum.db.transcripts import Word


async def _message(pool: asyncpg.Pool, owner: users.User, key: str) -> messages.Message:
    message, _ = await messages.insert_idempotent(
        pool,
        owner_id=owner.id,
        idempotency_key=key,
        caller_uri="sip:carol@example.net",
        called_uri=f"sip:{owner.address}",
        duration_ms=2000,
        codec="PCMU",
        size_bytes=32044,
        blob_key=f"messages/{owner.address}/{key}.wav",
    )
    return message


async def _store(pool: asyncpg.Pool, message_id: int, text: str, language: str = "en-US") -> bool:
    words = [Word(w, i * 0.5, i * 0.5 + 0.4, 0.9) for i, w in enumerate(text.split())]
    return await transcripts.store(
        pool,
        message_id,
        language=language,
        text=text,
        confidence=0.9,
        words=words,
        engine="test",
        engine_version="1",
        elapsed_ms=12,
    )


async def test_one_transcript_per_message_deleted_with_it(pg_pool: asyncpg.Pool) -> None:
    await domains.ensure(pg_pool, "example.com")
    alice = await users.create(pg_pool, "alice", "example.com", "alice password")
    message = await _message(pg_pool, alice, "m1")
    assert await _store(pg_pool, message.id, "please call me back")
    assert not await _store(pg_pool, message.id, "something else")  # a redelivery writes nothing
    stored = await transcripts.get(pg_pool, message.id)
    assert stored is not None and stored.text == "please call me back"
    assert stored.words[1] == Word("call", 0.5, 0.9, 0.9)
    assert "call" not in repr(stored)
    await messages.delete(pg_pool, alice.id, message.id)
    assert await transcripts.get(pg_pool, message.id) is None
    assert not await _store(pg_pool, message.id, "too late")  # the message is gone


async def test_search_is_stemmed_and_per_mailbox(pg_pool: asyncpg.Pool) -> None:
    await domains.ensure(pg_pool, "example.com")
    alice = await users.create(pg_pool, "alice", "example.com", "alice password")
    bob = await users.create(pg_pool, "bob", "example.com", "bob password")
    meeting = await _message(pg_pool, alice, "a1")
    report = await _message(pg_pool, alice, "a2")
    bobs = await _message(pg_pool, bob, "b1")
    german = await _message(pg_pool, alice, "a3")
    await _store(pg_pool, meeting.id, "the meeting has been moved to next week")
    await _store(pg_pool, report.id, "can you send me the report today")
    await _store(pg_pool, bobs.id, "the meetings are cancelled")
    await _store(pg_pool, german.id, "wir treffen uns in den Häusern", language="de-DE")
    assert await transcripts.search(pg_pool, alice.id, "meetings") == [meeting.id]
    assert await transcripts.search(pg_pool, alice.id, '"next week"') == [meeting.id]
    assert await transcripts.search(pg_pool, alice.id, "report or meeting") == sorted(
        [meeting.id, report.id], reverse=True
    )
    assert await transcripts.search(pg_pool, alice.id, "meeting -week") == []
    assert await transcripts.search(pg_pool, bob.id, "meeting") == [bobs.id]
    # German stemming for a German transcript: "Häuser" finds "Häusern"
    assert await transcripts.search(pg_pool, alice.id, "Häuser", language="de") == [german.id]


async def test_transcription_settings_domain_default_user_override(pg_pool: asyncpg.Pool) -> None:
    domain = await domains.ensure(pg_pool, "example.com")
    assert domain.transcription_enabled and domain.transcription_language is None
    alice = await users.create(pg_pool, "alice", "example.com", "alice password")
    effective = await users.effective_settings(pg_pool, alice.id)
    assert effective is not None
    assert effective.transcription_enabled and effective.transcription_language is None
    await domains.update(
        pg_pool, domain.id, transcription_enabled=False, transcription_language="de-DE"
    )
    effective = await users.effective_settings(pg_pool, alice.id)
    assert effective is not None
    assert not effective.transcription_enabled and effective.transcription_language == "de-DE"
    await users.update(
        pg_pool, alice.id, transcription_enabled=True, transcription_language="en-GB"
    )
    effective = await users.effective_settings(pg_pool, alice.id)
    assert effective is not None
    assert effective.transcription_enabled and effective.transcription_language == "en-GB"
    user = await users.get(pg_pool, alice.id)
    assert user is not None and user.transcription_enabled is True
    # the administrator's command line takes them like the other settings
    assert admin.parse_setting("transcription_enabled=no") == ("transcription_enabled", False)
    assert admin.parse_setting("transcription_language=fr-FR") == (
        "transcription_language",
        "fr-FR",
    )
    assert admin.parse_setting("transcription_language=default") == ("transcription_language", None)
