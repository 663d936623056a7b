"""The caller's review state machine (``review.CallerReview``) on a fake clock."""

from __future__ import annotations

import pytest
from sipum_media_recorder.review import (
    CallerReview,
    PlayPrompts,
    PlayRecording,
    Rerecord,
    Store,
)

OFFER = PlayPrompts(("review-message",))
SENT = PlayPrompts(("message-sent", "goodbye"), barge_in="")


def offered(review: CallerReview, now: float) -> None:
    assert review.start(now) == [OFFER]
    assert review.play_finished(now + 5) == []
    assert review.deadline == now + 5 + 4.0


def test_1_sends_as_recorded_then_ends_after_the_closing_prompt() -> None:
    review = CallerReview(digit_timeout=4.0)
    offered(review, 0.0)
    assert review.digit("1", 6.0) == [Store(urgent=False), SENT]
    assert not review.ended and review.stored and not review.urgent
    assert review.digit("4", 6.5) == []  # too late: it is stored
    assert review.play_finished(8.0) == []
    assert review.ended
    assert review.hangup(9.0) == []  # stored once


def test_4_marks_urgent_and_sends() -> None:
    review = CallerReview(digit_timeout=4.0)
    assert review.start(0.0) == [OFFER]
    actions = review.digit("4", 1.0)  # barge-in during the offer
    assert actions == [
        Store(urgent=True),
        PlayPrompts(("marked-urgent", "message-sent", "goodbye"), barge_in=""),
    ]
    assert review.urgent


def test_2_plays_back_then_offers_again_and_a_key_interrupts_the_playback() -> None:
    review = CallerReview(digit_timeout=4.0)
    offered(review, 0.0)
    assert review.digit("2", 6.0) == [PlayRecording()]
    assert review.deadline is None and review.state == "listen"
    assert review.play_finished(20.0) == [OFFER]
    assert review.digit("2", 21.0) == [PlayRecording()]
    assert review.digit("1", 22.0) == [Store(urgent=False), SENT]


def test_3_rerecords_and_ends_the_review() -> None:
    review = CallerReview(digit_timeout=4.0)
    offered(review, 0.0)
    assert review.digit("3", 6.0) == [Rerecord()]
    assert review.ended and not review.stored
    assert review.hangup(7.0) == []  # the discarded recording is not stored


def test_silence_offers_again_then_stores() -> None:
    review = CallerReview(digit_timeout=4.0, repeats=2)
    offered(review, 0.0)
    assert review.timeout(8.0) == []  # not yet due
    assert review.timeout(9.0) == [OFFER]
    assert review.play_finished(14.0) == []
    assert review.timeout(18.0) == [Store(urgent=False), SENT]
    assert review.stored


def test_other_keys_repeat_the_offer_and_reset_the_count() -> None:
    review = CallerReview(digit_timeout=4.0, repeats=1)
    offered(review, 0.0)
    assert review.digit("#", 6.0) == [OFFER]
    assert review.play_finished(10.0) == []
    assert review.timeout(14.0) == [Store(urgent=False), SENT]


@pytest.mark.parametrize("where", ["offer", "wait", "listen"])
def test_hangup_at_any_step_stores(where: str) -> None:
    review = CallerReview(digit_timeout=4.0)
    review.start(0.0)
    if where in ("wait", "listen"):
        review.play_finished(5.0)
    if where == "listen":
        review.digit("2", 6.0)
    assert review.hangup(7.0) == [Store(urgent=False)]
    assert review.ended and review.stored


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        CallerReview(digit_timeout=0.0)
    with pytest.raises(ValueError):
        CallerReview(digit_timeout=1.0, repeats=0)


def test_without_urgent_allowed_4_is_not_offered_and_only_repeats_the_offer() -> None:
    """The mailbox's ``urgent_allowed`` off: the offer has no "press 4", 4 is not a barge-in
    key, and typed anyway it makes the offer again (like ``#``): nothing is marked urgent."""
    review = CallerReview(digit_timeout=4.0, urgent_allowed=False)
    offer = PlayPrompts(("review-message-no-urgent",), barge_in="123")
    assert review.start(0.0) == [offer]
    assert review.play_finished(5.0) == []
    assert review.digit("4", 6.0) == [offer]
    assert not review.stored and not review.urgent
    assert review.digit("2", 7.0) == [PlayRecording(barge_in="123")]
    assert review.digit("1", 8.0) == [Store(urgent=False), SENT]
    assert not review.urgent
