"""The transcriber service on real NATS JetStream and PostgreSQL, with the real default
engine on known speech."""

from __future__ import annotations

from typing import Any

import pytest
from sipum.db import messages, transcripts, users
from sipum.events import stable_event_id
from sipum_testing.speech import SENTENCES
from sipum_transcriber.worker import TranscriptionTimeout

from .conftest import Mailbox, Start, wait_for


async def test_transcript_stored_searchable_and_announced_once(
    mailbox: Mailbox, spoken: Any, start_transcriber: Start, transcribed: list[Any]
) -> None:
    await start_transcriber()
    event = await mailbox.leave(spoken(SENTENCES[0]))
    await mailbox.bus.publish(event)
    await wait_for(lambda: transcribed)
    stored = await transcripts.get(mailbox.pool, event.message_id)
    assert stored is not None
    assert stored.engine == "pocketsphinx" and stored.engine_version.startswith("5.")
    assert stored.language == "en-US" and stored.words and stored.elapsed_ms > 0
    assert stored.text == " ".join(w.word for w in stored.words)
    [announced] = transcribed
    assert announced.id == stable_event_id("message.transcribed", event.message_id)
    assert announced.chars == len(stored.text) and announced.words == len(stored.words)
    # "tomorrow morning" is what the engine hears reliably in this clip (docs/transcriber.md)
    assert "morning" in stored.text.split()
    found = await transcripts.search(mailbox.pool, mailbox.user.id, "mornings")
    assert found == [event.message_id]  # stemmed: "mornings" finds "morning"
    assert await transcripts.search(mailbox.pool, mailbox.user.id, "giraffe") == []

    # Redelivery (the same event again, e.g. after a lost ack): no second row, the same
    # event id (JetStream drops the re-publish inside its duplicate window).
    await mailbox.bus.publish(event.model_copy(update={"id": stable_event_id("again", 1)}))
    await wait_for(lambda: (s := _outcome("duplicate")) is not None and s >= 1)
    count = await mailbox.pool.fetchval(
        "SELECT count(*) FROM transcripts WHERE message_id = $1", event.message_id
    )
    assert count == 1 and len({e.id for e in transcribed}) == 1

    # The transcript goes with its message.
    assert await messages.delete(mailbox.pool, mailbox.user.id, event.message_id)
    assert await transcripts.get(mailbox.pool, event.message_id) is None


def _outcome(name: str) -> float | None:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("sipum_transcriptions_total", {"outcome": name})


async def test_transcription_turned_off_stores_nothing(
    mailbox: Mailbox, spoken: Any, start_transcriber: Start, transcribed: list[Any]
) -> None:
    service = await start_transcriber()
    await users.update(mailbox.pool, mailbox.user.id, transcription_enabled=False)
    event = await mailbox.leave(spoken(SENTENCES[1]))
    await service.handle(event)  # returns (acks) without a transcript
    assert await transcripts.get(mailbox.pool, event.message_id) is None
    # back on, with a language the default engine has no model for: nothing stored either
    await users.update(
        mailbox.pool, mailbox.user.id, transcription_enabled=None, transcription_language="de-DE"
    )
    await service.handle(event)
    assert await transcripts.get(mailbox.pool, event.message_id) is None
    effective = await users.effective_settings(mailbox.pool, mailbox.user.id)
    assert effective is not None and effective.transcription_enabled
    assert not transcribed


async def test_too_slow_is_stopped_and_retried(
    mailbox: Mailbox, spoken: Any, start_transcriber: Start
) -> None:
    service = await start_transcriber(transcriber_time_limit=0.05)
    event = await mailbox.leave(spoken(SENTENCES[2]))
    [worker] = service.workers
    first_pid = worker.pid
    with pytest.raises(TranscriptionTimeout):
        await service.handle(event)
    assert worker.pid is None  # the engine process was killed
    assert await transcripts.get(mailbox.pool, event.message_id) is None
    # the next attempt (a redelivery) with time enough starts a fresh engine process
    service.settings.transcriber_time_limit = 60
    await service.handle(event)
    assert worker.pid not in (None, first_pid)
    assert await transcripts.get(mailbox.pool, event.message_id) is not None
