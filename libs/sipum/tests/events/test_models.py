"""Payload models and subject names (no server needed)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError
from sipum.events import (
    EVENT_KINDS,
    EVENT_MODELS,
    SESSION_COMMAND_MODELS,
    MessageCreated,
    SessionDtmf,
    Subjects,
    parse_event,
    stable_event_id,
)
from sipum.events.examples import ALL_EXAMPLES, EVENT_EXAMPLES, MEDIA_ALLOCATE_REQUEST
from sipum.events.models import Envelope


@pytest.mark.parametrize("example", ALL_EXAMPLES, ids=lambda e: type(e).__name__)
def test_round_trip(example: Envelope) -> None:
    data = example.to_json()
    again = type(example).model_validate_json(data)
    assert again == example
    decoded = json.loads(data)
    assert decoded["v"] == 1
    assert uuid.UUID(decoded["id"]) == example.id
    assert decoded["ts"].endswith("Z")


def test_every_kind_has_one_model_and_one_example() -> None:
    assert set(EVENT_MODELS) == set(EVENT_KINDS)
    assert [e.kind for e in EVENT_EXAMPLES] == list(EVENT_KINDS)
    for kind, model in EVENT_MODELS.items():
        assert model.kind == kind
    assert set(SESSION_COMMAND_MODELS) == {"hangup", "dtmf", "ended"}


def test_parse_event_by_kind() -> None:
    created = EVENT_EXAMPLES[0]
    assert parse_event("message.created", created.to_json()) == created
    with pytest.raises(KeyError):
        parse_event("message.exploded", created.to_json())
    with pytest.raises(ValidationError):
        parse_event("user.deleted", b'{"v": 1}')


def test_defaults_fill_the_envelope() -> None:
    a = MessageCreated.model_validate(
        {k: v for k, v in EVENT_EXAMPLES[0].model_dump().items() if k not in {"id", "ts", "v"}}
    )
    assert a.v == 1
    assert isinstance(a.id, uuid.UUID) and a.id != EVENT_EXAMPLES[0].id
    assert abs(a.ts - datetime.now(UTC)) < timedelta(seconds=5)


def test_timestamps_must_be_aware_and_become_utc() -> None:
    payload = EVENT_EXAMPLES[0].model_dump(mode="json")
    payload["ts"] = "2026-11-26T06:10:00+01:00"
    ev = MessageCreated.model_validate(payload)
    assert ev.ts == datetime(2026, 11, 26, 5, 10, tzinfo=UTC)
    assert ev.ts.tzinfo == UTC
    payload["ts"] = "2026-11-26T05:10:00"
    with pytest.raises(ValidationError):
        MessageCreated.model_validate(payload)
    with pytest.raises(ValidationError):
        MessageCreated(**{**EVENT_EXAMPLES[0].model_dump(), "ts": datetime(2026, 1, 1)})
    ok = MessageCreated(
        **{
            **EVENT_EXAMPLES[0].model_dump(),
            "ts": datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5))),
        }
    )
    assert ok.ts.hour == 5


def test_unknown_fields_are_ignored_and_bad_values_rejected() -> None:
    payload = EVENT_EXAMPLES[0].model_dump(mode="json")
    payload["added_in_a_later_version"] = {"x": 1}
    assert MessageCreated.model_validate(payload) == EVENT_EXAMPLES[0]
    for field, bad in [("v", 0), ("folder", "spam"), ("reason", "teleported"), ("message_id", "x")]:
        with pytest.raises(ValidationError):
            MessageCreated.model_validate({**payload, field: bad})
    with pytest.raises(ValidationError):
        MessageCreated.model_validate({k: v for k, v in payload.items() if k != "blob_key"})
    with pytest.raises(ValidationError):
        SessionDtmf(session_id="s1", digit="x")
    with pytest.raises(ValidationError):
        type(MEDIA_ALLOCATE_REQUEST).model_validate(
            {**MEDIA_ALLOCATE_REQUEST.model_dump(), "mode": "party"}
        )


def test_models_are_immutable() -> None:
    with pytest.raises(ValidationError):
        EVENT_EXAMPLES[0].message_id = 1  # type: ignore[misc]


def test_stable_event_id() -> None:
    a = stable_event_id("message.created", 67212)
    assert a == stable_event_id("message.created", "67212")
    assert a != stable_event_id("message.created", 67213)
    assert a != stable_event_id("message.deleted", 67212)


def test_summary_line_of_message_created() -> None:
    assert EVENT_EXAMPLES[0].summary() == (
        'alice@example.com id=67212 dur=5.0s from=sip:bob@example.org "Bob" '
        "reason=forked size=80044"
    )


def test_subjects_default_and_prefixed() -> None:
    s = Subjects()
    assert s.events == "sipum.evt.>"
    assert s.event("message.created") == "sipum.evt.message.created"
    assert s.media_allocate == "sipum.media.allocate"
    assert s.media_session("r1-abc", "hangup") == "sipum.media.session.r1-abc.hangup"
    assert s.media_session_all("r1-abc") == "sipum.media.session.r1-abc.>"
    assert s.kind_of("sipum.evt.user.created") == "user.created"
    assert s.kind_of("other.evt.user.created") is None
    t = Subjects("t123.x")
    assert t.event("call.ended") == "t123.x.evt.call.ended"
    assert t.media_allocate == "t123.x.media.allocate"


@pytest.mark.parametrize("prefix", ["", "a b", "a.>", "*", "a..b", ".a", "a."])
def test_bad_prefix(prefix: str) -> None:
    with pytest.raises(ValueError):
        Subjects(prefix)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.event("message"),
        lambda s: s.event("message.*"),
        lambda s: s.event("a.b.c"),
        lambda s: s.media_session("a.b", "hangup"),
        lambda s: s.media_session("abc", ">"),
        lambda s: s.media_session("", "hangup"),
        lambda s: s.media_session_all("x y"),
    ],
)
def test_bad_subject_tokens(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        call(Subjects())
